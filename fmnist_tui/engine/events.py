"""What the engine reports, as small frozen dataclasses of numbers and strings.

A sink is any callable taking one event. The headless CLI prints them, the app
shows them, and they stay plain so a run in another process could send them too.
Importing this module imports no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Literal, Union

Status = Literal["finished", "stopped", "failed", "diverged", "interrupted"]


@dataclass(frozen=True)
class RunStarted:
    run_dir: str
    device: str  # e.g. "cpu (2 cores)" or "cuda:0 NVIDIA H100"
    epochs: int
    steps_per_epoch: int
    total_steps: int
    start_epoch: int = 0  # > 0 when resumed
    start_step: int = 0


@dataclass(frozen=True)
class StepProgress:
    """Throttled: at most `progress_hz` per second; the UI may drop all but the latest."""

    epoch: int  # 0-based
    step: int  # global optimiser steps done
    total_steps: int
    epoch_step: int  # steps done in this epoch
    steps_per_epoch: int
    loss: float  # mean training loss of the steps since the last report
    samples_per_s: float
    elapsed_s: float
    eta_s: float  # from the pace so far, validation included


@dataclass(frozen=True)
class EpochEnd:
    """Never dropped."""

    epoch: int
    step: int
    train_loss: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float


@dataclass(frozen=True)
class LogLine:
    level: str  # "INFO", "WARNING", ...
    source: str  # logger name, e.g. "pytorch_lightning" or "py.warnings"
    text: str


@dataclass(frozen=True)
class RunEnded:
    status: Status
    run_dir: str
    duration_s: float
    best_val_acc: float | None = None
    test_acc: float | None = None
    test_loss: float | None = None
    checkpoint: str | None = None
    error: str | None = None  # a message a person can read; details are in the log


Event = Union[RunStarted, StepProgress, EpochEnd, LogLine, RunEnded]
Sink = Callable[[Event], None]


def as_dict(event: Event) -> dict:
    return {"event": type(event).__name__, **asdict(event)}
