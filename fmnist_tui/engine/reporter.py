"""The Lightning callback that reports progress, writes metrics.csv and stops on request.

The losses of the steps stay on the device (the module collects them) and are read once
per throttle tick, so the training loop waits on a device sync at most `progress_hz`
times a second. Every step's loss reaches metrics.csv before any checkpoint that holds
the step is saved, and an epoch's train_loss is the exact mean of its recorded steps
(math.fsum: the same value however the epoch was split by stops and resumes).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import pytorch_lightning as pl
import torch

from fmnist_tui.engine.events import EpochEnd, RunStarted, Sink, StepProgress
from fmnist_tui.metrics import Carried, MetricsWriter


class StopRun(Exception):
    """Raised from a batch hook when the user asks to stop: ends the run within one step."""


class Diverged(Exception):
    """The training loss turned NaN or infinite."""


class Reporter(pl.Callback):
    def __init__(self, sink: Sink, stop_event: threading.Event, metrics: MetricsWriter, run_dir: str,
                 device: str, hz: float, stop_on_nan: bool, carried: Carried | None = None,
                 guard: Callable[[], None] = lambda: None):  # fmt: skip
        self.sink, self.stop_event, self.metrics = sink, stop_event, metrics
        self.guard = guard  # raises if this process is no longer the run's one writer
        self.run_dir, self.device = run_dir, device
        self.interval, self.stop_on_nan = 1.0 / hz, stop_on_nan
        self.carried = carried  # the record of the epoch a resume starts in
        self.epochs_recorded = carried.epoch if carried else 0  # saved in checkpoints: which epoch rows they hold
        self._samples = 0
        self.diverged = ""  # under DDP, why the run diverged, until every process stops at the same step
        self._epoch_losses: list[float] = []
        self._epoch_before = 0.0  # seconds the epoch took before this process resumed it
        # The record so far, for summary.json after each epoch: its finished epochs' time and best accuracy.
        self.epochs_seconds = carried.epochs_seconds if carried else 0.0
        self.best_val_acc = carried.best_val_acc if carried else None
        self.stop_checks = True  # off while a stopped run's weights are evaluated (engine/testing.py)

    def state_dict(self) -> dict:
        return {"epochs_recorded": self.epochs_recorded}

    # -- stop ------------------------------------------------------------------
    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise StopRun("stopped by request")

    def on_validation_batch_end(self, trainer, *args, **kwargs):
        if trainer.world_size == 1:  # under DDP every process stops at the same step (steering.py)
            self._check_stop()

    def on_test_batch_end(self, trainer, *args, **kwargs):
        if trainer.world_size == 1 and self.stop_checks:
            self._check_stop()

    def on_exception(self, trainer, pl_module, exception):
        # The steps taken since the last tick are in the weights a stop saves next: record them first.
        if trainer.state.fn == "fit":
            try:
                self._tick(trainer, pl_module, time.perf_counter(), check=False)
            except Exception:  # noqa: BLE001 - e.g. the disk is full: the first error is the one to report
                pass

    # -- progress --------------------------------------------------------------
    def on_train_start(self, trainer, pl_module):
        # After a resume has restored the loop, so the start epoch/step are right.
        self.steps_per_epoch = pl_module.config.steps_per_epoch  # Lightning's batches are groups of steps
        self.total_steps = self.steps_per_epoch * trainer.max_epochs
        self.start_step = trainer.global_step
        self.start_time = self._epoch_start = self._tick_time = time.perf_counter()
        pl_module.before_step = self._check_stop  # before every step, even inside a group of steps
        if self.carried is not None and self.carried.epoch == trainer.current_epoch:
            self._epoch_losses, self._epoch_before = list(self.carried.losses), self.carried.seconds
        self.sink(RunStarted(self.run_dir, self.device, trainer.max_epochs, self.steps_per_epoch,
                             self.total_steps, trainer.current_epoch, trainer.global_step, trainer.world_size,
                             time.time()))  # fmt: skip

    def on_train_epoch_start(self, trainer, pl_module):
        # Not called when resuming mid-epoch: on_train_start set the clocks then.
        self._epoch_losses, self._epoch_before = [], 0.0
        self._epoch_start = self._tick_time = time.perf_counter()
        self._samples = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._samples += outputs["samples"] * trainer.world_size  # host-side shapes: no sync; every process's
        now = time.perf_counter()
        if now - self._tick_time >= self.interval:
            self._tick(trainer, pl_module, now)

    def flush(self, trainer, pl_module) -> None:
        """Record (and report) the steps since the last tick now."""
        self._tick(trainer, pl_module, time.perf_counter())

    def _epoch_seconds(self, now: float) -> float:
        return self._epoch_before + now - self._epoch_start

    def _tick(self, trainer, pl_module, now: float, check: bool = True) -> None:
        pending = pl_module.take_losses()
        if not pending:
            return
        losses = torch.stack(pending).float().cpu().tolist()  # the one sync per tick
        self.guard()
        first = trainer.global_step - len(losses) + 1
        self.metrics.steps(trainer.current_epoch, first, losses, self._epoch_seconds(now))
        self._epoch_losses.extend(losses)
        if check and self.stop_on_nan and not all(math.isfinite(v) for v in losses):
            why = f"training loss is {next(v for v in losses if not math.isfinite(v))} at step {first}"
            if trainer.world_size == 1:
                raise Diverged(why)
            self.diverged = self.diverged or why
        done = trainer.global_step - self.start_step
        elapsed = now - self.start_time
        self.sink(StepProgress(
            epoch=trainer.current_epoch, step=trainer.global_step, total_steps=self.total_steps,
            epoch_step=trainer.global_step - trainer.current_epoch * self.steps_per_epoch,
            steps_per_epoch=self.steps_per_epoch,
            loss=sum(losses) / len(losses), samples_per_s=self._samples / max(now - self._tick_time, 1e-9),
            elapsed_s=elapsed, eta_s=elapsed / max(done, 1) * (self.total_steps - trainer.global_step),
            losses=tuple(losses),
        ))  # fmt: skip
        self._tick_time, self._samples = now, 0

    def on_validation_start(self, trainer, pl_module):
        if trainer.state.fn == "fit":
            self._tick(trainer, pl_module, time.perf_counter())

    def on_train_epoch_end(self, trainer, pl_module):
        # Runs before RunCheckpoints saves this epoch (callbacks run in list order).
        now = time.perf_counter()
        self._tick(trainer, pl_module, now)
        self.guard()
        metrics = trainer.callback_metrics
        losses = self._epoch_losses
        row = dict(
            epoch=trainer.current_epoch, step=trainer.global_step,
            train_loss=math.fsum(losses) / len(losses) if losses else math.nan,
            val_loss=float(metrics.get("val_loss", math.nan)), val_acc=float(metrics.get("val_acc", math.nan)),
            lr=float(trainer.optimizers[0].param_groups[0]["lr"]), seconds=round(self._epoch_seconds(now), 3),
        )  # fmt: skip
        self.metrics.row("epoch", **row)
        self.epochs_recorded = trainer.current_epoch + 1
        self.epochs_seconds += row["seconds"]
        if math.isfinite(row["val_acc"]) and (self.best_val_acc is None or row["val_acc"] > self.best_val_acc):
            self.best_val_acc = row["val_acc"]
        self.sink(EpochEnd(**row))


class SummarySoFar(pl.Callback):
    """best_val_acc and duration_s in summary.json after every epoch (after its checkpoint is saved):
    `fmnist-tui runs` shows them while the run trains, and after a kill -9.

    A resumed run keeps the test figures of its earlier segment until it tests again; once a
    new best.ckpt replaces the weights they were measured on, they stop naming that file."""

    def __init__(self, write: Callable[..., object], reporter: Reporter, checkpoints, tested_best_step: int | None):
        self.write, self.reporter, self.checkpoints = write, reporter, checkpoints
        self.tested_best_step = tested_best_step  # the step of the best.ckpt the summary's test figures are of

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        fields: dict = {
            "best_val_acc": self.reporter.best_val_acc,
            "duration_s": round(self.reporter.epochs_seconds, 3),
        }
        if self.tested_best_step is not None and self.checkpoints.best_step != self.tested_best_step:
            fields["test_checkpoint"] = None  # best.ckpt holds other weights now; test_epoch/test_step still say which
            self.tested_best_step = None
        self.write(**fields)
