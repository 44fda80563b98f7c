"""The Lightning callback that reports progress, writes metrics.csv and stops on request.

The loss of every step is kept on the device and read once per throttle tick, so the
training loop never waits on a device sync more than `progress_hz` times a second.
"""

from __future__ import annotations

import math
import threading
import time

import pytorch_lightning as pl
import torch

from fmnist_tui.engine.events import EpochEnd, RunStarted, Sink, StepProgress
from fmnist_tui.runs import MetricsWriter


class StopRun(Exception):
    """Raised from a batch hook when the user asks to stop: ends the run within one step."""


class Diverged(Exception):
    """The training loss turned NaN or infinite."""


class Reporter(pl.Callback):
    def __init__(self, sink: Sink, stop_event: threading.Event, metrics: MetricsWriter, run_dir: str,
                 device: str, hz: float, stop_on_nan: bool, last_ckpt: str):  # fmt: skip
        self.sink, self.stop_event, self.metrics = sink, stop_event, metrics
        self.run_dir, self.device, self.last_ckpt = run_dir, device, last_ckpt
        self.interval, self.stop_on_nan = 1.0 / hz, stop_on_nan
        self._losses: list[torch.Tensor] = []  # device tensors since the last tick
        self._samples = 0
        self._epoch_sum, self._epoch_n = 0.0, 0

    # -- stop ------------------------------------------------------------------
    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise StopRun("stopped by request")

    def on_exception(self, trainer, pl_module, exception):
        if isinstance(exception, StopRun):
            trainer.save_checkpoint(self.last_ckpt)

    def on_before_optimizer_step(self, *args, **kwargs):
        self._check_stop()  # before every optimiser step, even inside a group of steps

    def on_validation_batch_end(self, *args, **kwargs):
        self._check_stop()

    def on_test_batch_end(self, *args, **kwargs):
        self._check_stop()

    # -- progress --------------------------------------------------------------
    def on_train_start(self, trainer, pl_module):
        # After a resume has restored the loop, so the start epoch/step are right.
        self.steps_per_epoch = pl_module.config.steps_per_epoch  # Lightning's batches are groups of steps
        self.total_steps = self.steps_per_epoch * trainer.max_epochs
        self.start_step = trainer.global_step
        self.start_time = self._epoch_start = self._tick_time = time.perf_counter()
        self.sink(RunStarted(self.run_dir, self.device, trainer.max_epochs, self.steps_per_epoch,
                             self.total_steps, trainer.current_epoch, trainer.global_step))  # fmt: skip

    def on_train_epoch_start(self, trainer, pl_module):
        # Not called when resuming mid-epoch: on_train_start set the clocks then.
        self._epoch_sum, self._epoch_n = 0.0, 0
        self._epoch_start = self._tick_time = time.perf_counter()
        self._samples = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._losses.append(outputs["losses"])
        self._samples += outputs["samples"]  # host-side shapes: no sync
        now = time.perf_counter()
        if now - self._tick_time >= self.interval:
            self._tick(trainer, now)

    def _tick(self, trainer, now: float) -> None:
        if not self._losses:
            return
        losses = torch.cat(self._losses).float().cpu().tolist()  # the one sync per tick
        self._losses.clear()
        first = trainer.global_step - len(losses) + 1
        self.metrics.steps(trainer.current_epoch, first, losses)
        if self.stop_on_nan and not all(math.isfinite(v) for v in losses):
            raise Diverged(f"training loss is {next(v for v in losses if not math.isfinite(v))} at step {first}")
        self._epoch_sum += sum(losses)
        self._epoch_n += len(losses)
        done = trainer.global_step - self.start_step
        elapsed = now - self.start_time
        self.sink(StepProgress(
            epoch=trainer.current_epoch, step=trainer.global_step, total_steps=self.total_steps,
            epoch_step=trainer.global_step - trainer.current_epoch * self.steps_per_epoch,
            steps_per_epoch=self.steps_per_epoch,
            loss=sum(losses) / len(losses), samples_per_s=self._samples / max(now - self._tick_time, 1e-9),
            elapsed_s=elapsed, eta_s=elapsed / max(done, 1) * (self.total_steps - trainer.global_step),
        ))  # fmt: skip
        self._tick_time, self._samples = now, 0

    def on_validation_start(self, trainer, pl_module):
        if trainer.state.fn == "fit" and self._losses:
            self._tick(trainer, time.perf_counter())

    def on_train_epoch_end(self, trainer, pl_module):
        self._tick(trainer, time.perf_counter())
        metrics = trainer.callback_metrics
        row = dict(
            epoch=trainer.current_epoch, step=trainer.global_step,
            train_loss=self._epoch_sum / max(self._epoch_n, 1),
            val_loss=float(metrics.get("val_loss", math.nan)), val_acc=float(metrics.get("val_acc", math.nan)),
            lr=float(trainer.optimizers[0].param_groups[0]["lr"]), seconds=time.perf_counter() - self._epoch_start,
        )  # fmt: skip
        self.metrics.row("epoch", **row)
        self.sink(EpochEnd(**row))
