"""The learning-rate finder: Lightning's own `Tuner.lr_find` on a fresh copy of a config's model.

No UI and no run folder: the network, loss, optimiser and data are the run's (models.py,
module.build_optimizer, data.py), but the module uses automatic optimisation with one
optimiser step per Lightning step and a constant lr that the finder sweeps (no schedule),
as `lr_find` needs. Lightning's temporary checkpoint goes into a temporary folder that is
removed afterwards; no logger, no checkpoint callback, no progress bar.

torch and Lightning are imported inside the functions: the app imports this module for
its result type on the UI thread.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fmnist_tui.config import RunConfig

MIN_LR, MAX_LR, STEPS = 1e-6, 10.0, 100  # MAX_LR: the highest lr a config takes
SKIP_BEGIN, SKIP_END = 10, 1  # Lightning's suggestion() leaves these points out
MIN_STEPS = SKIP_BEGIN + SKIP_END + 2  # the gradient of the loss needs two points in between
MAX_STEPS = 10_000
HOW = "steepest descent of the smoothed loss"
SCRATCH = "fmnist-tui-lr-find-"  # + pid + a random part, in the temporary folder

Progress = Callable[[int, int], None]  # (steps done, steps in all)


class LrFindError(Exception):
    """The finder could not run on this config; the message is one line saying why."""


class Diverged(LrFindError):
    """The loss was NaN or infinite at the first step, before any learning rate was tried."""


class Cancelled(Exception):
    """Raised in the training step when the caller's stop event is set: stops within a step."""


@dataclass(frozen=True)
class LrFind:
    lrs: list[float]
    losses: list[float]  # Lightning's smoothed loss at each lr (NaN where it was not finite)
    suggestion: float | None
    reason: str  # how the suggestion was chosen, or why there is none
    seconds: float  # the search itself (Lightning's lr_find)
    total_seconds: float  # with the data and the Trainer set up
    steps: int  # steps asked for; len(lrs) is fewer when the loss blew up first
    config: RunConfig = field(repr=False)

    @property
    def rounded(self) -> float | None:
        """The suggestion to two significant digits: what is written and put into the form."""
        return None if self.suggestion is None else float(f"{self.suggestion:.1e}")

    def as_json(self) -> dict:
        return {"lr": self.lrs, "loss": self.losses, "suggestion": self.rounded, "exact": self.suggestion,
                "reason": self.reason, "seconds": round(self.seconds, 3),
                "total_seconds": round(self.total_seconds, 3), "steps": self.steps}  # fmt: skip


def check_range(min_lr: float, max_lr: float, steps: int) -> None:
    """LrFindError naming the option when the sweep asked for cannot give a suggestion."""
    if not (math.isfinite(min_lr) and min_lr > 0):
        raise LrFindError(f"--min-lr {min_lr}: a number above 0")
    if not (math.isfinite(max_lr) and min_lr < max_lr <= MAX_LR):
        raise LrFindError(f"--max-lr {max_lr}: a number above --min-lr ({min_lr:g}), at most {MAX_LR:g}")
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise LrFindError(f"--steps {steps}: from {MIN_STEPS} to {MAX_STEPS} (Lightning's suggestion leaves out "
                          f"the first {SKIP_BEGIN} points and the last)")  # fmt: skip


def find_lr(
    config: RunConfig,
    *,
    data_dir: str | Path | None = None,
    min_lr: float = MIN_LR,
    max_lr: float = MAX_LR,
    steps: int = STEPS,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    cpu_threads: int | None = None,
) -> LrFind:
    """Sweep the lr from min_lr to max_lr (exponentially, one optimiser step each) and suggest one.

    Raises DataError (no data), Diverged (NaN at the first step), LrFindError (a bad range),
    ConfigError (a GPU config without a GPU) and Cancelled (`stop` was set). A search that
    ends without enough finite points returns suggestion None and says why in `reason`.
    """
    import pytorch_lightning as pl
    import torch

    from fmnist_tui.engine.runner import on_gpu
    from fmnist_tui.engine.segment import check_device, with_data_dir

    check_range(min_lr, max_lr, steps)
    started = time.perf_counter()
    config = check_device(with_data_dir(config, data_dir))
    threads_before = torch.get_num_threads()
    if cpu_threads:
        torch.set_num_threads(cpu_threads)
    remove_orphans()
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH}{os.getpid()}-"))
    try:
        data = _data(config)
        data.load()  # DataError: missing or damaged files, before any Trainer exists
        pl.seed_everything(config.seed, verbose=False)  # the run's first weights
        module = _module(config, stop, progress, steps)
        gpu = on_gpu(config.accelerator)
        trainer = pl.Trainer(
            accelerator="gpu" if gpu else "cpu", devices=1, precision=config.precision,
            max_epochs=steps // max(1, config.train_size // config.batch_size) + 2, logger=False,
            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
            num_sanity_val_steps=0, default_root_dir=scratch, benchmark=True if gpu else None,
        )  # fmt: skip
        from pytorch_lightning.tuner import Tuner

        search_started = time.perf_counter()
        found = Tuner(trainer).lr_find(module, datamodule=data, min_lr=min_lr, max_lr=max_lr, num_training=steps,
                                       mode="exponential", update_attr=False)  # fmt: skip
        seconds = time.perf_counter() - search_started
    finally:
        torch.set_num_threads(threads_before)
        shutil.rmtree(scratch, ignore_errors=True)
    if found is None:  # only with fast_dev_run, which is never set here
        raise LrFindError("Lightning's lr finder did not run")
    lrs = [float(v) for v in found.results.get("lr", [])]
    losses = [float(v) for v in found.results.get("loss", [])]
    suggestion = found.suggestion(SKIP_BEGIN, SKIP_END) if len(losses) >= MIN_STEPS else None
    reason = HOW if suggestion is not None else _why_none(lrs, losses, steps)
    return LrFind(lrs, losses, None if suggestion is None else float(suggestion), reason, seconds,
                  time.perf_counter() - started, steps, config)  # fmt: skip


