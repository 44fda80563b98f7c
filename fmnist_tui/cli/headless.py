"""`fmnist-tui run`: the engine with a printing sink, for scripts and batch jobs.

The run is hosted by RunHost (fmnist_tui/host.py), as in the app: training in a thread,
the main thread turning SIGINT, SIGTERM and SIGHUP into a stop that saves a checkpoint.

Output: a line per epoch and a summary; warnings and errors on stderr. Progress lines come
every `--progress-every` seconds (on a terminal one line redrawn in place every second;
into a file or pipe a plain line every 30 s, so a `nohup` log shows the run is alive; 0 for
none). With `--json`, every engine event is one JSON object a line on stdout instead,
progress at the same pace.
"""

from __future__ import annotations

import json
import os
import sys
import time

from fmnist_tui.cli.output import error, finite, preset_config
from fmnist_tui.engine.events import Control, EpochEnd, LogLine, RunEnded, RunStarted, StepProgress, as_dict
from fmnist_tui.format import clock, num, pct, printable

TTY_EVERY_S, PIPE_EVERY_S = 1.0, 30.0


class Printer:
    """Prints epochs, progress every few seconds, warnings and the end; or JSON lines with `as_json`."""

    def __init__(self, out, err, verbose: bool = False, every_s: float | None = None, as_json: bool = False):
        self.out, self.err, self.verbose, self.as_json = out, err, verbose, as_json
        # None: the descriptor was closed before we started (`>&-`); nothing to print to, nothing to stop for
        self.closed: set[str] = {name for name, stream in (("out", out), ("err", err)) if stream is None}
        self.tty = out is not None and out.isatty() and not as_json
        self.every_s = every_s if every_s is not None else (TTY_EVERY_S if self.tty else PIPE_EVERY_S)
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

    def _progress_due(self) -> bool:
        now = time.monotonic()
        if self.every_s <= 0 or now - self._last < self.every_s:
            return False
        self._last = now
        return True

    def __call__(self, event) -> None:
        if isinstance(event, RunStarted):
            self.epochs = event.epochs
            self._last = time.monotonic()  # the first progress line comes `every_s` after the start
        if self.as_json:
            if not isinstance(event, StepProgress) or self._progress_due():
                self._write("out", json.dumps(finite(as_dict(event)), ensure_ascii=False) + "\n")
            return
        if isinstance(event, StepProgress):
            if not self._progress_due():
                return
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
            resumed = f", resuming at epoch {event.start_epoch + 1}" if event.start_step else ""
            self._line(f"run {printable(event.run_dir)}\ndevice {event.device}; {event.epochs} epochs x "
                       f"{event.steps_per_epoch} steps{resumed}")  # fmt: skip
        elif isinstance(event, Control):
            self._line(f"control: {printable(event.text)}")
        elif isinstance(event, LogLine):
            if self.verbose or event.level in ("WARNING", "ERROR", "CRITICAL"):
                self._write("err", f"{event.level.lower()}: {printable(event.text)}\n")
        elif isinstance(event, RunEnded):
            self._line(summary_text(event))


def summary_text(e: RunEnded) -> str:
    """The end of a run; every test figure says which weights it is of (epochs counted from 1)."""
    if e.status == "finished" or e.test_acc is not None:  # a stopped run is tested too
        weights = f" ({e.test_checkpoint}, epoch {e.test_epoch + 1})" if e.test_epoch is not None else ""
        head = f"{e.status}: test_acc {pct(e.test_acc)}{weights}  test_loss {num(e.test_loss)}  best_val_acc {pct(e.best_val_acc)}"
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


def run_headless(args, overrides: dict) -> int:
    """Check the input, train in a thread, wait (signals stop it, saving first), exit with the run's code."""
    from fmnist_tui.engine.segment import check_device
    from fmnist_tui.host import RunHost

    config = preset_config(args.presets_dir, args.preset, overrides) if args.preset else None
    if args.like:
        from fmnist_tui.cli.show import like_config

        config = like_config(args, overrides)
    from fmnist_tui.cli.rank import follow_launcher, launcher_rank

    if launcher_rank() > 0:  # torchrun or SLURM started this command on every process: the first one reports
        return follow_launcher(args, config, overrides)
    printer = Printer(sys.stdout, sys.stderr, verbose=args.verbose, every_s=args.progress_every, as_json=args.json)
    if config is not None:
        check_device(config)  # a GPU config without a GPU: exit 2 before the run starts (torch loads only then)
    host = RunHost(printer, config, resume=args.resume, overrides=overrides, runs_dir=args.runs_dir,
                   data_dir=args.data_dir)  # fmt: skip
    host.install_signal_handlers()
    worker = host.start()
    while worker.is_alive():
        worker.join(0.2)  # short waits: the main thread must stay free to take signals
    if host.refused is not None:
        return error(host.refused)
    return host.exit_code
