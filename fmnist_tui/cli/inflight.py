"""Runs in flight from the shell: `run --detach`, `control`, `wait`, and finding the run `attach` opens.

None of these loads torch: they talk to the run's process through its folder (the writer
lock, events.jsonl, control.sock), so they answer at once, even while it trains.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from fmnist_tui import paths
from fmnist_tui.cli.output import error, preset_config
from fmnist_tui.format import printable
from fmnist_tui.runs import RunDir, RunInfo, RunLocked, RunStore, RunStoreError, lock_held

# `wait`: the exit code of the run's process, as `run` would have exited (the signal is not on record).
WAIT_EXIT = {"finished": 0, "failed": 1, "diverged": 1, "stopped": 130, "interrupted": 143}
KILLED = 137  # the process died without writing its end (kill -9: 128 + SIGKILL)


def find_run(runs_dir: Path | None, ref: str | None, running: bool = False) -> RunInfo:
    """The run named `ref` (folder, name or unique prefix); with no `ref`, the newest running run."""
    store = RunStore(paths.runs_dir(runs_dir))
    if ref:
        return store.find(ref)
    live = [r for r in store.list() if lock_held(r.path)] if running else store.list()
    if not live:
        raise RunStoreError(
            f"no run is running in {store.root}: name one to see its record (fmnist-tui runs lists them)"
        )
    return live[0]


def take_run(info: RunInfo, doing: str) -> RunDir:
    """The run's writer lock, for a command that writes a file into a run that has ended (eval, export);
    RunStoreError (one line) if it runs, or its folder cannot be written."""
    if not os.access(info.path, os.W_OK):
        raise RunStoreError(f"nothing {doing}: the run folder {printable(info.path)} is not writable")
    run_dir = RunDir(info.path)
    try:
        run_dir.lock()
    except RunLocked:
        raise RunStoreError(f"run {info.name} is running: it can be {doing} when it has ended "
                            "(or stop it first)") from None  # fmt: skip
    except OSError as err:  # writing who holds the lock failed: a full disk, most likely
        raise RunStoreError(f"nothing {doing}: cannot take the writer lock of {printable(info.path)}: "
                            f"{err.strerror or err}") from None  # fmt: skip
    return run_dir


def cmd_detach(args, overrides: dict) -> int:
    """`run --detach`: start the run in its own process; print its name and folder once it holds them."""
    from fmnist_tui.background import BackgroundError, Job, start

    job = Job(resume=args.resume, overrides=overrides, verbose=args.verbose, progress_every=args.progress_every,
              runs_dir=str(args.runs_dir) if args.runs_dir else None,
              data_dir=str(args.data_dir) if args.data_dir else None)  # fmt: skip
    if args.preset:
        job.config, job.overrides = preset_config(args.presets_dir, args.preset, overrides).model_dump(), {}
    elif args.like:
        from fmnist_tui.cli.show import like_config

        job.config, job.overrides = like_config(args, overrides).model_dump(), {}
    try:
        started = start(job)
    except BackgroundError as err:
        error(str(err))
        return err.code
    assert started is not None
    name = started.run_path.name
    if args.json:
        print(json.dumps({"run": name, "run_dir": str(started.run_path), "pid": started.pid}))
        return 0
    print(f"run {printable(name)} started in the background (pid {started.pid})")
    print(f"folder {printable(started.run_path)}")
    print(f"watch it: fmnist-tui attach {printable(name)}   stop it: fmnist-tui control {printable(name)} stop")
    print(f"its output: {printable(started.run_path / 'run.log')}")
    return 0


def cmd_control(args) -> int:
    from fmnist_tui.engine.control import ControlError, parse_action, send

    info = find_run(args.runs_dir, args.run)
    try:
        action, value = parse_action(args.action)
    except ControlError as err:
        return error(str(err))
    if not lock_held(info.path):
        return error(f"run {info.name} is not running ({info.status}): there is nothing to control")
    try:
        text = send(info.path, action, value)
    except ControlError as err:
        return error(f"run {info.name}: {err}")
    if args.json:
        print(json.dumps({"run": info.path.name, "action": action, "value": value, "text": text}))
    else:
        print(f"run {info.name}: {printable(text)}")
    return 0


def cmd_wait(args) -> int:
    """Block until the run ends; print how it ended; exit with the code its process had."""
    from fmnist_tui.cli.headless import summary_text
    from fmnist_tui.follow import Follower

    info = find_run(args.runs_dir, args.run)
    if not (info.path / "config.toml").is_file():
        return error(f"{printable(info.path)} is not a run folder (no config.toml)")
    follower = Follower(info.path)
    follower.skip_history()
    while not follower.over:
        follower.poll()
        time.sleep(0.25)
    end = follower.ended
    assert end is not None
    print(summary_text(end))
    if follower.vanished:
        return KILLED
    return WAIT_EXIT.get(end.status, 1)
