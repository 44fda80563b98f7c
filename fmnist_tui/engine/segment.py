"""What one process trains: a new run, or more of one. Everything is checked before anything is written.

`open_resume` takes the run's writer lock first and only then reads the folder, so no
other process can change it between the checks and the writes. It refuses, in one line
(ConfigError or RunStoreError: exit 2), whatever would make the record lie or fail later:
a config.toml that no longer matches the checkpoint, a checkpoint that does not load into
the network, files that are not plain files, a change of what is trained, no GPU for a
GPU config. What it can mend without losing anything (a best.ckpt left behind by a kill,
a damaged best.ckpt or summary.json, set aside rather than deleted) it lists as repairs,
which `begin` carries out once the run really starts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fmnist_tui import paths
from fmnist_tui.config import RESUMABLE, ConfigError, RunConfig, check_resume_overrides, make_config, with_overrides
from fmnist_tui.devices import check_devices, per_node
from fmnist_tui.engine.events import HANDED_OVER
from fmnist_tui.files import DiskFull, free_name
from fmnist_tui.format import printable, value_text
from fmnist_tui.metrics import FILE as METRICS
from fmnist_tui.metrics import Carried, read_rows, restart_at
from fmnist_tui.runs import STATUSES, RunDir, RunStore, RunStoreError

HANDOVER_WAIT_S = 300.0  # an app's run stops within a step; this bounds one that is stuck


@dataclass
class Segment:
    """What this process trains: a new run, or more of one (`resume_from` set)."""

    run_dir: RunDir  # locked by this process
    config: RunConfig
    resume_from: Path | None = None
    step: int = 0  # where the checkpoint stands
    epochs_recorded: int = 0  # the epoch rows it holds
    history: list[dict] = field(default_factory=list)  # config.toml's [[resume]] tables, this one last
    previous: dict = field(default_factory=dict)  # summary.json before this segment
    notes: list[str] = field(default_factory=list)  # warnings for the log once the run starts
    republish_best: bool = False  # best.ckpt is last.ckpt's epoch but was not written before a kill
    forget_best: bool = False  # best.ckpt is not what last.ckpt says it is: track the best anew
    set_aside: list[Path] = field(default_factory=list)  # damaged files to keep beside, not to read
    ranks: Any = None  # the DDP processes this one started (engine/ranks.py)
    scratch: bool = False  # a DDP process other than the first: its folder is scratch, the run's is not its own
    report: Any = None  # the sink the run reports to, once it trains
    stop_test: dict = field(default_factory=dict)  # a run stopped by its user: the test of its weights
    card: Any = None  # the thread writing this start's card.json (engine/card.py)

    @property
    def resumed(self) -> bool:
        return bool(self.history)


def check_device(config: RunConfig) -> RunConfig:
    """A GPU config on a machine without one, or more devices than there are, fails here, before any
    folder is made or changed. devices = -1 becomes the number there is."""
    import torch

    gpus = torch.cuda.device_count()
    check_devices(config, gpus)
    if config.devices == -1:
        config = with_overrides(config, {"devices": per_node(config, gpus)}, "devices = -1")
    return config


def with_data_dir(config: RunConfig, data_dir: str | os.PathLike | None) -> RunConfig:
    """--data-dir beats the config's data_dir, which beats $FMNIST_TUI_DATA_DIR and the default."""
    data = str(paths.data_dir(data_dir)) if data_dir else (config.data_dir or str(paths.data_dir()))
    return with_overrides(config, {"data_dir": data}, "data folder")


def open_new(store: RunStore, config: RunConfig, data_dir: str | os.PathLike | None, tag: str = "",
             record: dict | None = None) -> Segment:  # fmt: skip
    config = check_device(with_data_dir(config, data_dir))
    return Segment(store.create(config, tag, record), config)


