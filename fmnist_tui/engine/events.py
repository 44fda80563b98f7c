"""What the engine reports, as small frozen dataclasses of numbers and strings.

A sink is any callable taking one event. The headless CLI prints them, the app
shows them, and they stay plain so a run in another process could send them too.
Importing this module imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["finished", "stopped", "failed", "diverged", "interrupted"]
# The error of a segment that stopped so that a background process could go on with the run.
HANDED_OVER = "handed over to a background process, which goes on from this checkpoint"


@dataclass(frozen=True)
class RunStarted:
    run_dir: str
    device: str  # e.g. "cpu (2 cores)" or "cuda:0 NVIDIA H100"
    epochs: int
    steps_per_epoch: int
    total_steps: int
    start_epoch: int = 0  # > 0 when resumed
    start_step: int = 0
    world_size: int = 1  # processes training it (DDP); the losses are the first one's
    at: float = 0.0  # Unix time, just before the first step


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
    losses: tuple[float, ...] = ()  # each step's loss since the last report, in order (ending at `step`)


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
class Control:
    """A control (stop, stop-after-epoch, checkpoint, lr) as the run carried it out, at `step`."""

    action: str
    step: int
    text: str  # what happened, for a person: "lr 0.01 from step 1201 (schedule scaled x0.5)"
    value: float | None = None  # the new lr


@dataclass(frozen=True)
class RunEnded:
    """How a run (or one more segment of it) ended. Test figures name their weights: `test_*`
    are best.ckpt's (the checkpoint of the best validation accuracy), `last_test_*` the final
    weights' when those differ. Epochs are 0-based, as in metrics.csv."""

    status: Status
    run_dir: str
    duration_s: float  # training time from the record: every epoch, across resumes, and the tests
    best_val_acc: float | None = None
    test_acc: float | None = None
    test_loss: float | None = None
    test_checkpoint: str | None = None  # "best.ckpt", or "last.ckpt" when no epoch was validated
    test_epoch: int | None = None
    last_test_acc: float | None = None
    last_test_loss: float | None = None
    last_test_epoch: int | None = None
    checkpoint: str | None = None  # the file to use (finished: best.ckpt) or to resume from (last.ckpt)
    error: str | None = None  # a message a person can read; details are in the log
    at: float = 0.0  # Unix time


Event = RunStarted | StepProgress | EpochEnd | LogLine | Control | RunEnded
Sink = Callable[[Event], None]


def as_dict(event: Event) -> dict:
    return {"event": type(event).__name__, **asdict(event)}
