"""`fmnist-tui runs`, `presets` and `keys`: a table for people, or JSON (`--json`) for scripts."""

from __future__ import annotations

from fmnist_tui import paths
from fmnist_tui.cli.output import print_json, warn
from fmnist_tui.config import RunConfig, allowed
from fmnist_tui.format import clock, epoch_number, number, pct, printable


def cmd_runs(args) -> int:
    from fmnist_tui.runs import RunStore

    store = RunStore(paths.runs_dir(args.runs_dir))
    runs = store.list()
    if args.json:
        print_json([run_record(r) for r in runs])
        return 0
    if not runs:
        print(f"no runs in {printable(store.root)}")
        return 0
    width = max(len(r.name) for r in runs)
    print(f"{'RUN':<{width}}  {'PRESET':<12} {'STATUS':<11} {'BEST VAL':>8} {'TEST':>7} {'TIME':>8}")
    for r in runs:
        print(f"{r.name:<{width}}  {r.preset[:12]:<12} {r.status:<11} {pct(r.get('best_val_acc')):>8} "
              f"{pct(r.get('test_acc')):>7} {clock(r.get('duration_s')):>8}")  # fmt: skip
    return 0


def run_record(r) -> dict:
    """A run for scripts: the figures as numbers (null when missing or not numbers), epochs from 0."""
    epoch = epoch_number(r.get("test_epoch"))
    return {
        "run": r.path.name, "path": str(r.path), "preset": r.config.get("name"), "status": r.status,
        "started": r.get("started"), "duration_s": number(r.get("duration_s")),
        "best_val_acc": number(r.get("best_val_acc")), "test_acc": number(r.get("test_acc")),
        "test_loss": number(r.get("test_loss")), "test_checkpoint": r.get("test_checkpoint"),
        "test_epoch": None if epoch is None else epoch - 1, "error": r.get("error"), "problems": r.problems,
    }  # fmt: skip


def cmd_presets(args) -> int:
    from fmnist_tui.config import to_dict
    from fmnist_tui.presets import load_presets

    found = load_presets(args.presets_dir)
    for problem in found.errors:
        warn(problem)
    if args.json:
        print_json([{"name": p.name, "path": str(p.path), "config": to_dict(p.config)} for p in found.presets.values()])
        return 0 if found.presets else 1
    width = max((len(n) for n in found.presets), default=4)
    for name, preset in found.presets.items():
        print(f"{name:<{width}}  {preset.config.description}")
    return 0 if found.presets else 1


def cmd_keys(args) -> int:
    fields = RunConfig.model_fields
    if args.json:
        print_json(
            [{"key": k, "default": f.default, "allowed": allowed(k), "help": f.description} for k, f in fields.items()]
        )
        return 0
    for key, field in fields.items():
        print(f"{key:<16} (default {field.default!r}) {field.description}")
    return 0
