"""Checkpoints: last.ckpt at the end of every epoch and at a stop, best.ckpt at each new best.

Lightning's ModelCheckpoint is not used: with `monitor=val_acc, save_last=True` it rewrote
last.ckpt only in an epoch where it also saved a new best, so last.ckpt stayed at the best
epoch; and its best is forgotten when the run folder moves. RunCheckpoints saves after the
Reporter has written the epoch's rows, so a checkpoint never holds steps the record lacks.

Writes are atomic next to the target (Lightning's default writes to a temporary file
elsewhere and moves it, a copy across filesystems that a kill leaves half-done), and the
checkpoint is serialised in memory first: torch.save straight to a full disk only says
"unexpected pos 704 vs 598", while a plain write says ENOSPC, which becomes DiskFull.
"""

from __future__ import annotations

import io
import math
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.trainer.states import TrainerFn

from fmnist_tui.config import RunConfig
from fmnist_tui.engine.reporter import StopRun
from fmnist_tui.files import write_atomic
from fmnist_tui.runs import RunStoreError


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buffer.getvalue())


class RunCheckpoints(pl.Callback):
    def __init__(self, folder: Path, forget_best: bool = False) -> None:
        self.last, self.best = folder / "last.ckpt", folder / "best.ckpt"
        self.best_acc = -math.inf
        self.best_epoch: int | None = None  # 0-based, as in metrics.csv
        self.best_step: int | None = None
        self.forget_best = forget_best  # a resume found best.ckpt unusable: the next validated epoch is best

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        acc = float(trainer.callback_metrics.get("val_acc", math.nan))
        improved = acc > self.best_acc  # strictly, as ModelCheckpoint; NaN never improves
        if improved:  # before saving: last.ckpt then carries this state too
            self.best_acc, self.best_epoch, self.best_step = acc, trainer.current_epoch, trainer.global_step
        trainer.save_checkpoint(self.last, weights_only=False)  # every DDP process calls it; the first writes
        if improved and trainer.is_global_zero:
            publish_copy(self.last, self.best)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # A stop during fit keeps the exact step; during the test the weights may be best.ckpt's.
        if isinstance(exception, StopRun) and trainer.state.fn == TrainerFn.FITTING:
            trainer.save_checkpoint(self.last, weights_only=False)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn == TrainerFn.FITTING and trainer.validating:
            # A stop inside validation. The metrics' partial sums are not in a checkpoint, and Lightning
            # would carry on after the batches already seen (or skip validation): mark it as started
            # with no batch done, so the resumed run validates the epoch again from the start.
            progress = checkpoint["loops"]["fit_loop"]["epoch_loop.val_loop.batch_progress"]
            for counts in (progress["total"], progress["current"]):
                counts.update(ready=1, started=1, processed=0, completed=0)
            progress["is_last_batch"] = False

    def state_dict(self) -> dict:
        return {"best_acc": self.best_acc, "best_epoch": self.best_epoch, "best_step": self.best_step}

    def load_state_dict(self, state_dict: dict) -> None:
        if self.forget_best:
            return
        self.best_acc = state_dict.get("best_acc", -math.inf)
        self.best_epoch, self.best_step = state_dict.get("best_epoch"), state_dict.get("best_step")


def publish_copy(source: Path, target: Path) -> None:
    """`target` becomes a copy of `source`, atomically. A copy, not a hard link: writing into one
    file (`cp backup.ckpt best.ckpt`) must never change the other."""
    write_atomic(target, source.read_bytes())


@dataclass(frozen=True)
class Point:
    """Where a checkpoint stands in its run, and what it was trained with."""

    step: int  # optimiser steps done
    epoch: int  # 0-based epoch it was saved in (or at the end of)
    epochs_recorded: int | None  # epoch rows written when it was saved (None: an older checkpoint)
    schedule_end: int | None = None  # the step its lr schedule ends at (None: no schedule)
    best_step: int | None = None  # the step of the best.ckpt it knew of
    config: dict | None = None  # the config in its hyperparameters
    state_dict: dict = field(default_factory=dict, repr=False)

    def check_loads(self, config: RunConfig) -> None:
        """The weights fit the module `config` builds, key for key (a checkpoint of another run does not)."""
        from fmnist_tui.engine.module import Classifier

        try:
            Classifier(config.model_dump()).load_state_dict(self.state_dict, strict=True)
        except (RuntimeError, TypeError) as err:
            first = str(err).strip().splitlines()[0]
            raise RunStoreError(
                f"last.ckpt does not fit the network its config.toml describes ({first[:300]})"
            ) from None


def read_point(path: Path) -> Point:
    """A checkpoint's position, or RunStoreError: a truncated file makes Lightning raise mid-start,
    a missing one makes it start over silently. Loaded as weights only: a checkpoint that
    carries code is refused, never run. The step is the one Lightning resumes from (its loop
    state), not the `global_step` field beside it, which Lightning does not read."""
    if not path.is_file():
        raise RunStoreError(f"{path} is not a file: nothing to resume from")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip; anything else is damaged (or not torch's)
        raise RunStoreError(f"{path} is not a usable checkpoint (damaged: not a file torch.save wrote)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise RunStoreError(
            f"{path} holds more than weights (Python objects that run code when loaded): refused"
        ) from None
    except Exception as err:  # noqa: BLE001 - whatever torch.load raises, the file is not usable
        raise RunStoreError(f"{path} is not a usable checkpoint ({_first_line(err)})") from None
    try:
        version = str(ckpt["pytorch-lightning_version"])
        if int(version.split(".")[0]) < 2:
            raise ValueError(f"written by Lightning {version}")
        loop = ckpt["loops"]["fit_loop"]
        step = int(loop["epoch_loop.manual_optimization.optim_step_progress"]["total"]["completed"])
        epoch = int(ckpt["epoch"])
        if step < 0 or epoch < 0 or not isinstance(ckpt["state_dict"], dict) or "optimizer_states" not in ckpt:
            raise ValueError("impossible position")
        callbacks = ckpt.get("callbacks", {})
        schedulers = ckpt.get("lr_schedulers") or [{}]
        end = schedulers[0].get("end_step", schedulers[0].get("total_steps", schedulers[0].get("T_max")))
        config = ckpt.get("hyper_parameters", {}).get("config")
        return Point(step, epoch, callbacks.get("Reporter", {}).get("epochs_recorded"), end,
                     callbacks.get("RunCheckpoints", {}).get("best_step"),
                     config if isinstance(config, dict) else None, ckpt["state_dict"])  # fmt: skip
    except Exception as err:  # noqa: BLE001 - a missing key or a wrong type: not one of ours
        raise RunStoreError(
            f"{path} is not a checkpoint of this program that can be resumed ({_first_line(err)})"
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}" if text else type(err).__name__
