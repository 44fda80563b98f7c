"""Runs the app does not host: following one from its folder, starting one in the background,
controlling one, and the messages that bring their results back to the UI thread.

Everything here that touches a file or a socket runs in a thread worker; the UI only ever
handles messages. The follower feeds the same Relay as an in-app run, so an attached run
is drawn by the same code, at the same pace (the live view redraws at most 4 times a second).
"""

from __future__ import annotations

import threading
from pathlib import Path

from textual.message import Message

from fmnist_tui.background import BackgroundError, Job, Started, launch
from fmnist_tui.config import ConfigError, RunConfig, make_config
from fmnist_tui.engine.control import ControlError, send
from fmnist_tui.follow import Follower
from fmnist_tui.runs import RunStoreError, read_config
from fmnist_tui.tui.relay import Relay

POLL_S = 0.25


def follow(path: Path, relay: Relay, stop: threading.Event) -> None:
    """The follow worker: replay the run's events, then poll for more until it is over or `stop`."""
    follower = Follower(path)
    while not stop.is_set():
        for event in follower.poll():
            relay(event)
        if follower.over:
            return
        if not follower.reader.pending():
            stop.wait(POLL_S)


def config_of(path: Path) -> RunConfig | None:
    """The run's config for the live view's title (None when config.toml is not one)."""
    try:
        values, _ = read_config(path)
        return make_config(values, "config.toml")
    except (OSError, ValueError, ConfigError):
        return None


class BackgroundStarted(Message):
    def __init__(self, started: Started | None, error: str | None = None) -> None:
        super().__init__()
        self.started, self.error = started, error


class QueueAnswered(Message):
    def __init__(self, text: str, ok: bool) -> None:
        super().__init__()
        self.text, self.ok = text, ok


def add_to_queue(target, config: RunConfig, runs_dir: str | None, data_dir: str | None) -> None:
    """The worker that queues the form's config and makes sure the runs folder's scheduler runs."""
    from fmnist_tui import devices, paths, scheduler
    from fmnist_tui.runqueue import Queue, QueueError
    from fmnist_tui.runs import RunStore

    try:
        if data_dir and not config.data_dir:  # the app's --data-dir, as a run started here would use
            config = make_config({**config.model_dump(), "data_dir": data_dir}, "--data-dir")
        devices.check_runnable(config)
        root = paths.runs_dir(runs_dir)
        RunStore(root).check_writable()
        (entry,) = Queue(root).add([(config.model_dump(), "")], command="fmnist-tui (the app's Queue key)")
    except (ConfigError, QueueError, RunStoreError, OSError) as err:
        target.post_message(QueueAnswered(str(err), False))
        return
    try:
        scheduler.ensure_running(root)
    except (QueueError, OSError) as err:
        target.post_message(QueueAnswered(f"{config.name} is entry {entry.id}, but {err}", False))
        return
    target.post_message(QueueAnswered(f"{config.name} is entry {entry.id}: it starts when a slot is free "
                                      "(the runs screen lists it)", True))  # fmt: skip


class ControlAnswered(Message):
    def __init__(self, text: str, ok: bool) -> None:
        super().__init__()
        self.text, self.ok = text, ok


def start_background(target, job: Job, before_wait=None) -> None:
    """The worker that launches a background run (and, for a hand-over, stops ours in between)."""
    try:
        launched = launch(job)
        if before_wait is not None:
            launched.wait_ready()  # a process that cannot start leaves the app's run as it was
            before_wait()
        message = BackgroundStarted(launched.wait())
    except (BackgroundError, RunStoreError, OSError) as err:
        message = BackgroundStarted(None, str(err))
    target.post_message(message)


def send_control(target, path: Path, action: str, value: float | None) -> None:
    """The worker that sends one control and posts the run's answer."""
    try:
        target.post_message(ControlAnswered(send(path, action, value), True))
    except ControlError as err:
        target.post_message(ControlAnswered(str(err), False))
