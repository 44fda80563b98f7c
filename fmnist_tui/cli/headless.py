"""`fmnist-tui run`: the engine with a printing sink, for scripts and batch jobs.

Training runs in a thread so that the main thread can turn SIGINT, SIGTERM and SIGHUP
into a cooperative stop: the run saves its checkpoint and records how it ended.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from fmnist_tui.engine.events import (
    EpochEnd,
    LogLine,
    RunEnded,
    RunStarted,
    StepProgress,
)
from fmnist_tui.engine.stop import StopRequest
from fmnist_tui.format import clock, pct

EXIT_CODES = {"finished": 0, "stopped": 130, "interrupted": 143, "failed": 1, "diverged": 1}


class Printer:
    """Prints epochs, a progress line every few seconds, warnings and the end."""

    def __init__(self, out=sys.stdout, err=sys.stderr, verbose: bool = False, every_s: float | None = None):
        self.out, self.err, self.verbose = out, err, verbose
        self.tty = out.isatty()
        self.every_s = every_s if every_s is not None else (1.0 if self.tty else 5.0)
        self._last = 0.0
        self._pending_cr = False
        self.epochs = 0

    def _line(self, text: str) -> None:
        if self._pending_cr:  # end the live progress line first
            self.out.write("\r\x1b[2K")
            self._pending_cr = False
        self.out.write(text + "\n")
        self.out.flush()

    def __call__(self, event) -> None:
        if isinstance(event, StepProgress):
            now = time.monotonic()
            if now - self._last < self.every_s:
                return
            self._last = now
            text = (f"  epoch {event.epoch + 1}/{self.epochs} step {event.epoch_step}/{event.steps_per_epoch} "
                    f"loss {event.loss:.4f} {event.samples_per_s:,.0f} samples/s ETA {clock(event.eta_s)}")  # fmt: skip
            if self.tty:
                self.out.write("\r\x1b[2K" + text)
                self.out.flush()
                self._pending_cr = True
            else:
                self._line(text)
        elif isinstance(event, EpochEnd):
            self._line(f"epoch {event.epoch + 1}/{self.epochs}  train_loss {event.train_loss:.4f}  "
                       f"val_loss {event.val_loss:.4f}  val_acc {pct(event.val_acc)}  lr {event.lr:.2e}  "
                       f"{event.seconds:.1f}s")  # fmt: skip
        elif isinstance(event, RunStarted):
            self.epochs = event.epochs
            resumed = f", resuming at epoch {event.start_epoch + 1}" if event.start_step else ""
            self._line(f"run {event.run_dir}\ndevice {event.device}; {event.epochs} epochs x "
                       f"{event.steps_per_epoch} steps{resumed}")  # fmt: skip
        elif isinstance(event, LogLine):
            if self.verbose or event.level in ("WARNING", "ERROR", "CRITICAL"):
                print(f"{event.level.lower()}: {event.text}", file=self.err, flush=True)
        elif isinstance(event, RunEnded):
            self._line(summary_text(event))


def summary_text(e: RunEnded) -> str:
    if e.status == "finished":
        head = f"finished: test_acc {pct(e.test_acc)}  test_loss {e.test_loss:.4f}  best_val_acc {pct(e.best_val_acc)}"
    else:
        head = f"{e.status}: best_val_acc {pct(e.best_val_acc)}"
    lines = [f"{head}  time {clock(e.duration_s)}"]
    if e.error:
        lines.append(f"error: {e.error}")
    if e.checkpoint:
        lines.append(f"checkpoint {e.checkpoint}")
    lines.append(f"run folder {e.run_dir}")
    return "\n".join(lines)


def install_stop_signals(stop: StopRequest) -> None:
    """Main thread only. Ctrl-C stops; SIGTERM/SIGHUP (a dropped SSH link) interrupt. Both save first."""
    signal.signal(signal.SIGINT, lambda *_: stop.request("stopped"))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.request("interrupted"))


def run_headless(args, overrides: dict) -> int:
    from fmnist_tui.cli.main import error
    from fmnist_tui.config import ConfigError
    from fmnist_tui.presets import load_presets
    from fmnist_tui.runs import RunStoreError

    config = None
    if args.preset:
        found = load_presets(args.presets_dir)
        for problem in found.errors:
            print(f"warning: {problem}", file=sys.stderr)
        config = found.get(args.preset)
    from fmnist_tui.engine.runner import (
        run,  # torch and Lightning load here, after input is checked
    )

    stop = StopRequest()
    install_stop_signals(stop)
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["end"] = run(config, Printer(verbose=args.verbose), stop, runs_dir=args.runs_dir,
                                 data_dir=args.data_dir, resume=args.resume, overrides=overrides)  # fmt: skip
        except (ConfigError, RunStoreError) as err:
            outcome["error"] = str(err)

    worker = threading.Thread(target=target, name="fmnist-train")
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
    if "error" in outcome:
        return error(outcome["error"])
    return EXIT_CODES.get(outcome["end"].status, 1)
