"""The LightningModule: network, loss, optimiser and schedule, metrics per stage."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from fmnist_tui.config import RunConfig, make_config
from fmnist_tui.engine import models, schedule
from fmnist_tui.engine.data import eval_index, position_seed, seed_device
from fmnist_tui.engine.evaluation import Predictions, TestResult


def uses_channels_last(config: RunConfig, device: torch.device) -> bool:
    """Convolutions on a GPU run fastest channels-last (tensor-core kernels, no layout transposes)."""
    return device.type == "cuda" and config.model in ("cnn", "resnet")


class Classifier(pl.LightningModule):
    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters()  # the config travels inside every checkpoint
        self.config: RunConfig = make_config(config)
        self.net = models.build(self.config)
        # Manual optimisation: one optimiser, no closures, fewer hooks per step (less Python per step).
        self.automatic_optimization = False
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc = MulticlassAccuracy(num_classes=10, average="micro")
        # The test keeps every prediction: its accuracy, confusion matrix and mistakes are one pass (TestResult).
        self.test_confusion = MulticlassConfusionMatrix(num_classes=10)
        self.test_predictions = Predictions()
        self.test_result: TestResult | None = None
        self.step_losses: list[torch.Tensor] = []  # device scalars of the steps since the Reporter's last tick
        # Dropout draws from the global RNG: seeding it from the step number makes step k the same
        # whether the run went straight through or was stopped and resumed anywhere before it.
        self.seed_steps = self.config.dropout > 0
        # Called before each step touches anything (batch-norm statistics change in the forward pass),
        # so a stop leaves the weights exactly as after the previous step. The Reporter sets its stop check.
        self.before_step: Callable[[], None] = lambda: None

    def take_losses(self) -> list[torch.Tensor]:
        losses, self.step_losses = self.step_losses, []
        return losses

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def setup(self, stage: str) -> None:
        # Before Lightning moves the net to the device; .to(device) keeps the layout.
        if self.trainer is not None:
            self.use_layout_for(self.trainer.strategy.root_device)

    def use_layout_for(self, device: torch.device) -> None:
        if uses_channels_last(self.config, device):
            self.net.to(memory_format=torch.channels_last)

    def predict_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluation logits: with tta_flip, the mean over each image and its mirror image."""
        logits = self(x).float()
        if self.config.tta_flip:
            logits = (logits + self(x.flip(-1)).float()) / 2
        return logits

    def training_step(self, batches, batch_idx):
        """Several optimiser steps, one per (x, y) in `batches` (see data.StepGroups).

        No self.log here: the losses stay on the device and the Reporter callback reads
        them at its throttle tick, so the hot path never waits for a device sync.
        """
        opt = self.optimizers()
        sched = self.lr_schedulers() if self.config.schedule != "none" else None
        assert not isinstance(opt, list) and not isinstance(sched, list), "one optimiser, one schedule"
        # With no loss scaling to do, manual_backward only adds two hook dispatches per step:
        # a tenth of a millisecond, much of a small model's step on a GPU.
        # Under DDP, manual_backward also readies the gradient all-reduce for each of the K steps.
        backward = (
            torch.Tensor.backward
            if getattr(self.trainer.precision_plugin, "scaler", None) is None and self.trainer.world_size == 1
            else self.manual_backward
        )
        for x, y in batches:
            self.before_step()
            if self.seed_steps:
                seed_device(x.device, position_seed(self.config.seed, "step", self.trainer.global_step))
            loss = F.cross_entropy(self(x), y, label_smoothing=self.config.label_smoothing)
            opt.zero_grad(set_to_none=True)
            backward(loss)
            opt.step()
            if sched is not None:
                sched.step()
            self.step_losses.append(loss.detach())
        return {"samples": sum(y.shape[0] for _, y in batches)}

    def _evaluate(self, batch, loss_metric, acc_metric):
        x, y = batch
        logits = self.predict_logits(x)
        # Plain cross-entropy (no smoothing) so losses compare across presets.
        loss_metric.update(F.cross_entropy(logits, y), weight=y.shape[0])
        acc_metric.update(logits, y)

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, self.val_loss, self.val_acc)

    def on_validation_epoch_end(self):
        self.log("val_loss", self.val_loss)
        self.log("val_acc", self.val_acc)

    def on_test_epoch_start(self):
        self.test_confusion.reset()
        self.test_predictions.reset()
        self.test_result = None

    def test_step(self, batch, batch_idx):
        x, y = batch
        logits = self.predict_logits(x)
        self.test_loss.update(F.cross_entropy(logits, y), weight=y.shape[0])
        self.test_confusion.update(logits, y)
        trainer = self.trainer
        index = eval_index(batch_idx, len(y), self.config.eval_batch_size, trainer.global_rank, trainer.world_size)
        self.test_predictions.update(index.to(y.device), y, logits.softmax(1))

    def on_test_epoch_end(self):
        confusion = self.test_confusion.compute().cpu()  # every process's images (torchmetrics syncs)
        index, target, probs = (t.cpu() for t in self.test_predictions.compute())
        loss = float(self.test_loss.compute())
        self.test_result = TestResult(confusion, loss, index, target, probs)
        self.log("test_loss", loss, sync_dist=False)  # already the whole test set's, on every process
        self.log("test_acc", self.test_result.accuracy, sync_dist=False)
        self.test_loss.reset()

    def configure_optimizers(self):
        c = self.config
        opt = build_optimizer(c, self.parameters(), self.device, c.lr)
        # A resume with another epoch count fits the rest of the schedule to the new end (schedule.py).
        sched = schedule.build(c.schedule, opt, c.lr, c.epochs * c.steps_per_epoch)
        if sched is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def build_optimizer(c: RunConfig, params, device: torch.device, lr: float) -> torch.optim.Optimizer:
    """The config's optimiser at `lr` (the run's and the lr finder's: one place for both)."""
    # On a GPU the fused kernels update every parameter in one launch; same update rule.
    fused = True if device.type == "cuda" else None  # None: torch's default for the device
    if c.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=c.momentum, nesterov=c.nesterov,
                               weight_decay=c.weight_decay, fused=fused)  # fmt: skip
    if c.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=c.weight_decay, fused=fused)
    return torch.optim.AdamW(params, lr=lr, weight_decay=c.weight_decay, fused=fused)
