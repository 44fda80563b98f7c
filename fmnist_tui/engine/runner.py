"""`run(config, sink, stop_event)`: one training run, or one more segment of it, fit then test.

No UI here. The headless CLI and the app are two sinks over this function.
Errors before anything is written (unwritable runs folder, a run another process is
writing, a bad resume) raise; everything after ends in a RunEnded event and a
summary.json saying how it ended. The process holds the run's writer lock throughout.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from fmnist_tui import paths
from fmnist_tui.config import ConfigError, RunConfig, with_overrides
from fmnist_tui.engine import card, ranks, tensorboard
from fmnist_tui.engine.control import Controls, ControlServer
from fmnist_tui.engine.eventlog import FILE as EVENTS
from fmnist_tui.engine.eventlog import EventLog
from fmnist_tui.engine.events import HANDED_OVER, LogLine, RunEnded, Sink
from fmnist_tui.engine.logs import route_logs
from fmnist_tui.engine.segment import Segment, begin, open_new, open_resume
from fmnist_tui.engine.stop import StopRequest, reason_of
from fmnist_tui.engine.testing import evaluate_stopped, measure_test
from fmnist_tui.files import DiskFull
from fmnist_tui.format import failure_text
from fmnist_tui.metrics import FILE as METRICS
from fmnist_tui.metrics import MetricsWriter, best_val_acc, read_rows, recorded_seconds
from fmnist_tui.runs import LockLost, RunStore

log = logging.getLogger("fmnist_tui.engine")


def on_gpu(accelerator: str = "auto") -> bool:
    import torch

    return accelerator != "cpu" and torch.cuda.is_available()


def device_description(accelerator: str = "auto") -> str:
    import torch

    if on_gpu(accelerator):
        props = torch.cuda.get_device_properties(0)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    return f"CPU ({os.cpu_count()} cores)"


def run(
    config: RunConfig | None,
    sink: Sink,
    stop_event: threading.Event | None = None,
    *,
    runs_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    resume: str | None = None,
    overrides: dict | None = None,
    cpu_threads: int | None = None,
    callbacks: list | None = None,
    opened: Callable[[Path], None] | None = None,
    handover: bool = False,
    tag: str = "",
    record: dict | None = None,
) -> RunEnded:
    """Train and test one configuration (or resume run `resume`), reporting through `sink`.

    `cpu_threads` caps torch's CPU threads for this run (the app leaves a core to its UI).
    `callbacks` are extra Lightning callbacks (the benchmarks time and probe runs with them).
    `opened(run folder)` is called once the run's folder is locked by this process, before
    anything else (a background run reports its folder then). With `handover`, the resume
    waits for the app handing the run over to let go of it, and goes on only if it did.
    `tag` ends a new run's folder name (a sweep's point); `record` goes into its summary.json.
    """
    stop_event = stop_event or StopRequest()
    store = RunStore(paths.runs_dir(runs_dir))
    if resume:
        segment = open_resume(store, resume, overrides or {}, data_dir, handover)
    else:
        assert config is not None, "a new run needs a config"
        segment = open_new(store, with_overrides(config, overrides or {}), data_dir, tag, record)
    try:
        if opened is not None:
            opened(segment.run_dir.path)
        return _run_segment(segment, sink, stop_event, cpu_threads, callbacks or [])
    finally:
        segment.run_dir.unlock()


def _run_segment(seg: Segment, sink: Sink, stop_event: threading.Event, cpu_threads, callbacks: list) -> RunEnded:
    """The event log and the control channel, for as long as the run trains; then the training."""
    try:
        events: EventLog | None = EventLog(seg.run_dir.path / EVENTS, sink)
    except OSError as err:
        events = None
        seg.notes.append(f"{EVENTS} cannot be written ({err.strerror or err}): this run cannot be attached to")
    controls = Controls(stop_event)
    server = ControlServer(seg.run_dir.path, controls)
    try:
        server.start()
    except OSError as err:
        seg.notes.append(f"no control channel ({err.strerror or err}): only this process can stop the run")
    try:
        return _train_segment(seg, events or sink, stop_event, controls, cpu_threads, callbacks)
    finally:
        server.close()
        if events is not None:
            events.close()


def _train_segment(seg: Segment, sink: Sink, stop_event: threading.Event, controls: Controls, cpu_threads,
                   callbacks: list) -> RunEnded:  # fmt: skip
    import pytorch_lightning  # noqa: F401 - its import attaches stderr handlers that route_logs replaces
    import torch

    seg.report = sink  # for an end written from another thread (_give_up)

    threads_before = torch.get_num_threads()
    if cpu_threads:
        torch.set_num_threads(cpu_threads)
    with route_logs(sink):
        for note in seg.notes:
            log.warning(note)
        if seg.config.for_gpu and not on_gpu(seg.config.accelerator):
            log.warning(
                f"preset {seg.config.name} is made for a GPU and runs on the CPU here: expect hours, not minutes"
            )
        end: dict = {}
        try:
            carried = begin(seg)
            if carried is not None and carried.problem:
                log.warning(carried.problem)
            best = carried.best_val_acc if carried is not None else None
            copy = tensorboard.open_copy(seg.run_dir.path, seg.step if seg.resumed else None, best)
            metrics = MetricsWriter(seg.run_dir.path / METRICS, copy)
            try:
                end = _train(seg, sink, stop_event, controls, metrics, carried, callbacks)
            finally:
                metrics.close()
        except BaseException as err:  # noqa: BLE001 - reported below, never lost
            end = _ended_by(err, sink, stop_event, seg)
        finally:
            if seg.card is not None and (problem := seg.card.finish()):
                log.warning(problem)
            if seg.ranks is not None:  # the other DDP processes end with this one (finished: on their own)
                seg.ranks.close(wait_s=60.0 if end.get("status") == "finished" else 5.0)
            torch.set_num_threads(threads_before)
            _free_memory()
    return _finish(seg, end, sink)


def _ended_by(err: BaseException, sink: Sink, stop_event: threading.Event, seg: Segment) -> dict:
    from fmnist_tui.engine.idx import DataError
    from fmnist_tui.engine.reporter import Diverged, StopRun

    if seg.run_dir.lost:
        return {"status": "failed", "error": seg.run_dir.lost}
    if isinstance(err, StopRun):
        reason = reason_of(stop_event)
        if reason == "handover":  # the app's terminal went (or it quit): a background process goes on
            return {"status": "interrupted", "error": HANDED_OVER}
        return {"status": reason, **seg.stop_test}  # a stop by its user: the test of what it has
    if isinstance(err, Diverged):
        return {"status": "diverged", "error": str(err)}
    if isinstance(err, (KeyboardInterrupt, SystemExit)):
        return {"status": "interrupted", "error": type(err).__name__}
    if seg.ranks is not None:  # under DDP a rank's death shows here as a failed collective: name the rank
        seg.ranks.ended.set()  # this process ends the run itself: no rescue needed
        failure = seg.ranks.wait_failure(3.0 if _is_collective_error(err) else 0.5)
        if _is_collective_error(err):
            why = failure or f"the processes lost touch: one stopped answering ({failure_text(err)[:300]})"
            return {"status": "failed", "error": why}
    if isinstance(err, DiskFull):
        return {
            "status": "failed",
            "error": f"{err}. Free some space, then: fmnist-tui run --resume {seg.run_dir.path.name}",
        }
    if not isinstance(err, DataError):
        for line in traceback.format_exception(err)[-12:]:
            sink(LogLine("ERROR", "fmnist_tui.engine", line.rstrip()))
    return {"status": "failed", "error": failure_text(err)}


def _is_collective_error(err: BaseException) -> bool:
    import torch.distributed as dist

    text = str(err)
    return isinstance(err, dist.DistError) or any(w in text for w in ("gloo", "NCCL", "Connection closed by peer"))


def _free_memory() -> None:
    # A failed run's traceback holds its tensors; free them before the next run.
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _finish(seg: Segment, end: dict, sink: Sink) -> RunEnded:
    """summary.json first (the reserve freed for it), then the RunEnded event."""
    run_dir = seg.run_dir
    rows = read_rows(run_dir.path / METRICS)
    end.setdefault("best_val_acc", best_val_acc(rows))
    last = run_dir.checkpoints / "last.ckpt"
    if end["status"] != "finished" and last.exists():
        end["checkpoint"] = str(last)  # where to resume from
    steps = {k: end.pop(k, None) for k in ("test_step", "last_test_step")}
    ended = RunEnded(run_dir=str(run_dir.path), duration_s=recorded_seconds(rows), at=time.time(), **end)
    fields = dict(
        status=ended.status, duration_s=round(ended.duration_s, 3), best_val_acc=ended.best_val_acc,
        checkpoint=ended.checkpoint, error=ended.error, ended=datetime.now().isoformat(timespec="seconds"),
    )  # fmt: skip
    if ended.status == "finished" or ended.test_acc is not None:  # new test figures replace the earlier ones
        fields.update(
            test_acc=ended.test_acc, test_loss=ended.test_loss, test_checkpoint=ended.test_checkpoint,
            test_epoch=ended.test_epoch, test_step=steps["test_step"], last_test_acc=ended.last_test_acc,
            last_test_loss=ended.last_test_loss, last_test_epoch=ended.last_test_epoch,
            last_test_step=steps["last_test_step"],
        )  # fmt: skip
    try:
        run_dir.check_lock()  # a process that lost the run to another writes nothing more
        run_dir.release_space()
        run_dir.write_summary(**fields)
    except LockLost as err:
        ended = replace(ended, status="failed", error=str(err))
    except OSError as err:
        ended = replace(ended, error=f"{ended.error or ended.status}; summary.json not written: {err}")
    sink(ended)
    return ended


def _train(
    seg: Segment, sink, stop_event, controls: Controls, metrics: MetricsWriter, carried, callbacks: list
) -> dict:
    import pytorch_lightning as pl

    from fmnist_tui.engine.checkpoint import AtomicCheckpointIO, RunCheckpoints
    from fmnist_tui.engine.data import FashionData
    from fmnist_tui.engine.module import Classifier
    from fmnist_tui.engine.reporter import Reporter, StopRun, SummarySoFar
    from fmnist_tui.engine.steering import Steering

    config, run_dir = seg.config, seg.run_dir
    data = FashionData(config, Path(config.data_dir or paths.data_dir()))
    data.load()  # missing or corrupt data fails here, before any training
    if config.normalize and (config.norm_mean is None or config.norm_std is None):
        # Recorded in config.toml and in every checkpoint's hyperparameters: loading the weights
        # elsewhere needs the same input scaling.
        config = with_overrides(config, {"norm_mean": data.mean, "norm_std": data.std}, "normalisation")
        run_dir.write_config(config, seg.history)
    if not seg.scratch:  # how this start was made: versions, device, data hashes, commit (card.json)
        seg.card = card.Recording(run_dir.path, config, data.data_dir, seg.step)
        seg.card.start()
    if metrics.copy:
        metrics.copy.config(config.model_dump())
    run_dir.write_summary(world_size=config.world_size)
    seg.config = config
    pl.seed_everything(config.seed, verbose=False)
    module = Classifier(config.model_dump())
    checkpoints = RunCheckpoints(run_dir.checkpoints, seg.forget_best)
    reporter = Reporter(sink, stop_event, metrics, str(run_dir.path), device_description(config.accelerator),
                        config.progress_hz, config.stop_on_nan, carried, guard=run_dir.check_lock)  # fmt: skip
    so_far = SummarySoFar(run_dir.write_summary, reporter, checkpoints, tested_best(seg.previous))
    steering = Steering(controls, reporter, checkpoints, metrics, sink)
    # Callbacks run in this order at an epoch's end: its rows, its checkpoints, the summary, then controls.
    distributed = config.world_size > 1
    if distributed:
        _start_ranks(seg, config)
    trainer = pl.Trainer(
        accelerator=config.accelerator, devices=config.devices, num_nodes=config.num_nodes,
        strategy=ranks.strategy(on_gpu(config.accelerator)) if distributed else "auto", precision=config.precision,
        max_epochs=config.epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
        callbacks=[reporter, checkpoints, so_far, steering, *callbacks],
        default_root_dir=run_dir.path, benchmark=True if on_gpu(config.accelerator) else None,
    )  # fmt: skip
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(seg.resume_from) if seg.resume_from else None,
                    weights_only=True)  # fmt: skip
    except StopRun:
        if reason_of(stop_event) == "stopped":  # by its user: test what it has (a signal: end at once)
            seg.stop_test = _evaluate_stopped(trainer, module, data, checkpoints, reporter, metrics,
                                              None if seg.scratch else run_dir.path)  # fmt: skip
        raise
    return measure_test(trainer, module, data, checkpoints, metrics, None if seg.scratch else run_dir.path)


def _evaluate_stopped(trainer, module, data, checkpoints, reporter, metrics, run: Path | None) -> dict:
    try:
        log.info("testing the stopped run's weights on the test images")
        return evaluate_stopped(trainer, module, data, checkpoints, reporter, metrics, run)
    except Exception as err:  # noqa: BLE001 - the run ends as stopped whatever happens here
        log.warning(f"the stopped run was not tested ({failure_text(err)}): fmnist-tui eval can do it later")
        return {}


def _start_ranks(seg: Segment, config: RunConfig) -> None:
    """Rank 0 of a DDP run on this machine starts the others (unless a launcher did: torchrun, SLURM)."""
    import torch

    if ranks.launched_externally() or seg.scratch:
        return
    if config.num_nodes > 1:
        raise ConfigError(f"num_nodes = {config.num_nodes}: start the command on every node with torchrun or "
                          "SLURM (see the README's \"Past one machine\")")  # fmt: skip
    threads = max(1, torch.get_num_threads() // config.devices) if not on_gpu(config.accelerator) else 1
    torch.set_num_threads(threads)  # the cores shared among the processes, as Lightning's launcher does
    job = {"config": config.model_dump(), "resume_from": str(seg.resume_from) if seg.resume_from else None,
           "cpu_threads": threads}  # fmt: skip
    seg.ranks = ranks.RankGroup(config.devices, job, on_hang=lambda why: _give_up(seg, why))


def _give_up(seg: Segment, why: str) -> None:
    """A rank died and rank 0 is stuck (waiting for it to join, or in a collective): end the run as
    `_finish` would, from this thread, then leave. The training thread is stuck: nothing else writes."""
    try:
        seg.run_dir.release_space()
        (seg.run_dir.path / "control.sock").unlink(missing_ok=True)
        fields = dict(status="failed", error=why, ended=datetime.now().isoformat(timespec="seconds"))
        last = seg.run_dir.checkpoints / "last.ckpt"
        if last.exists():
            fields["checkpoint"] = str(last)
        seg.run_dir.write_summary(**fields)
        if seg.report is not None:
            rows = read_rows(seg.run_dir.path / METRICS)
            seg.report(RunEnded("failed", str(seg.run_dir.path), recorded_seconds(rows), best_val_acc(rows),
                                checkpoint=fields.get("checkpoint"), error=why, at=time.time()))  # fmt: skip
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(1)


def run_rank(config: RunConfig, stop_event: threading.Event, resume_from: str | None = None,
             cpu_threads: int | None = None) -> dict:  # fmt: skip
    """One of a DDP run's other processes (rank > 0): the same training, its files in a scratch folder
    (rank 0 writes the run's); raises whatever ended it. Its log lines are dropped (rank 0's count)."""
    import tempfile

    import torch

    from fmnist_tui.runs import RunDir

    if cpu_threads:
        torch.set_num_threads(cpu_threads)
    with tempfile.TemporaryDirectory(prefix="fmnist-rank-") as tmp:
        seg = Segment(RunDir(Path(tmp)), config, resume_from=Path(resume_from) if resume_from else None, scratch=True)
        seg.run_dir.checkpoints.mkdir()
        sink: Sink = lambda event: None  # noqa: E731
        with route_logs(sink):
            metrics = MetricsWriter(seg.run_dir.path / METRICS, None)
            try:
                return _train(seg, sink, stop_event, Controls(stop_event), metrics, None, [])
            finally:
                metrics.close()


def tested_best(summary: dict) -> int | None:
    """The step of the best.ckpt an earlier segment's test figures are of, if they name it."""
    step = summary.get("test_step")
    return step if summary.get("test_checkpoint") == "best.ckpt" and isinstance(step, int) else None
