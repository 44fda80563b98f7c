"""Per-step learning-rate schedules whose end a resume may move.

torch's OneCycleLR and CosineAnnealingLR fix their length when built. Resuming a run
with more epochs then overran OneCycleLR ("Tried to step 41 times") and restarted the
cosine high. Here the schedule keeps its planned length, and a resume that changes the
number of steps maps the steps left onto what is left of the schedule, linearly:

    position(step) = p + (step - s) * (last - p) / (end - 1 - s)

where s is the step the resume started at, p the position reached there, and last the
position of the schedule's final optimiser step. So the lr is continuous at the resume
and the new last step trains at the schedule's own last lr (stretched when extended,
squeezed when shortened). A finished schedule stays at its last lr. Runs that are not
re-fitted step exactly as torch's schedulers do. An lr set while the run trains scales the
whole rest of the schedule (`scale`), so its shape goes on from the new value.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR


class Refittable:
    """Mixin for a torch scheduler whose lr is a closed-form function of `last_epoch`."""

    planned_steps: int
    end_step: int  # where the schedule ends now: the planned length, until a resume moves it
    anchor: tuple[int, float] | None  # (step, position) where the last re-fit started
    last_epoch: int
    scale: float = 1.0  # set by an lr control in flight (engine/steering.py); saved in checkpoints

    def _init_refit(self, total_steps: int) -> None:
        self.planned_steps = self.end_step = total_steps
        self.anchor = None

    def position(self, step: int) -> float:
        if self.anchor is None:
            return step
        start, pos = self.anchor
        last = self.planned_steps - 1  # the position of the schedule's last optimiser step
        if pos >= last or self.end_step - 1 <= start:
            return min(pos, last)  # nothing left to stretch: stay where the schedule ended
        stretched = pos + (step - start) * (last - pos) / (self.end_step - 1 - start)
        return min(stretched, self.planned_steps)  # past the last step only the unused final lr is computed

    def refit(self, end_step: int) -> None:
        """Fit what is left of the schedule between the current step and `end_step`."""
        if end_step != self.end_step:
            self.anchor = (self.last_epoch, self.position(self.last_epoch))
            self.end_step = end_step

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Built from the resumed run's config, then given the checkpoint's state: keep the new end.
        end_step = self.end_step
        super().load_state_dict(state_dict)  # type: ignore[misc]
        if "planned_steps" not in state_dict:  # a checkpoint of torch's own scheduler (older runs)
            planned = state_dict.get("total_steps", state_dict.get("T_max", end_step))
            self.planned_steps = self.end_step = planned
            self.anchor = None
        self.refit(end_step)

    def _closed_form(self) -> list[float | Tensor]:
        raise NotImplementedError

    def get_lr(self) -> list[float | Tensor]:
        step = self.last_epoch
        self.last_epoch = self.position(step)  # type: ignore[assignment]  # torch's formulas take a float fine
        try:
            return [lr * self.scale for lr in self._closed_form()]
        finally:
            self.last_epoch = step


class OneCycle(Refittable, OneCycleLR):
    def __init__(self, optimizer: Optimizer, max_lr: float, total_steps: int) -> None:
        self._init_refit(total_steps)
        super().__init__(optimizer, max_lr=max_lr, total_steps=total_steps)

    def _closed_form(self) -> list[float | Tensor]:
        return OneCycleLR.get_lr(self)


class Cosine(Refittable, CosineAnnealingLR):
    def __init__(self, optimizer: Optimizer, total_steps: int) -> None:
        self._init_refit(total_steps)
        super().__init__(optimizer, T_max=total_steps)

    def _closed_form(self) -> list[float | Tensor]:
        return CosineAnnealingLR._get_closed_form_lr(self)


def build(kind: str, optimizer: Optimizer, lr: float, total_steps: int) -> Refittable | None:
    if kind == "onecycle":
        return OneCycle(optimizer, max_lr=lr, total_steps=total_steps)
    if kind == "cosine":
        return Cosine(optimizer, total_steps=total_steps)
    return None
