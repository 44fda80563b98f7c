"""`fmnist-tui lr-find`: Lightning's lr finder on a preset's config, plotted in the terminal.

Nothing is written to the runs folder. The search runs in a thread so that Ctrl-C stops it
within a step (Lightning's own Ctrl-C handling would end the process with exit 1), and
SIGTERM and SIGHUP the same way.
Exit codes as `run`: 0 a suggestion, 1 none (the loss diverged, too few points), 2 bad
input (an unknown preset, a bad value, no data), 128 + the signal for Ctrl-C (130), SIGTERM, SIGHUP.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import threading
import time

from fmnist_tui.cli.output import engine_warnings, error, preset_config, print_json
from fmnist_tui.config import ConfigError
from fmnist_tui.format import failure_text
from fmnist_tui.lrplot import draw, lr_text

EXIT_NO_SUGGESTION = 1
PLOT_HEIGHT = 20


def cmd_lr_find(args, overrides: dict) -> int:
    from fmnist_tui.engine.lrfind import LrFindError, check_range

    if sys.stdout is None:  # `>&-`: the suggestion would go nowhere (as the listings say it)
        error("standard output is closed: nothing to print the suggestion to")
        return EXIT_NO_SUGGESTION
    preset = args.preset or "tutorial"
    config = preset_config(args.presets_dir, preset, overrides)  # ConfigError: exit 2, before torch loads
    try:
        check_range(args.min_lr, args.max_lr, args.steps)
    except LrFindError as err:
        return error(str(err))
    outcome = _search(config, args)
    if isinstance(outcome, int):
        return outcome
    if args.json:
        print_json(outcome.as_json())
    else:
        _print(outcome, preset, args)
    if outcome.suggestion is None:
        error(f"no lr suggested: {outcome.reason}")
        return EXIT_NO_SUGGESTION
    return 0


def _search(config, args):
    """The LrFind, or the exit code after one line saying why there is none."""
    from fmnist_tui.engine.idx import DataError
    from fmnist_tui.engine.lrfind import Cancelled, Diverged, LrFindError, find_lr
    from fmnist_tui.engine.runner import on_gpu

    if config.for_gpu and not on_gpu(config.accelerator):  # cnn_fast did not end in 5 minutes on 2 cores
        return error(f"preset {config.name} is made for a GPU and there is none here: its search would take many "
                     "minutes on this CPU (--set for_gpu=false searches anyway)")  # fmt: skip
    stop = threading.Event()
    shown = Progress(sys.stderr if not args.json else None)
    box: dict = {}

    done = threading.Event()
    # A core left free, as the app does: on this 2-core machine, busy with other work, the tutorial's
    # search took 0.4 s on one torch thread and 1.7 to 11.5 s on two (their spin-waits lose the core).
    threads = max(1, (os.cpu_count() or 2) - 1)

    def search() -> None:
        try:
            with engine_warnings():
                box["result"] = find_lr(config, data_dir=args.data_dir, min_lr=args.min_lr, max_lr=args.max_lr,
                                        steps=args.steps, stop=stop, progress=shown, cpu_threads=threads)  # fmt: skip
        except BaseException as err:  # noqa: BLE001 - reported on the main thread, in one line
            box["error"] = err
        finally:
            done.set()

    # SIGTERM and SIGHUP stop the search like Ctrl-C: within a step, its temporary folder removed.
    received: list[int] = []

    def on_signal(sig, frame) -> None:
        received.append(sig)
        stop.set()

    saved = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    threading.Thread(target=search, name="lr-find", daemon=True).start()
    try:
        # An Event, not Thread.join: a join that Ctrl-C interrupted can return before the thread
        # ends (seen here: the process then aborted in torch, its temporary folder left behind).
        while not done.is_set():
            try:
                done.wait(0.1)
            except KeyboardInterrupt:
                received.append(signal.SIGINT)
                stop.set()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    shown.clear()
    if received:
        error("interrupted: no lr suggested")
        return 128 + received[0]
    err = box.get("error")
    if err is None:
        return box["result"]
    if isinstance(err, (DataError, LrFindError)) and not isinstance(err, Diverged):
        return error(str(err))
    if isinstance(err, Diverged):
        error(f"diverged: {err}")
        return EXIT_NO_SUGGESTION
    if isinstance(err, Cancelled):
        return 130
    if isinstance(err, ConfigError):  # a GPU config on a machine without one
        return error(str(err))
    error(f"the lr finder failed: {failure_text(err)}")
    return EXIT_NO_SUGGESTION


class Progress:
    """`finding the lr… 40/100 steps` redrawn in place on a terminal's stderr, at most 5 times a second."""

    def __init__(self, stream) -> None:
        self.stream = stream if stream is not None and stream.isatty() else None
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.stream is None or (now - self.last < 0.2 and done < total):
            return
        self.last = now
        try:
            self.stream.write(f"\r\x1b[2Kfinding the lr… {done}/{total} steps")
            self.stream.flush()
            self.drawn = True
        except (OSError, ValueError):
            self.stream = None

    def clear(self) -> None:
        if self.stream is not None and self.drawn:
            try:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
            except (OSError, ValueError):
                pass


def plot_text(result, width: int, color: bool) -> str:
    import plotext as plt

    draw(plt, result.lrs, result.losses, result.rounded, width)
    plt.plotsize(width, PLOT_HEIGHT)
    plt.theme("clear")
    text = plt.build()
    return text if color else plt.uncolorize(text)


def _print(result, preset: str, args) -> None:
    width = max(40, min(80, shutil.get_terminal_size((80, 24)).columns))
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    if result.lrs:
        print(plot_text(result, width, color).rstrip("\n"))
    steps = f"{len(result.lrs)} steps in {result.seconds:.1f} s"
    if result.rounded is None:
        print(f"no suggestion · {steps}")
        return
    print(f"suggested lr {lr_text(result.rounded)} ({result.reason}) · {steps}")
    given = [f"--data-dir {shlex.quote(str(args.data_dir))}"] if args.data_dir else []
    given += [f"--set {shlex.quote(item)}" for item in args.sets if not item.strip().startswith("lr=")]
    command = " ".join(["fmnist-tui run --preset", shlex.quote(preset), *given, f"--set lr={lr_text(result.rounded)}"])
    print(f"use it: {command}")
    sys.stdout.flush()