def open_resume(store: RunStore, ref: str, overrides: dict, data_dir: str | os.PathLike | None,
                handover: bool = False) -> Segment:  # fmt: skip
    """Lock the run and check that it can go on as asked; nothing is written yet.

    A hand-over (an app gives its run to a background process) waits for the app to let go of
    the lock, then goes on only if the app's segment says it handed the run over: a process
    left waiting from a hand-over that failed must never take the run over later."""
    from fmnist_tui.engine import checkpoint  # noqa: F401 - torch loads now (seconds), not while the lock is held

    path = store.find(ref).path
    if not (path / "config.toml").is_file():  # not a run: leave no lock file behind in it
        raise RunStoreError(f"{printable(path)}: no config.toml, so this is not a run folder (or its config was lost)")
    run_dir = RunDir(path)
    run_dir.lock(HANDOVER_WAIT_S if handover else 1.0)
    try:
        if handover and run_dir.read_summary().get("error") != HANDED_OVER:
            status = printable(run_dir.read_summary().get("status", "?"))
            raise RunStoreError(f"run {printable(path.name)} was not handed over to this process "
                                f"(it is {status}): nothing was done")  # fmt: skip
        return _check_resume(store, run_dir, overrides, data_dir)
    except BaseException:
        run_dir.unlock()
        raise


