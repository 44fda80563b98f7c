"""The background run's own process (started by fmnist_tui/background.py, never by hand).

It reads its job from stdin, answers on stdout with the run's folder once it holds the run
(or why it was refused), then logs to run.log in that folder. SIGHUP is ignored: no
terminal's end reaches a background run. SIGTERM interrupts and Ctrl-C stops, as for `run`.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
from pathlib import Path

from fmnist_tui.background import LOG, Job
from fmnist_tui.cli.headless import Printer
from fmnist_tui.config import ConfigError, make_config
from fmnist_tui.engine.events import RunEnded
from fmnist_tui.host import RunHost


def main(early: Path) -> int:
    import fmnist_tui.engine.checkpoint
    import fmnist_tui.engine.runner  # noqa: F401 - torch and Lightning first: a job handed over or queued starts at once

    line = sys.stdin.readline()
    if not line.strip():  # launched ahead of its job, which never came (its scheduler ended)
        early.unlink(missing_ok=True)
        return 0
    job = Job(**json.loads(line))
    os.environ.update(job.env)  # CUDA_VISIBLE_DEVICES: nothing has touched a GPU yet
    handshake = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # until the run has a folder to log into

    def answer(reply: dict, last: bool = True) -> None:
        try:
            os.write(handshake, json.dumps(reply).encode() + b"\n")
            if last:
                os.close(handshake)
        except OSError:  # nobody waits for it (a hand-over from an app that has gone)
            if "error" in reply:
                early.unlink(missing_ok=True)  # nobody will read why either: leave no file behind

    entry = QueueEntry(job) if job.queue_id is not None else None
    if entry is not None:
        refused = entry.hold(job.launch)
        if refused:
            answer({"error": refused, "code": 2})
            return 2

    def opened(path: Path) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        log = os.open(path / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(log, early.read_bytes())
        except OSError:
            pass
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        early.unlink(missing_ok=True)
        if entry is not None:
            entry.running(path)
        answer({"run_dir": str(path), "pid": os.getpid()})

    try:
        config = make_config(job.config, "the background job") if job.config is not None else None
    except ConfigError as err:
        answer({"error": str(err), "code": 2})
        if entry is not None:
            entry.ended("failed", str(err))
        return 2
    answer({"ready": True}, last=False)  # an app handing its run over stops it now; the lock is taken next
    printer = Printer(sys.stdout, sys.stderr, verbose=job.verbose, every_s=job.progress_every)

    def sink(event) -> None:
        printer(event)
        if entry is not None and isinstance(event, RunEnded):
            entry.ended(event.status, event.error)  # its slot is free now, not once this process has exited

    host = RunHost(sink, config, resume=job.resume, overrides=job.overrides, runs_dir=job.runs_dir,
                   data_dir=job.data_dir, opened=opened, handover=job.handover, cpu_threads=job.cpu_threads,
                   tag=job.tag, record=job.record)  # fmt: skip
    host.install_signal_handlers()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # no terminal to lose: a background run outlives them all
    worker = host.start()
    while worker.is_alive():
        worker.join(0.2)  # the main thread stays free to take signals
    if host.run_path is None:  # refused, or failed, before it had a folder
        error = host.refused or (host.ended.error if host.ended else None) or "it failed to start"
        answer({"error": error, "code": host.exit_code})
    if entry is not None and not entry.done:  # refused, or it ended before its run had a folder
        entry.ended(
            host.ended.status if host.ended else "failed", host.refused or (host.ended.error if host.ended else None)
        )
    return host.exit_code


class QueueEntry:
    """The queue entry this process runs: held (its launch lock) for the process's whole life."""

    def __init__(self, job: Job):
        from fmnist_tui import paths
        from fmnist_tui.runqueue import Queue

        assert job.queue_id is not None
        self.id: int = job.queue_id
        self.done = False
        self.queue = Queue(paths.runs_dir(job.runs_dir))

    def hold(self, token: str) -> str | None:
        """Take the entry (None), or why not: another process holds it, or it was given to another."""
        from fmnist_tui.runqueue import QueueError

        try:
            fd = os.open(self.queue.launch_lock(self.id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return f"queue entry {self.id} is being started by another process"
        self.fd = fd  # kept open, so held, until this process ends
        try:
            return self.queue.claim(self.id, token)  # a process too slow to start may find it started again
        except QueueError as err:
            return str(err)

    def running(self, path: Path) -> None:
        from fmnist_tui.runqueue import QueueError, now

        try:
            self.queue.update(self.id, state="running", run=path.name, started=now())
        except QueueError:
            pass  # the scheduler finds it through its lock

    def ended(self, status: str, error: str | None) -> None:
        from fmnist_tui.runqueue import FROM_STATUS, QueueError, now

        self.done = True
        try:
            self.queue.update(self.id, state=FROM_STATUS.get(status, "failed"), status=status, error=error,
                              ended=now())  # fmt: skip
        except QueueError:
            pass


if __name__ == "__main__":
    code = main(Path(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and closed (files atomically, the lock released with its descriptor): skip
    # the interpreter's teardown of torch, most of a second of CPU the next queued run could use.
    os._exit(code)
