"""`run(config, sink, stop_event)`: one training run, fit then test, reported as events.

No UI here. The headless CLI and the app are two sinks over this function.
Errors before the run folder exists (unwritable runs folder, bad resume) raise;
everything after ends in a RunEnded event and a summary.json saying how it ended.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import traceback
from pathlib import Path

from fmnist_tui import paths
from fmnist_tui.config import RunConfig, make_config, with_overrides
from fmnist_tui.engine.events import LogLine, RunEnded, Sink
from fmnist_tui.engine.logs import route_logs
from fmnist_tui.engine.stop import reason_of
from fmnist_tui.runs import RunDir, RunStore, RunStoreError, best_val_acc, read_metrics

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


def check_checkpoint(path: Path) -> None:
    """A truncated checkpoint makes Lightning raise mid-start; a missing one makes it start over silently."""
    import torch

    if not path.is_file():
        raise RunStoreError(f"{path} does not exist: nothing to resume from")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if "state_dict" not in ckpt:
            raise ValueError("no state_dict")
    except Exception as err:
        raise RunStoreError(f"{path} is not a usable checkpoint ({type(err).__name__}: {err})") from None


def prepare_resume(store: RunStore, ref: str, overrides: dict) -> tuple[RunDir, RunConfig, Path]:
    info = store.find(ref)
    if not info.config:
        raise RunStoreError(f"{info.path}: config.toml is missing or unreadable")
    config = with_overrides(make_config(info.config, str(info.path / "config.toml")), overrides)
    check_checkpoint(info.last_checkpoint)
    return RunDir(info.path), config, info.last_checkpoint


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
) -> RunEnded:
    """Train and test one configuration (or resume run `resume`), reporting through `sink`.

    `cpu_threads` caps torch's CPU threads for this run (the app leaves a core to its UI).
    `callbacks` are extra Lightning callbacks (the benchmarks time and probe runs with them).
    """
    stop_event = stop_event or threading.Event()
    store = RunStore(paths.runs_dir(runs_dir))
    if resume:
        run_dir, config, ckpt = prepare_resume(store, resume, overrides or {})
        store.check_writable()
    else:
        config = with_overrides(config, overrides or {})
        data = config.data_dir or str(paths.data_dir(data_dir))
        config = with_overrides(config, {"data_dir": data}, "data folder")
        run_dir, ckpt = store.create(config), None
    if resume:
        prior = run_dir.read_summary()
        run_dir.write_summary(status="running", pid=os.getpid(), resumed=int(prior.get("resumed", 0)) + 1)

    import pytorch_lightning  # noqa: F401 - its import attaches stderr handlers that route_logs replaces

    started = time.perf_counter()
    prior_s = float(run_dir.read_summary().get("duration_s", 0) or 0) if resume else 0.0
    metrics = run_dir.open_metrics()
    import torch

    threads_before = torch.get_num_threads()
    if cpu_threads:
        torch.set_num_threads(cpu_threads)
    with route_logs(sink):
        try:
            end = _train(config, sink, stop_event, run_dir, metrics, ckpt, callbacks or [])
        except BaseException as err:  # noqa: BLE001 - reported below, never lost
            end = _ended_by(err, sink, stop_event)
        finally:
            metrics.close()
            torch.set_num_threads(threads_before)
            _free_memory()
    end.setdefault("best_val_acc", best_val_acc(read_metrics(run_dir.path)[1]))
    if end["status"] in ("stopped", "interrupted") and (run_dir.checkpoints / "last.ckpt").exists():
        end.setdefault("checkpoint", str(run_dir.checkpoints / "last.ckpt"))
    ended = RunEnded(run_dir=str(run_dir.path), duration_s=prior_s + time.perf_counter() - started, **end)
    run_dir.write_summary(
        status=ended.status, duration_s=round(ended.duration_s, 3), best_val_acc=ended.best_val_acc,
        test_acc=ended.test_acc, test_loss=ended.test_loss, checkpoint=ended.checkpoint, error=ended.error,
        ended=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )  # fmt: skip
    sink(ended)
    return ended


def _ended_by(err: BaseException, sink: Sink, stop_event: threading.Event) -> dict:
    from fmnist_tui.engine.idx import DataError
    from fmnist_tui.engine.reporter import Diverged, StopRun

    if isinstance(err, StopRun):
        return {"status": reason_of(stop_event)}
    if isinstance(err, Diverged):
        return {"status": "diverged", "error": str(err)}
    if isinstance(err, (KeyboardInterrupt, SystemExit)):
        return {"status": "interrupted", "error": type(err).__name__}
    if not isinstance(err, DataError):
        for line in traceback.format_exception(err)[-12:]:
            sink(LogLine("ERROR", "fmnist_tui.engine", line.rstrip()))
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return {"status": "failed", "error": f"{type(err).__name__}: {message}" if message else type(err).__name__}


def _free_memory() -> None:
    # A failed run's traceback holds its tensors; free them before the next run.
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _train(config, sink, stop_event, run_dir: RunDir, metrics, ckpt, callbacks: list) -> dict:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from fmnist_tui.engine.checkpoint import AtomicCheckpointIO
    from fmnist_tui.engine.data import FashionData
    from fmnist_tui.engine.module import Classifier
    from fmnist_tui.engine.reporter import Reporter

    data = FashionData(config, Path(config.data_dir or paths.data_dir()))
    data.load()  # missing or corrupt data fails here, before any training
    pl.seed_everything(config.seed, verbose=False)
    module = Classifier(config.model_dump())
    best = ModelCheckpoint(dirpath=run_dir.checkpoints, filename="best", monitor="val_acc", mode="max",
                           save_last=True, save_top_k=1, enable_version_counter=False)  # fmt: skip
    last = str(run_dir.checkpoints / "last.ckpt")
    reporter = Reporter(sink, stop_event, metrics, str(run_dir.path), device_description(config.accelerator),
                        config.progress_hz, config.stop_on_nan, last)  # fmt: skip
    trainer = pl.Trainer(
        accelerator=config.accelerator, devices=config.devices, precision=config.precision,
        max_epochs=config.epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, callbacks=[reporter, best, *callbacks], plugins=[AtomicCheckpointIO()],
        default_root_dir=run_dir.path, benchmark=True if on_gpu(config.accelerator) else None,
    )  # fmt: skip
    trainer.fit(module, datamodule=data, ckpt_path=str(ckpt) if ckpt else None)
    trainer.test(module, datamodule=data, verbose=False)
    test_acc = float(trainer.callback_metrics["test_acc"])
    test_loss = float(trainer.callback_metrics["test_loss"])
    metrics.row("test", epoch=trainer.current_epoch - 1, step=trainer.global_step, test_loss=test_loss, test_acc=test_acc)
    return {"status": "finished", "test_acc": test_acc, "test_loss": test_loss, "checkpoint": best.best_model_path or last}