def _check_resume(store: RunStore, run_dir: RunDir, overrides: dict, data_dir) -> Segment:
    from fmnist_tui.engine.checkpoint import read_point

    info = store.read(run_dir.path)  # read under the lock: nobody changes it now
    where = printable(run_dir.path)
    if not info.config:
        raise RunStoreError(f"{where}: config.toml is missing or unreadable, so nothing says what this run trains")
    for name in ("summary.json", METRICS, "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        if os.path.lexists(run_dir.path / name) and not (run_dir.path / name).is_file():
            raise RunStoreError(f"{where}/{name} is not a plain file: move it away, then resume")
    if not run_dir.checkpoints.is_dir():
        raise RunStoreError(f"{where}/checkpoints is not a folder: move it away, then resume")
    try:
        (run_dir.path / METRICS).exists() and (run_dir.path / METRICS).read_bytes()
    except OSError as err:
        raise RunStoreError(f"{where}/{METRICS} cannot be read ({err.strerror}): nothing was changed") from None
    check_resume_overrides(overrides)
    if data_dir:
        overrides = {**overrides, "data_dir": str(paths.data_dir(data_dir))}
    before = make_config(info.config, f"{where}/config.toml")
    config = check_device(with_overrides(before, overrides))
    status = info.summary.get("status")
    status_before = "interrupted" if status == "running" else status if status in STATUSES else "incomplete"
    seg = Segment(run_dir, config, previous=dict(info.summary))
    per_epoch, total = config.steps_per_epoch, config.epochs * config.steps_per_epoch
    rows = read_rows(run_dir.path / METRICS)

    if not info.last_checkpoint.exists():
        seg.notes.append("there is no checkpoints/last.ckpt to go on from: the run starts again from step 0")
        if any(r["kind"] == "epoch" for r in rows):  # e.g. the disk filled at the first checkpoint; or it was deleted
            seg.set_aside += [p for p in (run_dir.path / METRICS, run_dir.checkpoints / "best.ckpt") if p.exists()]
            seg.notes.append("the earlier record is kept as metrics.csv.damaged (and best.ckpt.damaged)")
    else:
        point = read_point(info.last_checkpoint)
        _same_run(before, point.config, where)
        point.check_loads(config)
        seg.resume_from, seg.step = info.last_checkpoint, point.step
        if point.step > total:
            raise ConfigError(f"--set epochs={config.epochs}: the run has already trained "
                              f"{point.step / per_epoch:.3g} epochs; give at least {-(-point.step // per_epoch)}")  # fmt: skip
        if status_before == "finished" and point.step >= total:
            raise ConfigError(f"run {info.name} has finished its {config.epochs} epochs; "
                              f"to train further, resume with --set epochs=N (N > {config.epochs})")  # fmt: skip
        seg.epochs_recorded = point.epochs_recorded if point.epochs_recorded is not None else sum(
            1 for r in rows if r["kind"] == "epoch" and int(r["step"]) <= point.step)  # an older checkpoint  # fmt: skip
        _check_best(seg, point, read_point)
        if point.schedule_end is not None and point.step >= point.schedule_end and total > point.step:
            more = (total - point.step) / per_epoch
            seg.notes.append(f"the {config.schedule} schedule had ended: the {more:g} epoch{'s' * (more != 1)} to come "
                             "train at its last learning rate (start a new run for a new schedule)")  # fmt: skip
    if info.problems and (run_dir.path / "summary.json").exists():
        seg.set_aside.append(run_dir.path / "summary.json")
        seg.notes.append("summary.json was unreadable: kept as summary.json.damaged, a new one is written")
    old, new = before.model_dump(), config.model_dump()
    entry = {
        "started": datetime.now().isoformat(timespec="seconds"), "step": seg.step, "status_before": status_before,
        "changed": {k: [old[k], new[k]] for k in new if new[k] != old[k] and None not in (new[k], old[k])},
    }  # fmt: skip
    seg.history = [*info.history, entry]
    try:
        run_dir.reserve_space()
    except DiskFull as err:
        raise RunStoreError(f"{err}: free some space, then resume") from None
    return seg


def _same_run(config: RunConfig, trained: dict | None, where: str) -> None:
    """config.toml must still describe the weights in last.ckpt (it holds the config it trained with)."""
    if trained is None:
        return
    ours = config.model_dump()
    for key, value in trained.items():
        if key in RESUMABLE or key not in ours or value is None or ours[key] is None or ours[key] == value:
            continue
        raise RunStoreError(f"{where}: config.toml says {key} = {value_text(ours[key])} but last.ckpt was trained "
                            f"with {key} = {value_text(value)}; put config.toml back (a resume may change only "
                            f"{', '.join(RESUMABLE)})")  # fmt: skip


def _check_best(seg: Segment, point, read_point) -> None:
    """best.ckpt must hold the step last.ckpt says it does; what a kill left behind is mended."""
    best = seg.run_dir.checkpoints / "best.ckpt"
    recorded = point.best_step  # what last.ckpt says best.ckpt holds
    if recorded is None:
        return
    try:
        held = read_point(best).step if best.exists() else None
    except RunStoreError:
        held = None
        seg.set_aside.append(best)
        seg.notes.append("checkpoints/best.ckpt did not load: it is kept as best.ckpt.damaged")
    if held == recorded:
        return
    if recorded == point.step:  # killed between saving last.ckpt and publishing it as best.ckpt
        seg.republish_best = True
        return
    seg.forget_best = True
    what = "is missing" if held is None else f"holds step {held}"
    seg.notes.append(f"checkpoints/best.ckpt {what}, not the best step {recorded} that last.ckpt recorded: "
                     "the best epoch is tracked anew from here")  # fmt: skip


def begin(seg: Segment) -> Carried | None:
    """A resume: carry out its repairs, record what it changes, mark the run running, cut metrics.csv
    back to the checkpoint. A new run has nothing to do here."""
    from fmnist_tui.engine.checkpoint import publish_copy

    if not seg.resumed:
        return None
    run_dir = seg.run_dir
    for path in seg.set_aside:
        os.replace(path, free_name(path.with_name(path.name + ".damaged")))
    if seg.republish_best:
        publish_copy(run_dir.checkpoints / "last.ckpt", run_dir.checkpoints / "best.ckpt")
    for tmp in [*run_dir.path.glob(".*.tmp"), *run_dir.checkpoints.glob(".*.tmp")]:
        if tmp.is_file() or tmp.is_symlink():
            tmp.unlink()  # left by a kill mid-write; this process holds the lock
    run_dir.write_config(seg.config, seg.history)
    started = seg.previous.get("started") if "summary.json" not in {p.name for p in seg.set_aside} else None
    run_dir.write_summary(status="running", pid=os.getpid(), started=started or _started_from_name(run_dir.path),
                          resumed=_count(seg.previous.get("resumed")) + 1, error=None)  # fmt: skip
    return restart_at(run_dir.path / METRICS, seg.step, seg.epochs_recorded)


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9 else 0


def _started_from_name(path: Path) -> str | None:
    match = re.match(r"(\d{8}-\d{6})", path.name)
    return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").isoformat() if match else None
