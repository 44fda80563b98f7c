"""`fmnist-tui` and its subcommands. Heavy imports (torch, textual) happen only when needed."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fmnist_tui import paths
from fmnist_tui.config import ConfigError, parse_set_items
from fmnist_tui.files import FULL

EXIT_BAD_INPUT = 2


def user_path(text: str) -> Path:
    """A folder option: "~" is the home folder wherever it is written (also inside --opt=~/x)."""
    return Path(text).expanduser()


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set lr=0.01 --set model=cnn")  # fmt: skip
    p.add_argument("--data-dir", type=user_path, help="Fashion-MNIST folder (default: $FMNIST_TUI_DATA_DIR or the per-user data folder)")
    p.add_argument("--runs-dir", type=user_path, help="runs folder (default: $FMNIST_TUI_RUNS_DIR or the per-user runs folder)")
    p.add_argument("--presets-dir", action="append", default=[], type=user_path, metavar="DIR",
                   help="also read presets from DIR (repeatable)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmnist-tui",
        description="Train Fashion-MNIST classifiers with PyTorch Lightning and watch them in the terminal. "
        "With no command, opens the app.",
    )
    _common(parser)
    parser.add_argument("--preset", help="preset to select in the app")
    parser.add_argument("--start", action="store_true", help="start the selected preset at once")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="train headless: progress as plain text, for scripts and batch jobs")
    _common(run)
    what = run.add_mutually_exclusive_group(required=True)
    what.add_argument("--preset", help="preset to run (see `fmnist-tui presets`)")
    what.add_argument("--resume", metavar="RUN", help="continue a run from its last checkpoint (folder or name)")
    run.add_argument("-v", "--verbose", action="store_true", help="also print Lightning's info messages")

    presets = sub.add_parser("presets", help="list presets and their descriptions")
    presets.add_argument("--presets-dir", action="append", default=[], type=user_path, metavar="DIR")

    runs = sub.add_parser("runs", help="list runs with their status and best metrics")
    runs.add_argument("--runs-dir", type=user_path, help="runs folder")

    sub.add_parser("keys", help="list every config key with its help text")
    return parser


def error(message: str) -> int:
    from fmnist_tui.format import printable

    try:
        print(f"fmnist-tui: error: {printable(message)}", file=sys.stderr)
    except (OSError, ValueError):
        pass  # stderr is closed: the exit code still says it
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _command(args)
    except ConfigError as err:
        return error(str(err))
    except BrokenPipeError:  # `fmnist-tui runs | head -1`: the reader has what it wanted
        _silence_stdout()
        return 0
    except OSError as err:
        if err.errno in FULL and err.filename is None:  # stdout on a full disk (`> /dev/full`)
            _silence_stdout()
            error(f"cannot write the output: {err.strerror}")
            return 1
        raise


def _command(args) -> int:
    if args.command in ("presets", "runs", "keys") and sys.stdout is None:  # `>&-`: a listing nobody can read
        error("standard output is closed: nothing to print the listing to")
        return 1
    if args.command == "presets":
        return cmd_presets(args)
    if args.command == "runs":
        return cmd_runs(args)
    if args.command == "keys":
        return cmd_keys()
    overrides = parse_set_items(args.sets)
    if args.command == "run":
        from fmnist_tui.cli.headless import run_headless

        return run_headless(args, overrides)
    from fmnist_tui.tui.app import run_app

    return run_app(preset=args.preset, start=args.start, data_dir=args.data_dir, runs_dir=args.runs_dir,
                   presets_dirs=args.presets_dir, overrides=overrides)  # fmt: skip


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so Python's flush at exit does not fail on it again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def cmd_presets(args) -> int:
    from fmnist_tui.format import printable
    from fmnist_tui.presets import load_presets

    found = load_presets(args.presets_dir)
    width = max((len(n) for n in found.presets), default=4)
    for name, preset in found.presets.items():
        print(f"{name:<{width}}  {preset.config.description}")
    for problem in found.errors:
        print(f"warning: {printable(problem)}", file=sys.stderr)
    return 0 if found.presets else 1


def cmd_runs(args) -> int:
    from fmnist_tui.format import clock, pct, printable
    from fmnist_tui.runs import RunStore

    store = RunStore(paths.runs_dir(args.runs_dir))
    runs = store.list()
    if not runs:
        print(f"no runs in {printable(store.root)}")
        return 0
    width = max(len(r.name) for r in runs)
    print(f"{'RUN':<{width}}  {'PRESET':<12} {'STATUS':<11} {'BEST VAL':>8} {'TEST':>7} {'TIME':>8}")
    for r in runs:
        print(f"{r.name:<{width}}  {r.preset[:12]:<12} {r.status:<11} {pct(r.get('best_val_acc')):>8} "
              f"{pct(r.get('test_acc')):>7} {clock(r.get('duration_s')):>8}")  # fmt: skip
    return 0


def cmd_keys() -> int:
    from fmnist_tui.config import RunConfig

    for key, field in RunConfig.model_fields.items():
        print(f"{key:<16} (default {field.default!r}) {field.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
