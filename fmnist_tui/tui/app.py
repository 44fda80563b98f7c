"""The Textual app: three modes (setup, live run, runs) over one run shown at a time.

The run lives here, not in a screen: either hosted in-app (a worker thread running the
engine, the default) or followed from its folder (a background run the app attached to),
and a RunState that the app folds engine messages into, whichever it is. Screens only
read that state. Errors of any kind end as a RunEnded in the state, so there is one place
that reports them (and rings the alert).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

from textual.binding import Binding
from textual.driver import Driver
from textual.screen import ModalScreen
from textual.worker import Worker, WorkerState

from fmnist_tui.config import ConfigError, RunConfig, check, describe
from fmnist_tui.engine.events import Control, EpochEnd, LogLine, RunEnded, RunStarted, StepProgress
from fmnist_tui.format import pct, printable
from fmnist_tui.host import RunHost
from fmnist_tui.presets import load_presets
from fmnist_tui.settings import load_settings
from fmnist_tui.tui import pictures
from fmnist_tui.tui.alerts import alert_text, send_alert
from fmnist_tui.tui.browser import TabClosed, driver_for
from fmnist_tui.tui.outside import OutsideRuns
from fmnist_tui.tui.relay import EngineMessage, Relay
from fmnist_tui.tui.screens.base import ControlRun, StartRun, StopRun
from fmnist_tui.tui.screens.modals import QuitRunScreen
from fmnist_tui.tui.screens.run import RunScreen
from fmnist_tui.tui.screens.runs import RunsScreen
from fmnist_tui.tui.screens.setup import SetupScreen
from fmnist_tui.tui.state import RunState
from fmnist_tui.tui.terminal import tolerate_non_utf8_input

DEFAULT_PRESET = "tutorial"


class FmnistApp(OutsideRuns):
    CSS_PATH = "app.tcss"
    TITLE = "fmnist-tui"
    MODES = {"setup": SetupScreen, "run": RunScreen, "runs": RunsScreen}
    DEFAULT_MODE = "setup"
    # Screens get -narrow below 80 columns (app.tcss shortens what they show there).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (80, "-normal")]
    BINDINGS = [
        Binding("f2", "switch_mode('setup')", "Setup", priority=True),
        Binding("f3", "switch_mode('run')", "Live", priority=True),
        Binding("f4", "switch_mode('runs')", "Runs", priority=True),
        # q is shown by the screens where it is free; the setup screen shows ctrl+q instead.
        Binding("q", "quit", "Quit", show=False),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self, *, preset: str | None = None, start: bool = False, data_dir: str | None = None,
        runs_dir: str | None = None, presets_dirs: list[Path] | tuple = (), overrides: dict[str, Any] | None = None,
        device: str | None = None, handle_signals: bool = False, attach: Path | None = None, alerts: bool = True,
    ) -> None:  # fmt: skip
        if attach is not None:
            self.DEFAULT_MODE = "run"  # type: ignore[misc]  # read by App.__init__: no setup screen (nor its torch import) until visited
        super().__init__()
        settings, self.settings_problem = load_settings()
        self.alerts = alerts and settings.alerts
        self.alerts_sent: list[str] = []  # what was rung, once per run end (tests read it)
        self.attach_at_once = attach
        self.data_dir, self.runs_dir = data_dir, runs_dir
        self.presets_dirs = [Path(p) for p in presets_dirs]
        self.overrides = dict(overrides or {})
        self.start_at_once = start
        self.device = device  # None: found by the setup screen in a worker
        self.has_gpu: bool | None = None if device is None else not device.startswith("CPU")
        self.handle_signals = handle_signals
        self.presets = load_presets(self.presets_dirs)
        # The quickstart MLP runs anywhere; GPU presets on a CPU would take hours.
        default = DEFAULT_PRESET if DEFAULT_PRESET in self.presets.presets else next(iter(self.presets.presets), None)
        self.initial_preset = preset or default
        self.state = RunState()
        self.run_id = 0
        self._relay = None
        self._host: RunHost | None = None  # the run: its thread, stop, signals and exit code (host.py)
        self._worker: Worker | None = None
        self.attached = None  # the run folder followed, when the run is not this app's
        self._follow_stop = threading.Event()
        self._handing_over = False  # the run goes on in a background process: no alert for its pause
        self.exit_note = ""  # printed after the app has left the screen
        self._quit_when_done = False
        self._exit_code = 0
        self._tab_closed = False

    def get_driver_class(self) -> type[Driver]:
        return driver_for(super().get_driver_class())  # in a browser tab: ours (tui/browser.py)

    # -- setup ------------------------------------------------------------------------
    def initial_values(self) -> dict[str, Any]:
        """What the form shows first: the chosen (or first) preset with the --set overrides."""
        preset = self.presets.presets.get(self.initial_preset or "")
        base = preset.config.model_dump() if preset else RunConfig().model_dump()
        return {**base, **self.overrides}

    def reload_presets(self) -> None:
        self.presets = load_presets(self.presets_dirs)

    def on_mount(self) -> None:
        if self.handle_signals:
            self._install_signal_handlers()
        self.call_after_refresh(freeze_heap)
        if self.settings_problem:
            self.notify(self.settings_problem, severity="warning", timeout=10, markup=False)
        if self.attach_at_once is not None:
            self.call_after_refresh(self.attach, self.attach_at_once)
        elif self.start_at_once:
            self.call_after_refresh(self._start_initial)

    def _start_initial(self) -> None:
        config, errors = check(self.initial_values())
        if config is None:
            self.notify(describe(errors), title="Cannot start", severity="error", timeout=10, markup=False)
            return
        self.start_run(config)

    # -- the run ------------------------------------------------------------------------
    @property
    def run_in_progress(self) -> bool:
        return self._worker is not None and self._worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def start_run(self, config: RunConfig) -> bool:
        if self.run_in_progress:
            self.notify("A run is in progress: stop it first (s on the live screen).", severity="warning")
            return False
        relay = self.new_run(RunState(config=config))
        # Leave a core to the UI: torch's CPU threads stall whenever the UI thread takes
        # one of their cores (bench/throughput.py: 14.0k against 10.5k samples/s on 2 cores).
        cpu_threads = max(1, (os.cpu_count() or 2) - 1)
        self._host = RunHost(relay, config, runs_dir=self.runs_dir, data_dir=self.data_dir, cpu_threads=cpu_threads)
        work = partial(self._train, self._host, relay)
        self._worker = self.run_worker(work, name=f"run-{self.run_id}", group="run", thread=True, exit_on_error=False)
        self.switch_mode("run")
        return True

    @staticmethod
    def _train(host: RunHost, relay: Relay) -> None:
        """The worker thread. A refusal (bad input, a run another process writes) is shown as a failure."""
        host.run()
        if host.refused is not None and host.ended is not None:
            relay(host.ended)

    def on_start_run(self, message: StartRun) -> None:
        config = message.config
        if config.num_nodes > 1:
            self.notify("num_nodes > 1 trains on several machines: start it with torchrun or SLURM on each "
                        "(see the README)", severity="error", timeout=10)  # fmt: skip
        elif message.background or config.devices != 1:  # DDP cannot run inside the app: its own process
            if not message.background:
                self.notify(f"devices = {config.devices}: the run trains in a background process of its own "
                            "(Lightning's DDP), followed here", timeout=6)  # fmt: skip
            self.start_background(config)
        else:
            self.start_run(message.config)

    def on_stop_run(self, message: StopRun) -> None:
        self.stop_run()

    def stop_run(self) -> None:
        if self.following:
            self.on_control_run(ControlRun("stop"))
        elif self.run_in_progress and self._host is not None and not self._host.stop.is_set():
            self._host.request_stop()  # the engine ends within one step and saves a checkpoint
            self.notify("Stopping: the run ends after this step and keeps its checkpoint.", timeout=4)
            self.state.version += 1

    def on_engine_message(self, message: EngineMessage) -> None:
        if message.run_id != self.run_id:
            return  # a late event from an earlier run
        state, event = self.state, message.event
        if isinstance(event, StepProgress):
            relay = self._relay
            if relay is not None and relay.run_id == message.run_id:
                state.progress = relay.take_progress() or event
                state.add_losses(relay.losses)
            else:  # events posted without a relay (tests, replays)
                state.progress = event
                state.add_losses([(event.step, event.loss)])
        elif isinstance(event, EpochEnd):
            state.epochs.append(event)
        elif isinstance(event, LogLine):
            state.add_log(event)
        elif isinstance(event, Control):
            state.add_log(LogLine("INFO", "control", event.text))
        elif isinstance(event, RunStarted):
            state.go_on_from(event)  # a resume (or a hand-over) starts where its checkpoint stands
            state.started = event
            if self.attached is None:
                freeze_heap()  # torch and Lightning were imported for this run: ~340k more objects
        elif isinstance(event, RunEnded) and state.ended is None:
            state.ended = event
            if event.error:  # the whole text in the Log tab too, however small the result box is
                state.add_log(LogLine("ERROR", "fmnist_tui", f"run {event.status}: {event.error}"))
            self._announce(event)
        state.version += 1

    def _announce(self, end: RunEnded) -> None:
        if self._handing_over:
            return  # not an end: the run goes on in the background
        if self.alerts:
            self.alerts_sent.append(alert_text(self.state, end))
            send_alert(self, self.alerts_sent[-1])
        if end.status == "finished":
            self.notify(f"Test accuracy {pct(end.test_acc)}", title="Run finished", timeout=6)
        elif end.status in ("stopped", "interrupted") and end.checkpoint:
            self.notify("Checkpoint kept; the run folder has everything so far.", title=f"Run {end.status}", timeout=6)
        else:
            # The whole message is in the live view's result box and Log tab; the toast only points there.
            error = end.error or end.status
            short = error if len(error) <= 90 else error[:89].rstrip() + "…"
            self.notify(short, title=f"Run {end.status}", severity="error", timeout=10, markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._worker or event.state in (WorkerState.PENDING, WorkerState.RUNNING):
            return
        if self.state.ended is None:  # the thread died without reporting (should not happen)
            error = f"{type(event.worker.error).__name__}: {event.worker.error}" if event.worker.error else "no result"
            self.state.ended = RunEnded(status="failed", run_dir="", duration_s=0.0, error=error)
            self._announce(self.state.ended)
        self.state.version += 1
        if isinstance(self.screen, RunScreen):
            self.screen.sync()  # show how the run ended now, not at the next redraw tick
        self.refresh_bindings()
        if self._quit_when_done:
            self.exit(return_code=self._exit_code)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        # f2/f3/f4 under a dialog would leave the dialog open on the screen left behind.
        if action == "switch_mode" and isinstance(self.screen, ModalScreen):
            return False
        return True

    # -- quitting ---------------------------------------------------------------------
    async def action_quit(self) -> None:
        if not self.run_in_progress:
            if self.following and self.attached is not None:
                name = self.attached.name
                self.exit_note = f"Detached: run {name} keeps running in its own process (fmnist-tui attach {name})."
            self.exit()
            return
        if isinstance(self.screen, QuitRunScreen):
            return
        if self._handing_over:
            self.notify("Handing the run over: the app quits once the background process has it.", timeout=5)
            return
        self.push_screen(QuitRunScreen(), self._quit_answered)

    def _quit_answered(self, choice: str | None) -> None:
        if choice == "stop":
            self.stop_and_quit()
        elif choice == "background":
            self.hand_over()

    def stop_and_quit(self) -> None:
        """Set the stop event, exit once the worker has returned (the run has saved)."""
        self._quit_when_done = True
        if self.run_in_progress:
            self.stop_run()
        else:
            self.exit(return_code=self._exit_code)

    def _install_signal_handlers(self) -> None:
        # Lightning installs none in a thread: without these, SIGTERM or an SSH drop (SIGHUP)
        # would kill the process mid-step with no checkpoint.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (ValueError, RuntimeError, NotImplementedError):
                pass  # not the main thread, or not supported here
        if self.is_web:  # Ctrl-C in the server's terminal reaches its tabs' processes too: the server closes them
            loop.remove_signal_handler(signal.SIGINT)
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_tab_closed(self, message: TabClosed) -> None:
        # The browser tab (or the server) is gone: as a hang-up is to the terminal app.
        if self._tab_closed:
            return
        self._tab_closed = True
        if self.run_in_progress:
            self._on_signal(signal.SIGHUP)
        else:
            self.exit()

    def _on_signal(self, sig: signal.Signals) -> None:
        # A hang-up (the SSH link or the terminal went away) hands the run over to a background
        # process that carries on by itself. SIGTERM (an admin, a scheduler) ends the run within a
        # step, saves last.ckpt and records it as "interrupted", so `fmnist-tui run --resume` can go on.
        if sig == signal.SIGHUP and (self.handover_job() is not None or self._handing_over):
            threading.Thread(target=self.hand_over_and_exit, args=(sig,), daemon=True, name="hang-up").start()
            return
        if self._host is not None:
            self._host.on_signal(sig)
        # After a hang-up the terminal is gone: Textual's writes to it fail and its output queue
        # fills, which can freeze the event loop before the normal exit runs. So a plain thread
        # ends the process once the run has saved, whatever the UI is doing. After SIGTERM the
        # terminal is still there: exit normally and keep the hard exit only as a fallback.
        grace = 0.0 if sig == signal.SIGHUP else 5.0
        threading.Thread(target=self._exit_when_saved, args=(sig, grace), daemon=True, name="signal-exit").start()
        if sig != signal.SIGHUP:
            self._exit_code = 128 + sig
            self.stop_and_quit()

    def _exit_when_saved(self, sig: signal.Signals, grace: float) -> None:
        if self._host is not None:
            self._host.done.wait(timeout=300)  # a run stops within a step; this only bounds a stuck one
        time.sleep(grace)
        os._exit(128 + sig)

    def on_unmount(self) -> None:
        self._follow_stop.set()
        if self._host is not None:
            self._host.request_stop()  # however the app ends, the training thread must not outlive it for long


def freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's reach (`gc.freeze`).

    With torch and Lightning imported the process holds ~390k objects, and each full
    collection walks them all: 200-300 ms during which neither the UI nor the training
    thread runs (measured here), so a keypress would wait that long now and then. Those
    objects are modules, classes and the app itself, which live as long as the process;
    frozen, a full collection only walks what was made since.
    """
    gc.freeze()


