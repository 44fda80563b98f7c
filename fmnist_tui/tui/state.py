"""What the app knows about the current run: plain data, updated on the UI thread only."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from fmnist_tui.config import RunConfig
from fmnist_tui.engine.events import EpochEnd, LogLine, RunEnded, RunStarted, StepProgress

MAX_LOG_LINES = 5_000
MAX_LOSS_POINTS = 4_000  # the chart draws 400 (and thins these on every redraw); past this, pairs are averaged


@dataclass
class RunState:
    config: RunConfig | None = None
    started: RunStarted | None = None
    progress: StepProgress | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (global step, loss), at most MAX_LOSS_POINTS
    epochs: list[EpochEnd] = field(default_factory=list)
    logs: deque[LogLine] = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    logs_total: int = 0  # lines ever added; views write the ones they have not seen
    ended: RunEnded | None = None
    attached: Path | None = None  # the run's folder when the app follows a run it does not host
    version: int = 0  # bumped on every change; views redraw when it moves

    def add_losses(self, points: deque[tuple[int, float | None]] | list[tuple[int, float | None]]) -> None:
        """Take (step, loss) points; a deque is drained (it is the relay's, filled by another thread).
        (step, None) marks a resume at `step`: the points after it were trained again."""
        if isinstance(points, deque):
            pop = points.popleft
            taken = [pop() for _ in range(len(points))]  # what is there now; later ones next time
        else:
            taken = list(points)
        for step, loss in taken:
            if loss is None:
                self.losses = [p for p in self.losses if p[0] <= step]
            else:
                self.losses.append((step, loss))
        if len(self.losses) > MAX_LOSS_POINTS:
            self.losses = halve(self.losses)

    def go_on_from(self, started: RunStarted) -> None:
        """A segment starts (a resume, a hand-over): what the earlier one did after its checkpoint is gone."""
        self.epochs = [e for e in self.epochs if e.epoch < started.start_epoch]
        self.ended = None

    def add_log(self, line: LogLine) -> None:
        self.logs.append(line)
        self.logs_total += 1

    def new_logs(self, seen: int) -> list[LogLine]:
        """Lines added after the first `seen` (those already dropped from the window are skipped)."""
        count = min(self.logs_total - seen, len(self.logs))
        return list(self.logs)[len(self.logs) - count :] if count > 0 else []

    @property
    def running(self) -> bool:
        return self.config is not None and self.ended is None


def halve(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Neighbouring pairs averaged (at the later step); an odd last point is kept as it is."""
    out = [(b[0], (a[1] + b[1]) / 2) for a, b in zip(points[0:-1:2], points[1::2], strict=True)]
    if len(points) % 2:
        out.append(points[-1])
    return out
