"""The Lightning side of the run's controls (engine/control.py): carried out on the training thread.

- stop: the Reporter's stop check raises StopRun before the next step (as the app's Stop does);
- stop after the epoch: once the epoch is validated and its checkpoint saved, the same stop;
- checkpoint: last.ckpt at the end of the current group of steps, a point Lightning resumes
  from exactly (its "restarted on train batch end"); the steps so far reach metrics.csv first;
- lr: before the next step; a one-cycle or cosine schedule is scaled so that its current value
  becomes the new lr. An `lr` row in metrics.csv and a Control event record it.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl

from fmnist_tui.engine.control import Controls, Request
from fmnist_tui.engine.events import Control, Sink
from fmnist_tui.engine.reporter import Diverged, Reporter, StopRun
from fmnist_tui.engine.schedule import Refittable
from fmnist_tui.engine.stop import reason_of
from fmnist_tui.metrics import MetricsWriter

SYNC_EVERY = 16  # steps between the DDP processes' agreements (a stop waits at most this many steps)
REASONS = ("stopped", "interrupted", "handover")  # by rank: when two processes ask, the later one wins


class Steering(pl.Callback):
    """Listed after the Reporter, RunCheckpoints and SummarySoFar: it acts once they are done."""

    def __init__(self, controls: Controls, reporter: Reporter, checkpoints, metrics: MetricsWriter, sink: Sink):
        self.controls, self.reporter, self.checkpoints = controls, reporter, checkpoints
        self.metrics, self.sink = metrics, sink
        self._saves: list[Request] = []

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.world_size > 1:
            pl_module.before_step = lambda: self._agree(trainer, pl_module)
            return
        check_stop = pl_module.before_step  # the Reporter's stop check, set in its on_train_start

        def before_step() -> None:
            check_stop()
            if self.controls.pending:  # one attribute read a step when nothing is asked
                for request in self.controls.take():
                    if request.action == "lr":
                        self._set_lr(trainer, pl_module, request)
                    else:
                        self._saves.append(request)

        pl_module.before_step = before_step

    def _agree(self, trainer, pl_module) -> None:
        """Under DDP, every SYNC_EVERY steps and at each epoch's first step, the processes agree on
        what happens next (one all-reduce of four numbers): a stop or a divergence seen by any
        process, the first process's controls. All then act at the same step, so none is left
        waiting in a collective the others never reach."""
        step = trainer.global_step
        if step % SYNC_EVERY and step != trainer.current_epoch * self.reporter.steps_per_epoch:
            return
        import torch
        import torch.distributed as dist

        stop = self.controls.stop
        requests = self.controls.take() if self.controls.pending else []
        lrs = [r for r in requests if r.action == "lr"]
        for superseded in lrs[:-1]:
            superseded.finish("a later lr request replaced it", ok=False)
        saves = [r for r in requests if r.action != "lr"]
        packet = torch.tensor(
            [REASONS.index(reason_of(stop)) + 1 if stop.is_set() else 0, float(lrs[-1].value or 0) if lrs else 0.0,
             1.0 if saves else 0.0, 1.0 if self.reporter.diverged else 0.0],
            dtype=torch.float64, device=pl_module.device,
        )  # fmt: skip
        dist.all_reduce(packet, op=dist.ReduceOp.MAX)
        code, lr, save, diverged = packet.tolist()
        if diverged:
            raise Diverged(self.reporter.diverged or "the training loss turned NaN or infinite in another process")
        if code:
            if not stop.is_set() and hasattr(stop, "request"):
                stop.request(REASONS[int(code) - 1])  # how the run ends, as the process that asked says
            raise StopRun("stopped by request")
        if lr:
            self._set_lr(trainer, pl_module, lrs[-1] if lrs else Request("lr", lr))
        if save:
            self._saves.extend(saves or [Request("checkpoint")])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._saves:
            return
        self.reporter.flush(trainer, pl_module)  # a checkpoint never holds steps the record lacks
        trainer.save_checkpoint(self.checkpoints.last, weights_only=False)
        step = trainer.global_step
        self._report("checkpoint", step, f"saved checkpoints/last.ckpt at step {step}")
        for request in self._saves:
            request.finish(f"saved last.ckpt at step {step}; the run goes on")
        self._saves = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        request = self.controls.stop_after_epoch
        if request is None:
            return
        self.controls.stop_after_epoch = None
        epoch = trainer.current_epoch
        if epoch + 1 >= trainer.max_epochs:
            self._report("stop-after-epoch", trainer.global_step, f"epoch {epoch + 1} was the last: the run finishes")
            return
        self._report("stop-after-epoch", trainer.global_step,
                     f"stopping after epoch {epoch + 1}: validated and saved")  # fmt: skip
        self.controls.submit("stop")  # StopRun before the next epoch's first step

    def _set_lr(self, trainer, pl_module, request: Request) -> None:
        optimizer = trainer.optimizers[0]
        configs = trainer.lr_scheduler_configs
        schedule = configs[0].scheduler if configs else None
        current = float(optimizer.param_groups[0]["lr"])
        value = float(request.value or 0.0)
        note = ""
        if isinstance(schedule, Refittable):
            factor = value / current if current > 0 else math.inf
            if not (math.isfinite(factor) and math.isfinite(schedule.scale * factor) and schedule.scale * factor > 0):
                request.finish(f"the {pl_module.config.schedule} schedule's lr is {current:.3g} here: "
                               "it cannot be scaled to that", False)  # fmt: skip
                return
            schedule.scale *= factor
            note = f" (the {pl_module.config.schedule} schedule scaled x{factor:.3g} from here)"
        for group in optimizer.param_groups:
            group["lr"] = value if schedule is None else group["lr"] * value / current
        self.reporter.flush(trainer, pl_module)  # the steps before it, then its row
        step = trainer.global_step
        self.metrics.row("lr", epoch=trainer.current_epoch, step=step, lr=value)
        text = f"lr {value:.4g} from step {step + 1} (was {current:.4g}){note}"
        self._report("lr", step, text, value)
        request.finish(text)

    def _report(self, action: str, step: int, text: str, value: float | None = None) -> None:
        self.sink(Control(action, step, text, value))

    def on_exception(self, trainer, pl_module, exception) -> None:
        # Whoever asked gets an answer, not a timeout.
        for request in [*self._saves, *self.controls.take()]:
            request.finish(f"the run ended before it could {request.action}", ok=False)
        self._saves = []