def remove_orphans() -> None:
    """Scratch folders of searches killed with -9 (their process is gone): Lightning's checkpoint
    is in there, 6 to 26 MB a time."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH}*-*"):
        pid = folder.name[len(SCRATCH) :].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def _why_none(lrs: list[float], losses: list[float], steps: int) -> str:
    if len(losses) < steps and lrs:  # Lightning stopped at 4x the best loss
        return (f"the loss blew up after {len(losses)} of {steps} steps (at lr {lrs[-1]:.1e}), too early to "
                f"suggest an lr: try a lower --min-lr")  # fmt: skip
    finite = sum(math.isfinite(v) for v in losses)
    return f"too few points to suggest an lr ({finite} with a finite loss; at least {MIN_STEPS})"


def _data(config: RunConfig):
    import pytorch_lightning as pl

    from fmnist_tui import paths
    from fmnist_tui.engine.data import DeviceBatches, FashionData

    class FinderData(FashionData):
        """The run's data and preprocessing, one batch per Lightning step (the finder steps the lr per call)."""

        def train_dataloader(self):
            x, y = self._tensors("train")
            return DeviceBatches(x, y, self.config.batch_size, self._prepare(True), True, self.config.seed,
                                 seeded=self.augment is not None)  # fmt: skip

        # Not overridden, so Lightning skips those loops without a warning (the finder only trains).
        val_dataloader = pl.LightningDataModule.val_dataloader
        test_dataloader = pl.LightningDataModule.test_dataloader

    return FinderData(config, Path(config.data_dir or paths.data_dir()))


def _module(config: RunConfig, stop: threading.Event | None, progress: Progress | None, steps: int):
    import pytorch_lightning as pl
    import torch
    import torch.nn.functional as F

    from fmnist_tui.engine import models
    from fmnist_tui.engine.module import build_optimizer, uses_channels_last

    class FinderModule(pl.LightningModule):
        """The run's network and loss with automatic optimisation: what `lr_find` drives."""

        def __init__(self) -> None:
            super().__init__()
            self.net = models.build(config)
            self.lr = config.lr  # lr_find looks for it; the sweep sets the optimiser's rate itself

        def setup(self, stage: str) -> None:
            if uses_channels_last(config, self.trainer.strategy.root_device):
                self.net.to(memory_format=torch.channels_last)

        def on_train_start(self) -> None:
            # Lightning's finder draws its own tqdm bar on stderr, over the app's screen: not here.
            for callback in self.trainer.callbacks:  # type: ignore[attr-defined]
                if hasattr(callback, "progress_bar_refresh_rate"):
                    callback.progress_bar_refresh_rate = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch, batch_idx):
            if stop is not None and stop.is_set():
                raise Cancelled()
            x, y = batch
            loss = F.cross_entropy(self(x), y, label_smoothing=config.label_smoothing)
            step = self.trainer.global_step
            if step == 0 and not torch.isfinite(loss.detach()):
                raise Diverged(f"the loss is {float(loss.detach()):g} at the first step, before any lr was tried: "
                               "the model or its input scaling (norm_mean, norm_std) cannot train")  # fmt: skip
            if progress is not None:
                progress(step + 1, steps)
            return loss

        def configure_optimizers(self):
            return build_optimizer(config, self.parameters(), self.device, self.lr)

    return FinderModule()
