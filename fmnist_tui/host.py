"""One run, hosted for a front end: the engine in a thread, stop and signals, how it ended.

The headless command and the app both run training through RunHost, so both start it,
stop it, turn signals into a stop, phrase failures and choose exit codes the same way.
No textual here (the app calls `run` from its own thread worker), and no torch until
`run` is called.
"""

from __future__ import annotations

import os
import signal
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fmnist_tui.config import ConfigError, RunConfig
from fmnist_tui.engine.events import LogLine, RunEnded, Sink
from fmnist_tui.engine.stop import StopRequest
from fmnist_tui.format import failure_text
from fmnist_tui.runs import RunStoreError

BAD_INPUT = 2  # refused before anything started: a bad value, an unknown run, a run another process writes
EXIT_CODES = {"finished": 0, "failed": 1, "diverged": 1, "stopped": 130}  # interrupted: 128 + the signal
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class RunHost:
    """Train one config (or resume one run) for a front end that shows the events `sink` gets."""

    def __init__(self, sink: Sink, config: RunConfig | None = None, *, resume: str | None = None,
                 overrides: dict[str, Any] | None = None, runs_dir: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None, cpu_threads: int | None = None,
                 opened: Callable[[Path], None] | None = None, handover: bool = False, tag: str = "",
                 record: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.sink, self.config, self.resume = sink, config, resume
        self.tag, self.record = tag, dict(record or {})  # a sweep's point: in the folder's name, in summary.json
        self.on_opened, self.handover = opened, handover
        self.run_path: Path | None = None  # the run's folder, once this process holds it
        self.overrides = dict(overrides or {})
        self.runs_dir = Path(runs_dir) if runs_dir else None
        self.data_dir = Path(data_dir) if data_dir else None
        self.cpu_threads = cpu_threads
        self.stop = StopRequest()  # "stopped" by the user, "interrupted" by a signal
        self.signal: int | None = None
        self.ended: RunEnded | None = None
        self.refused: str | None = None  # why nothing started (bad input): not sent to the sink
        self.done = threading.Event()

    def run(self) -> RunEnded:
        """The training thread's target: never raises; the end goes to the sink (a refusal does not)."""
        try:
            from fmnist_tui.engine.runner import run  # torch and Lightning load here, off the caller's thread

            self.ended = run(self.config, self.sink, self.stop, runs_dir=self.runs_dir, data_dir=self.data_dir,
                             resume=self.resume, overrides=self.overrides, cpu_threads=self.cpu_threads,
                             opened=self._opened, handover=self.handover, tag=self.tag,
                             record=self.record)  # fmt: skip
        except (ConfigError, RunStoreError) as err:
            self.refused = str(err)
            self.ended = RunEnded(status="failed", run_dir="", duration_s=0.0, error=str(err))
        except Exception as err:  # noqa: BLE001 - a bug outside the engine's own reporting: keep the front end alive
            for line in traceback.format_exception(err)[-12:]:
                self.sink(LogLine("ERROR", "fmnist_tui.host", line.rstrip()))
            self.ended = RunEnded(status="failed", run_dir="", duration_s=0.0, error=failure_text(err))
            self.sink(self.ended)
        finally:
            self.done.set()
        return self.ended

    def _opened(self, path: Path) -> None:
        self.run_path = path
        if self.on_opened is not None:
            self.on_opened(path)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="fmnist-train")
        thread.start()
        return thread

    def request_stop(self) -> None:
        """The user asked: the run ends within a step, keeps its checkpoint and is recorded as stopped."""
        self.stop.request("stopped")

    def on_signal(self, sig: int) -> None:
        """Ctrl-C stops; SIGTERM and SIGHUP (a dropped SSH link) interrupt. Both save first."""
        self.signal = self.signal or sig
        self.stop.request("stopped" if sig == signal.SIGINT else "interrupted")

    def install_signal_handlers(self) -> None:
        """Main thread only. Lightning installs none when it trains in a thread: without these a
        signal would kill the process mid-step, with no checkpoint."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, lambda number, frame: self.on_signal(number))

    @property
    def exit_code(self) -> int:
        if self.refused is not None:
            return BAD_INPUT
        status = self.ended.status if self.ended else "failed"
        if status in ("stopped", "interrupted") and self.signal:
            return 128 + self.signal  # 130 for Ctrl-C, 143 for SIGTERM, 129 for a hang-up
        return EXIT_CODES.get(status, 128 + signal.SIGTERM)
