"""What the app knows about the current run: plain data, updated on the UI thread only."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from fmnist_tui.config import RunConfig
from fmnist_tui.engine.events import EpochEnd, LogLine, RunEnded, RunStarted, StepProgress

MAX_LOG_LINES = 5_000


@dataclass
class RunState:
    config: RunConfig | None = None
    started: RunStarted | None = None
    progress: StepProgress | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (global step, loss)
    epochs: list[EpochEnd] = field(default_factory=list)
    logs: deque[LogLine] = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    logs_total: int = 0  # lines ever added; views write the ones they have not seen
    ended: RunEnded | None = None
    version: int = 0  # bumped on every change; views redraw when it moves

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
