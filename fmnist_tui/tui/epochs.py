"""One row of the per-epoch table, from a live EpochEnd or a metrics.csv row."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EpochRow:
    epoch: int  # 0-based
    step: int
    train_loss: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float

    @classmethod
    def of(cls, item: Any) -> EpochRow:
        """An EpochEnd event or a read_metrics() dict (missing numbers become NaN)."""
        get = item.get if isinstance(item, dict) else lambda k, d=math.nan: getattr(item, k, d)
        return cls(
            epoch=int(get("epoch", 0)), step=int(get("step", 0)),
            train_loss=float(get("train_loss", math.nan)), val_loss=float(get("val_loss", math.nan)),
            val_acc=float(get("val_acc", math.nan)), lr=float(get("lr", math.nan)),
            seconds=float(get("seconds", math.nan)),
        )  # fmt: skip
