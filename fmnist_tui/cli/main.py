"""`fmnist-tui` and its subcommands. Heavy imports (torch, textual) happen only when needed.

Every option is declared once (OPTIONS) and means the same wherever it is written:
`fmnist-tui --runs-dir X runs` and `fmnist-tui runs --runs-dir X` list the same folder,
`--set` before and after `run` both count, and an option that a command does not take is
refused (exit 2) rather than dropped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fmnist_tui.cli.output import error, silence_stdout
from fmnist_tui.config import ConfigError
from fmnist_tui.files import FULL
from fmnist_tui.overrides import parse_set_items
from fmnist_tui.runs import RunStoreError


def user_path(text: str) -> Path:
    """A folder option: "~" is the home folder wherever it is written (also inside --opt=~/x)."""
    return Path(text).expanduser()


def seconds(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: a number of seconds, 0 or more")
    return value


# name -> (flags, argparse keywords); `dest` is the name with - as _
OPTIONS: dict[str, tuple[tuple[str, ...], dict]] = {
    "set": (("--set",), dict(dest="sets", action="append", metavar="KEY=VALUE",
                             help="override one config value (repeatable), e.g. --set lr=0.01 --set model=cnn")),
    "preset": (("--preset",), dict(metavar="NAME", help="a preset (see `fmnist-tui presets`); the app opens on it")),
    "data-dir": (("--data-dir",), dict(type=user_path, metavar="DIR",
                                       help="Fashion-MNIST folder (default: $FMNIST_TUI_DATA_DIR or the per-user data folder)")),
    "runs-dir": (("--runs-dir",), dict(type=user_path, metavar="DIR",
                                       help="runs folder (default: $FMNIST_TUI_RUNS_DIR or the per-user runs folder)")),
    "presets-dir": (("--presets-dir",), dict(action="append", type=user_path, metavar="DIR",
                                             help="also read presets from DIR (repeatable)")),
    "json": (("--json",), dict(action="store_true", help="print JSON for scripts instead of text")),
    "no-alerts": (("--no-alerts",), dict(action="store_true",
                                         help="no bell or desktop notification when a run ends (also: alerts = false "
                                              "in settings.toml)")),
}  # fmt: skip
APP = ("set", "preset", "data-dir", "runs-dir", "presets-dir", "no-alerts")
FLAGS = ("json", "no-alerts")  # store_true: False when not given
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "run": ("train headless: a line per epoch and a summary, for scripts and batch jobs",
            ("set", "preset", "data-dir", "runs-dir", "presets-dir", "json")),
    "attach": ("open the app on a run: its history, then live while it runs (default: the newest running run)",
               ("runs-dir", "no-alerts")),
    "control": ("act on a running run: stop, stop-after-epoch, checkpoint, lr=VALUE", ("runs-dir", "json")),
    "wait": ("wait for a run to end; exit with its code (0 finished, 1 failed, 130 stopped, 143 interrupted, "
             "137 killed)", ("runs-dir",)),
    "queue": ("runs waiting for a device: queue [list] | add [--preset NAME] [--set K=V] | rm ID | clear",
              ("set", "preset", "data-dir", "runs-dir", "presets-dir", "json")),
    "sweep": ("queue the cross product of --grid KEY=V1,V2,... (each combination a run)",
              ("set", "preset", "data-dir", "runs-dir", "presets-dir", "json")),
    "eval": ("evaluate a run's checkpoint on the test images: confusion matrix, per-class scores, mistakes "
             "(writes evaluation.json in the run folder)", ("data-dir", "runs-dir", "json")),
    "export": ("write a run's model as ONNX or TorchScript in its folder, checked against the checkpoint",
               ("data-dir", "runs-dir", "json")),
    "lr-find": ("Lightning's learning-rate finder on a preset's config: loss against lr, and a suggested lr "
                "(writes nothing)", ("set", "preset", "data-dir", "presets-dir", "json")),
    "show": ("a run's record: results, config, and how it was made (versions, device, data hashes, commit)",
             ("runs-dir", "json")),
    "compare": ("2 to 6 runs side by side: status, best val, test acc, time, epochs, and the config keys "
                "that differ", ("runs-dir", "json")),
    "serve": ("the app in a web browser: each tab is its own app (default 127.0.0.1:8000; see the README)", APP),
    "runs": ("list runs with their status and best metrics", ("runs-dir", "json")),
    "presets": ("list presets and their descriptions", ("presets-dir", "json")),
    "keys": ("list every config key with its help text", ("json",)),
}  # fmt: skip
APPENDED = ("sets", "presets_dir")  # given both before and after the command: both count


def dest(name: str) -> str:
    return OPTIONS[name][1].get("dest", name.replace("-", "_"))


def add_options(parser: argparse.ArgumentParser, names: tuple[str, ...], prefix: str = "") -> None:
    for name in names:
        flags, kwargs = OPTIONS[name]
        parser.add_argument(*flags, **{**kwargs, "dest": prefix + dest(name), "default": argparse.SUPPRESS})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmnist-tui",
        description="Train Fashion-MNIST classifiers with PyTorch Lightning and watch them in the terminal. "
        "With no command, opens the app.",
    )
    # Before a command these are the app's options; a command that takes one reads it from here too.
    add_options(parser, APP, prefix="top_")
    parser.add_argument("--start", action="store_true", help="start the preset at once (the app)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command, (summary, names) in COMMANDS.items():
        p = sub.add_parser(command, help=summary, description=summary)
        add_options(p, names)
        if command == "run":
            p.add_argument("--resume", metavar="RUN", help="continue a run from its last checkpoint (folder or name)")
            p.add_argument("--like", metavar="RUN", help="a new run with RUN's config (--set changes it); says "
                           "which versions or data files differ from RUN's")  # fmt: skip
            p.add_argument("--progress-every", type=seconds, metavar="SECONDS",
                           help="a progress line every SECONDS (default: 1 on a terminal, where it is redrawn "
                                "in place; 30 into a file or pipe; 0: none, only epochs and the end)")  # fmt: skip
            p.add_argument("-v", "--verbose", action="store_true", help="also print Lightning's info messages")
            p.add_argument(
                "--detach",
                action="store_true",
                help="run in a background process that outlives this terminal; print its name and "
                "folder and return (its output goes to run.log in the run folder)",
            )
        elif command == "attach":
            p.add_argument("run", nargs="?", metavar="RUN", help="a run's folder, name or unique prefix")
        elif command == "control":
            p.add_argument("run", metavar="RUN", help="a run's folder, name or unique prefix")
            p.add_argument("action", metavar="ACTION", help="stop, stop-after-epoch, checkpoint or lr=VALUE")
        elif command in ("queue", "sweep"):
            if command == "queue":
                p.add_argument("action", nargs="?", choices=("list", "add", "rm", "clear"), metavar="ACTION",
                               help="list (the default), add, rm ID, or clear")  # fmt: skip
                p.add_argument("id", nargs="?", metavar="ID", help="the entry `rm` removes")
                p.add_argument("--ended", action="store_true", help="clear: remove the ended entries, not the queued")
            else:
                p.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                               help="values of one key (repeatable: the runs are every combination)")  # fmt: skip
                p.add_argument("--yes", action="store_true", help="queue a sweep of more than 100 runs")
            p.add_argument("--slots", type=int, metavar="N",
                           help="runs at once from now on (default: one per GPU, or 1 on a CPU machine)")  # fmt: skip
        elif command == "compare":
            p.add_argument("runs", nargs="+", metavar="RUN", help="a run's folder, name or unique prefix (2 to 6)")
        elif command == "serve":
            from fmnist_tui.cli.serve import add_arguments

            add_arguments(p)
        elif command == "lr-find":
            p.add_argument(
                "--min-lr", type=float, default=1e-6, metavar="LR", help="the lowest lr tried (default 1e-6)"
            )
            p.add_argument("--max-lr", type=float, default=10.0, metavar="LR",
                           help="the highest lr tried, at most 10 (default 10; the search stops once the loss blows up)")  # fmt: skip
            p.add_argument("--steps", type=int, default=100, metavar="N",
                           help="optimiser steps, one lr each, spaced evenly on a log scale (default 100, at least 13)")  # fmt: skip
        elif command in ("wait", "show"):
            p.add_argument("run", metavar="RUN", help="a run's folder, name or unique prefix")
        elif command in ("eval", "export"):
            p.add_argument("run", metavar="RUN", help="a run's folder, name or unique prefix")
            p.add_argument(
                "--checkpoint",
                choices=("best", "last"),
                default="best",
                help="which weights: best.ckpt (the best validation epoch, the default) or last.ckpt",
            )
            if command == "export":
                p.add_argument(
                    "--format",
                    dest="format",
                    choices=("onnx", "torchscript"),
                    required=True,
                    help="onnx (needs: pip install 'fmnist-tui[export]') or torchscript",
                )
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments with every option merged from before and after the command (exit 2 on misuse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    takes = APP if args.command is None else COMMANDS[args.command][1]
    for name in APP:
        top = getattr(args, "top_" + dest(name), None)
        if top is None:
            continue
        if name not in takes:
            parser.error(f"{OPTIONS[name][0][0]} does not apply to `fmnist-tui {args.command}`")
        here = getattr(args, dest(name), None)
        setattr(args, dest(name), top + (here or []) if dest(name) in APPENDED else top if here is None else here)
    for name in takes:
        default: list | bool | None = [] if dest(name) in APPENDED else False if name in FLAGS else None
        setattr(args, dest(name), getattr(args, dest(name), default))
    if args.start and args.command is not None:
        parser.error(f"--start does not apply to `fmnist-tui {args.command}`")
    if args.command == "run" and sum(x is not None for x in (args.preset, args.resume, args.like)) != 1:
        parser.error(
            "run: give one of --preset NAME (a new run), --like RUN (a new run with RUN's config) "
            "or --resume RUN (more of one)"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.argv = sys.argv[1:] if argv is None else argv  # as typed: a queued run's card says what queued it
    try:
        return _command(args)
    except (ConfigError, RunStoreError) as err:
        return error(str(err))
    except KeyboardInterrupt:  # Ctrl-C before a run's own handlers are in place (torch still loading)
        error("interrupted before anything started")
        return 130
    except BrokenPipeError:  # `fmnist-tui runs | head -1`: the reader has what it wanted
        silence_stdout()
        return 0
    except OSError as err:
        if err.errno in FULL and err.filename is None:  # stdout on a full disk (`> /dev/full`)
            silence_stdout()
            error(f"cannot write the output: {err.strerror}")
            return 1
        raise


def _command(args: argparse.Namespace) -> int:
    if args.command in ("presets", "runs", "keys"):
        from fmnist_tui.cli import listings

        if sys.stdout is None:  # `>&-`: a listing nobody can read
            error("standard output is closed: nothing to print the listing to")
            return 1
        return getattr(listings, f"cmd_{args.command}")(args)
    if args.command in ("control", "wait"):
        from fmnist_tui.cli import inflight

        return getattr(inflight, f"cmd_{args.command}")(args)
    if args.command == "show":
        from fmnist_tui.cli.show import cmd_show

        return cmd_show(args)
    if args.command == "compare":
        from fmnist_tui.cli.compare import cmd_compare

        return cmd_compare(args)
    if args.command == "eval":
        from fmnist_tui.cli.evaluate import cmd_eval

        return cmd_eval(args)
    if args.command == "export":
        from fmnist_tui.cli.export import cmd_export

        return cmd_export(args)
    if args.command == "attach":
        from fmnist_tui.cli.inflight import find_run
        from fmnist_tui.tui.app import run_app

        info = find_run(args.runs_dir, args.run, running=True)
        if not (info.path / "config.toml").is_file():
            raise RunStoreError(f"{info.path}: no config.toml, so this is not a run folder")
        return run_app(runs_dir=args.runs_dir, attach=info.path, alerts=not args.no_alerts)
    overrides = parse_set_items(args.sets)
    if args.command in ("queue", "sweep"):
        from fmnist_tui.cli import queueing
        from fmnist_tui.runqueue import QueueError

        try:
            return getattr(queueing, f"cmd_{args.command}")(args, overrides)
        except QueueError as err:
            return error(str(err))
    if args.command == "serve":
        from fmnist_tui.cli.serve import cmd_serve

        return cmd_serve(args, overrides)
    if args.command == "lr-find":
        from fmnist_tui.cli.lrfind import cmd_lr_find

        return cmd_lr_find(args, overrides)
    if args.command == "run":
        if args.detach:
            from fmnist_tui.cli.inflight import cmd_detach

            return cmd_detach(args, overrides)
        from fmnist_tui.cli.headless import run_headless

        return run_headless(args, overrides)
    from fmnist_tui.tui.app import run_app

    return run_app(preset=args.preset, start=args.start, data_dir=args.data_dir, runs_dir=args.runs_dir,
                   presets_dirs=args.presets_dir, overrides=overrides, alerts=not args.no_alerts)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
