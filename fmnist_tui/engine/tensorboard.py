"""TensorBoard event files beside metrics.csv, when `tensorboard` is installed (an optional extra).

A copy for other tools, written through Lightning's own TensorBoardLogger into RUN/tensorboard,
so `tensorboard --logdir RUNS` shows every run. metrics.csv stays the record: this copy is fed
the same rows as they are written, and a failure here costs the copy, never the run.

A resume opens the event file with `purge_step` just past its checkpoint, so TensorBoard drops
the steps the checkpoint does not hold, as metrics.csv does.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path
from typing import Any, TypeGuard

FOLDER = "tensorboard"
# The HParams dashboard reads each run's latest value of these tags.
HPARAM_METRICS = ("hparams/best_val_acc", "hparams/test_acc")
EPOCH_TAGS = {"train_loss": "epoch/train_loss", "val_loss": "epoch/val_loss", "val_acc": "epoch/val_acc",
              "lr": "epoch/lr", "seconds": "epoch/seconds"}  # fmt: skip

log = logging.getLogger("fmnist_tui.engine")


def available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def _logger(run_path: Path, purge_step: int | None):
    from pytorch_lightning.loggers import TensorBoardLogger

    class Logger(TensorBoardLogger):
        # Lightning expands $VARS and ~ in its log_dir: under a runs folder named "a $HOME b" the
        # event files would go elsewhere. The run folder is taken as it is.
        @property
        def log_dir(self) -> str:
            return str(run_path / FOLDER)

    return Logger(run_path, name="", version=FOLDER, default_hp_metric=False, purge_step=purge_step)


class TensorBoardCopy:
    """Takes metrics.csv's rows (see metrics.MetricsWriter) and logs them as scalars."""

    def __init__(self, run_path: Path, purge_step: int | None, best_val_acc: float | None):
        self.logger = _logger(run_path, purge_step)
        self.best_val_acc = best_val_acc  # of the epochs before a resume: the record's, not this process's

    def config(self, config: dict[str, Any]) -> None:
        # Lightning's log_hyperparams would also log a value for each metric at step 0; the values
        # come later, so write the session's hparams alone, as it does.
        from torch.utils.tensorboard.summary import hparams

        params = self.logger._sanitize_params({k: v for k, v in config.items() if v is not None})
        writer = self.logger.experiment._get_file_writer()
        for summary in hparams(params, dict.fromkeys(HPARAM_METRICS, 0.0)):
            writer.add_summary(summary)

    def steps(self, first_step: int, losses: list[float]) -> None:
        add = self.logger.experiment.add_scalar
        for i, loss in enumerate(losses):
            add("train/step_loss", loss, first_step + i)

    def row(self, kind: str, values: dict[str, Any]) -> None:
        step = values.get("step")
        if kind == "epoch":
            self.logger.log_metrics(
                {tag: float(values[k]) for k, tag in EPOCH_TAGS.items() if _finite(values.get(k))}, step
            )
            acc = values.get("val_acc")
            if _finite(acc) and (self.best_val_acc is None or acc > self.best_val_acc):
                self.best_val_acc = acc
            if self.best_val_acc is not None:
                self.logger.log_metrics({"hparams/best_val_acc": self.best_val_acc}, step)
        elif kind == "test":
            prefix = "test" if values.get("weights") == "best" else "test_last"
            figures = {f"{prefix}/acc": values.get("test_acc"), f"{prefix}/loss": values.get("test_loss")}
            if values.get("weights") == "best":
                figures["hparams/test_acc"] = values.get("test_acc")
            self.logger.log_metrics({k: float(v) for k, v in figures.items() if _finite(v)}, step)
        self.logger.experiment.flush()  # once an epoch (and after each test), as metrics.csv guarantees

    def close(self) -> None:
        self.logger.experiment.close()


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and math.isfinite(value)


class Guarded:
    """The copy behind a fuse: its first error (a full disk, say) is logged once and ends the copy."""

    def __init__(self, make):
        self.copy: TensorBoardCopy | None = None
        self._call(lambda: setattr(self, "copy", make()))

    def _call(self, action) -> None:
        try:
            action()
        except Exception as err:  # noqa: BLE001 - TensorBoard is a copy: the run goes on without it
            self.copy = None
            log.warning(f"TensorBoard logging stopped ({type(err).__name__}: {err}); metrics.csv has the record")

    def config(self, config: dict[str, Any]) -> None:
        if self.copy:
            self._call(lambda: self.copy.config(config))

    def steps(self, first_step: int, losses: list[float]) -> None:
        if self.copy:
            self._call(lambda: self.copy.steps(first_step, losses))

    def row(self, kind: str, values: dict[str, Any]) -> None:
        if self.copy:
            self._call(lambda: self.copy.row(kind, values))

    def close(self) -> None:
        if self.copy:
            self._call(self.copy.close)


def open_copy(run_path: Path, resumed_at: int | None, best_val_acc: float | None) -> Guarded | None:
    """The TensorBoard copy of a run's metrics, or None when tensorboard is not installed.
    A resume gives the step it starts after and the record's best validation accuracy so far."""
    if not available():
        return None
    purge = resumed_at + 1 if resumed_at is not None else None
    return Guarded(lambda: TensorBoardCopy(run_path, purge, best_val_acc))
