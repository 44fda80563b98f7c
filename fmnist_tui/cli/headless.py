"""`fmnist-tui run`: the engine with a printing sink, for scripts and batch jobs.

Training runs in a thread so that the main thread can turn SIGINT, SIGTERM and SIGHUP
into a cooperative stop: the run saves its checkpoint and records how it ended.
"""

from __future__ import annotations

import os
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
from fmnist_tui.format import clock, num, pct, printable

EXIT_CODES = {"finished": 0, "stopped": 130, "interrupted": 143, "failed": 1, "diverged": 1}


class Printer:
    """Prints epochs, a progress line every few seconds, warnings and the end."""

    def __init__(self, out=sys.stdout, err=sys.stderr, verbose: bool = False, every_s: float | None = None):
        self.out, self.err, self.verbose = out, err, verbose
        # None: the descriptor was closed before we started (`>&-`); nothing to print to, nothing to stop for
        self.closed: set[str] = {name for name, stream in (("out", out), ("err", err)) if stream is None}
        self.tty = out is not None and out.isatty()
        self.every_s = every_s if every_s is not None else (1.0 if self.tty else 5.0)
        self._last = 0.0
        self._pending_cr = False
        self.epochs = 0

    def _write(self, name: str, text: str) -> None:
        """Never raises: the run must not end because nobody reads its output any more."""
        if name in self.closed:
            return
        stream = self.out if name == "out" else self.err
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # EPIPE, a closed file
            self.closed.add(name)
            try:  # Python would report the pipe again when it flushes at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
            except (OSError, ValueError):
                pass

    def _line(self, text: str) -> None:
        if self._pending_cr:  # end the live progress line first
            self._write("out", "\r\x1b[2K")
            self._pending_cr = False
        self._write("out", text + "\n")

    def __call__(self, event) -> None:
        if isinstance(event, StepProgress):
            now = time.monotonic()
            if now - self._last < self.every_s:
                return
            self._last = now
            text = (f"  epoch {event.epoch + 1}/{self.epochs} step {event.epoch_step}/{event.steps_per_epoch} "
                    f"loss {event.loss:.4f} {event.samples_per_s:,.0f} samples/s ETA {clock(event.eta_s)}")  # fmt: skip
            if self.tty:
                self._write("out", "\r\x1b[2K" + text)
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
            self._line(f"run {printable(event.run_dir)}\ndevice {event.device}; {event.epochs} epochs x "
                       f"{event.steps_per_epoch} steps{resumed}")  # fmt: skip
        elif isinstance(event, LogLine):
            if self.verbose or event.level in ("WARNING", "ERROR", "CRITICAL"):
                self._write("err", f"{event.level.lower()}: {printable(event.text)}\n")
        elif isinstance(event, RunEnded):
            self._line(summary_text(event))


def summary_text(e: RunEnded) -> str:
    """The end of a run; every test figure says which weights it is of (epochs counted from 1)."""
    if e.status == "finished":
        weights = f" ({e.test_checkpoint}, epoch {e.test_epoch + 1})" if e.test_epoch is not None else ""
        head = f"finished: test_acc {pct(e.test_acc)}{weights}  test_loss {num(e.test_loss)}  best_val_acc {pct(e.best_val_acc)}"
    else:
        head = f"{e.status}: best_val_acc {pct(e.best_val_acc)}"
    lines = [f"{head}  time {clock(e.duration_s)}"]
    if e.status == "finished" and e.last_test_acc is not None:
        epoch = f" (epoch {e.last_test_epoch + 1})" if e.last_test_epoch is not None else ""
        lines.append(f"last weights{epoch}: test_acc {pct(e.last_test_acc)}  test_loss {num(e.last_test_loss)}")
    if e.error:
        lines.append(f"error: {printable(e.error)}")
    if e.checkpoint:
        lines.append(f"checkpoint {printable(e.checkpoint)}")
    lines.append(f"run folder {printable(e.run_dir)}")
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
            print(f"warning: {printable(problem)}", file=sys.stderr)
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
        except Exception as err:  # noqa: BLE001 - a bug outside the engine's own reporting: one line, exit 1
            outcome["crash"] = f"{type(err).__name__}: {err}"

    worker = threading.Thread(target=target, name="fmnist-train")
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
    if "error" in outcome:
        return error(outcome["error"])
    if "crash" in outcome:
        error(outcome["crash"])
        return 1
    return EXIT_CODES.get(outcome["end"].status, 1)