def make_app(**kwargs: Any) -> FmnistApp:
    """Build the app without running it (tests, snapshots)."""
    return FmnistApp(**kwargs)


def run_app(
    preset: str | None = None, start: bool = False, data_dir: str | None = None, runs_dir: str | None = None,
    presets_dirs: list[Path] | tuple = (), overrides: dict[str, Any] | None = None, attach: Path | None = None,
    alerts: bool = True,
) -> int:  # fmt: skip
    """`fmnist-tui` (and `fmnist-tui attach`). Raises ConfigError for an unknown preset or bad --set."""
    overrides = overrides or {}
    app = FmnistApp(preset=preset, start=start, data_dir=data_dir, runs_dir=runs_dir, presets_dirs=presets_dirs,
                    overrides=overrides, handle_signals=True, attach=attach, alerts=alerts)  # fmt: skip
    if preset is not None:
        app.presets.get(preset)  # an unknown preset: say so before drawing
    if overrides:  # a bad --set value (unknown model, not UTF-8, out of range): say so before drawing
        _, errors = check(app.initial_values())
        if errors:
            raise ConfigError(f"--set: {describe(errors)}")
    tolerate_non_utf8_input()
    pictures.detect()  # the terminal answers questions only before Textual reads it
    try:
        app.run()
    finally:
        if app._host is not None and not app._handing_over:
            app._host.request_stop()
    for line in app.exit_note.splitlines():
        print(printable(line))
    return app.return_code or 0
