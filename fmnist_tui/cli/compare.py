"""`fmnist-tui compare RUN RUN [...]`: the runs' figures side by side, then the config keys that differ."""

from __future__ import annotations

from fmnist_tui import paths
from fmnist_tui.cli.output import error, print_json, warn
from fmnist_tui.compare import CompareError, check_count, config_diff, cut, load, no_metrics, record, table
from fmnist_tui.runs import RunStore


def columns(rows: list[tuple[str, list[str]]], head: list[str]) -> list[str]:
    """Rows of (what, values) as aligned text, one column per run."""
    rows = [(what, [cut(v) for v in values]) for what, values in rows]
    first = max(len(what) for what, _ in [("", head), *rows])
    widths = [max(len(values[i]) for _, values in [("", head), *rows]) for i in range(len(head))]
    lines = ["  ".join([" " * first, *(h.ljust(w) for h, w in zip(head, widths, strict=True))]).rstrip()]
    for what, values in rows:
        lines.append(
            "  ".join([what.ljust(first), *(v.ljust(w) for v, w in zip(values, widths, strict=True))]).rstrip()
        )
    return lines


def cmd_compare(args) -> int:
    store = RunStore(paths.runs_dir(args.runs_dir))
    try:
        check_count(len(args.runs))
        sides = load([store.find(ref) for ref in args.runs])
    except CompareError as err:
        return error(str(err))
    for line in no_metrics(sides):
        warn(line)
    if args.json:
        print_json(record(sides))
        return 0
    for side in sides:
        print(f"{side.label}  {side.info.name}")
    head = [s.label for s in sides]
    print()
    print("\n".join(columns(table(sides), head)))
    diff = config_diff(sides)
    print()
    if not diff:
        print("config: the same for all (description aside)")
        return 0
    print(f"config: {len(diff)} key{'s differ' if len(diff) != 1 else ' differs'}")
    print("\n".join(columns(diff, head)))
    return 0
