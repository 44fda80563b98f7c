"""The LightningModule: network, loss, optimiser and schedule, metrics per stage."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from fmnist_tui.config import RunConfig, make_config
from fmnist_tui.engine import models


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
        self.test_acc = MulticlassAccuracy(num_classes=10, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batches, batch_idx):
        """Several optimiser steps, one per (x, y) in `batches` (see data.StepGroups).

        No self.log here: the losses stay on the device and the Reporter callback reads
        them at its throttle tick, so the hot path never waits for a device sync.
        """
        opt = self.optimizers()
        sched = self.lr_schedulers() if self.config.schedule != "none" else None
        losses = []
        for x, y in batches:
            loss = F.cross_entropy(self(x), y, label_smoothing=self.config.label_smoothing)
            opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt.step()  # runs the callbacks' on_before_optimizer_step: the Reporter's stop check
            if sched is not None:
                sched.step()
            losses.append(loss.detach())
        return {"losses": torch.stack(losses), "samples": sum(y.shape[0] for _, y in batches)}

    def _evaluate(self, batch, loss_metric, acc_metric):
        x, y = batch
        logits = self(x)
        # Plain cross-entropy (no smoothing) so losses compare across presets.
        loss_metric.update(F.cross_entropy(logits.float(), y), weight=y.shape[0])
        acc_metric.update(logits, y)

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, self.val_loss, self.val_acc)

    def on_validation_epoch_end(self):
        self.log("val_loss", self.val_loss)
        self.log("val_acc", self.val_acc)

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, self.test_loss, self.test_acc)

    def on_test_epoch_end(self):
        self.log("test_loss", self.test_loss)
        self.log("test_acc", self.test_acc)

    def configure_optimizers(self):
        c = self.config
        params = self.parameters()
        if c.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                                  weight_decay=c.weight_decay)  # fmt: skip
        elif c.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        else:
            opt = torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        if c.schedule == "none":
            return opt
        total = c.epochs * c.steps_per_epoch
        if c.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.lr, total_steps=total)
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
