"""`fmnist-tui queue ...` and `fmnist-tui sweep`: runs waiting for a device. No torch.

Adding validates at once (a bad value: one line, exit 2, nothing queued) and starts the
runs folder's scheduler if none runs (scheduler.py), which starts each entry as a
background run when a slot is free.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

from fmnist_tui import devices, paths, scheduler
from fmnist_tui.cli.output import error, preset_config, print_json, warn
from fmnist_tui.config import ConfigError, RunConfig, make_config, with_overrides
from fmnist_tui.files import write_atomic
from fmnist_tui.format import printable
from fmnist_tui.runqueue import Entry, Queue, QueueError, now
from fmnist_tui.sweep import MOST_AT_ALL, MOST_WITHOUT_ASKING, expand, parse_grid


def base_config(args, overrides: dict[str, Any]) -> RunConfig:
    config = preset_config(args.presets_dir, args.preset or "tutorial", overrides)
    if args.data_dir:
        config = with_overrides(config, {"data_dir": str(args.data_dir)}, "--data-dir")
    devices.check_runnable(config)
    return config


def check_slots(slots: int | None) -> None:
    if slots is None:
        return
    gpus = len(devices.visible_gpus())
    most = gpus or os.cpu_count() or 1
    if not 1 <= slots <= most:
        what = f"{gpus} GPUs" if gpus else f"{most} CPU cores"
        raise ConfigError(f"--slots {slots}: allowed: 1 to {most} (this machine has {what})")


def set_slots(root: Path, slots: int | None) -> None:
    check_slots(slots)
    if slots is None:
        return
    queue = Queue(root)
    try:
        queue.root.mkdir(parents=True, exist_ok=True)
        write_atomic(queue.root / "slots", f"{slots}\n")
    except OSError as err:
        raise QueueError(f"cannot set the slots in {queue.root}: {err}") from None


def enqueue(args, configs: list[tuple[dict[str, Any], str]], sweep: str = "") -> int:
    root = paths.runs_dir(args.runs_dir)
    from fmnist_tui.runs import RunStore

    RunStore(root).check_writable()
    set_slots(root, args.slots)
    try:
        added = Queue(root).add(configs, sweep, command=shlex.join(["fmnist-tui", *args.argv]))
    except QueueError as err:
        return error(str(err))
    try:
        started = scheduler.ensure_running(root)
    except QueueError as err:
        error(f"queued {', '.join(str(e.id) for e in added)}, but {err}")
        return 1
    if args.json:
        print(json.dumps({"queued": [e.id for e in added], "sweep": sweep or None, "scheduler_started": started}))
        return 0
    for entry in added[:10]:
        print(f"queued {entry.id}: {entry.preset}{'  ' + entry.label if entry.label else ''}")
    if len(added) > 10:
        print(f"... and {len(added) - 10} more")
    print(f"scheduler {'started' if started else 'running'}; see them: fmnist-tui queue")
    return 0


def cmd_queue(args, overrides: dict[str, Any]) -> int:
    action = args.action or "list"
    if action != "add" and (overrides or args.preset or args.data_dir):
        return error(f"--set, --preset and --data-dir apply to `fmnist-tui queue add`, not `queue {action}`")
    if args.ended and action != "clear":
        return error(f"--ended applies to `fmnist-tui queue clear`, not `queue {action}`")
    check_slots(args.slots)  # before anything changes
    if (args.id is not None) != (action == "rm"):
        return error("give an entry's id to `queue rm ID`, and to nothing else" if action == "rm" or args.id is None
                     else f"`queue {action}` takes no id")  # fmt: skip
    if action == "add":
        config = base_config(args, overrides)
        return enqueue(args, [(config.model_dump(), "")])
    root = paths.runs_dir(args.runs_dir)
    queue = Queue(root)
    if action == "list":
        set_slots(root, args.slots)  # from now on, for the scheduler running or the next one
        return listing(queue, args.json)
    if action == "rm":
        try:
            entry_id = int(args.id)
        except ValueError:
            return error(f"queue rm {printable(args.id)!r}: an entry's id is a number (fmnist-tui queue lists them)")
        entry = queue.remove(entry_id)
        set_slots(root, args.slots)
        print(f"removed {entry.id}: {entry.preset}{'  ' + entry.label if entry.label else ''}")
        return 0
    gone = queue.clear(ended=args.ended)
    set_slots(root, args.slots)
    print(f"removed {len(gone)} {'ended' if args.ended else 'queued'} entr{'y' if len(gone) == 1 else 'ies'}")
    return 0


def cmd_sweep(args, overrides: dict[str, Any]) -> int:
    grid = parse_grid(args.grid or [])
    count = math.prod(len(values) for _, values in grid)  # before checking any: a huge grid is refused at once
    if count > MOST_AT_ALL:
        return error(f"this sweep is {count} runs, more than {MOST_AT_ALL}: split it into smaller sweeps")
    if count > MOST_WITHOUT_ASKING and not args.yes:
        return error(f"this sweep is {count} runs: add --yes to queue them all")
    base = base_config(args, overrides)
    points = expand(base, grid)
    for values, point in points:  # what this machine cannot run, refused now as for `queue add`
        try:
            devices.check_runnable(make_config(values))
        except ConfigError as err:
            raise ConfigError(f"sweep point {point}: {err}") from None
    print(f"sweep: {len(points)} runs ({' x '.join(f'{len(v)} {k}' for k, v in grid)})", file=sys.stderr)
    name = f"sweep-{now().replace(':', '').replace('-', '')}-{uuid.uuid4().hex[:4]}"
    return enqueue(args, points, name)


def listing(queue: Queue, as_json: bool) -> int:
    loaded = queue.load()
    for problem in loaded.problems:
        warn(f"{problem} (set aside in rejected.jsonl at the next change)")
    if as_json:
        print_json([entry_record(e) for e in loaded.entries])
        return 0
    state = "running" if scheduler.running(queue.root.parent) else "not running"
    slots = scheduler.read_slots(queue)
    where = f"GPUs {','.join(slots.gpus)}" if slots.gpus else "CPU"
    print(f"scheduler {state}; {slots.count} slot{'s' if slots.count != 1 else ''} ({where})")
    if not loaded.entries:
        print(f"the queue of {printable(queue.root.parent)} is empty")
        return 0
    print(f"{'ID':>4}  {'STATE':<11} {'PRESET':<12} {'POINT':<28} RUN")
    for e in loaded.entries:
        run = printable(e.run or "")
        if e.error and e.state == "failed":
            run = f"{run}  {printable(e.error)[:80]}".strip()
        print(f"{e.id:>4}  {e.state:<11} {e.preset[:12]:<12} {printable(e.label)[:28]:<28} {run}")
    return 0


def entry_record(e: Entry) -> dict:
    return {"id": e.id, "state": e.state, "preset": e.config.get("name"), "label": e.label, "sweep": e.sweep or None,
            "run": e.run, "status": e.status, "error": e.error, "devices": e.devices, "added": e.added,
            "started": e.started, "ended": e.ended, "config": e.config}  # fmt: skip
