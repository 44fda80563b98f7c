"""Following a run from its folder: what `attach`, `wait` and the app's attached view read.

A Follower reads the run's events.jsonl as it grows (engine/eventlog.py) and decides when
the run is over. The run's writer holds its lock while it runs (runs.py), so:
- a RunEnded in the log is held back until the lock is free: when a RunStarted follows
  instead (a resume, or the app handing its run to a background process), the run goes on,
  and the end becomes a line of its log;
- a lock that stays free (GRACE_S) with no RunEnded means the writer died without writing
  its end (kill -9, power): the run is over as `interrupted`, or as its summary says.
A run written before events.jsonl existed is replayed from its metrics.csv and summary.
No torch, no textual: polling is a read of the new bytes and a lock probe.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from fmnist_tui.engine.eventlog import FILE as EVENTS
from fmnist_tui.engine.eventlog import EventReader
from fmnist_tui.engine.events import HANDED_OVER, EpochEnd, Event, LogLine, RunEnded, RunStarted, StepProgress
from fmnist_tui.format import number
from fmnist_tui.metrics import read_metrics
from fmnist_tui.runs import STATUSES, RunDir, lock_held

GRACE_S = 0.8  # the lock free this long (and no more events) = the writer is gone; a hand-over takes ~0.05 s
HANDOVER_GRACE_S = 60.0  # after a segment that says it handed the run over: the next process is starting
FINAL = tuple(s for s in STATUSES if s != "running")
EPOCH_FIGURES = ("train_loss", "val_loss", "val_acc", "lr", "seconds")  # EpochEnd's, after epoch and step


class Follower:
    def __init__(self, run_path: Path):
        self.path = Path(run_path)
        self.reader = EventReader(self.path / EVENTS)
        self.over = False
        self.ended: RunEnded | None = None  # the end, once the run is over
        self.vanished = False  # its process died without writing its end (kill -9)
        self._held: RunEnded | None = None
        self._free_since: float | None = None
        self._started = False  # a replay has begun (events.jsonl, or the record without it)

    def skip_history(self, keep_bytes: int = 64 * 1024) -> None:
        """Read only the last `keep_bytes` of the log (`wait` needs the end, not the history;
        the line cut in two there is skipped as garbage)."""
        try:
            self.reader.offset = max(0, self.reader.path.stat().st_size - keep_bytes)
        except OSError:
            pass

    def poll(self) -> list[Event]:
        """The events since the last poll (and the run's end, once it is over). Never raises."""
        if self.over:
            return []
        if not self._started and not (self.path / EVENTS).exists() and not lock_held(self.path):
            return self._finish(self._from_record())
        self._started = True
        out: list[Event] = []
        for event in self.reader.read():
            if isinstance(event, RunEnded):
                self._held = event
                continue
            if isinstance(event, RunStarted) and self._held is not None:
                out.append(LogLine("INFO", "fmnist_tui", f"that segment ended {self._held.status}; "
                                   f"the run goes on from step {event.start_step}"))  # fmt: skip
                self._held = None
            out.append(event)
        if lock_held(self.path):
            self._free_since = None
            return out
        now = time.monotonic()
        self._free_since = self._free_since or now
        grace = HANDOVER_GRACE_S if self._held is not None and self._held.error == HANDED_OVER else GRACE_S
        if now - self._free_since < grace or self.reader.pending():
            return out
        return self._finish(out)

    def _finish(self, out: list[Event]) -> list[Event]:
        self.over = True
        summary = RunDir(self.path).read_summary()
        self.ended = self._held or self._end_from(summary)
        if self.ended.error == HANDED_OVER:  # and no process took it over
            self.ended = replace(self.ended, error="it was handed over to a background process that never took it "
                                 f"over; resume it with: fmnist-tui run --resume {self.path.name}")  # fmt: skip
        status = summary.get("status")
        if status in FINAL and status != self.ended.status:  # summary.json is the record; the log only reports it
            self.ended = replace(self.ended, status=status)
        return [*out, self.ended]

    def _end_from(self, summary: dict) -> RunEnded:
        """The writer left no RunEnded: what summary.json says, or `interrupted`."""
        status = summary.get("status")
        fields: dict[str, Any] = {k: number(summary.get(k)) for k in ("best_val_acc", "test_acc", "test_loss")}
        fields |= {k: summary[k] for k in ("test_checkpoint", "checkpoint", "error") if isinstance(summary.get(k), str)}
        epoch = summary.get("test_epoch")
        fields["test_epoch"] = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None
        if status in FINAL:
            return RunEnded(status=status, run_dir=str(self.path), duration_s=_seconds(summary), **fields)
        self.vanished = True
        return RunEnded(status="interrupted", run_dir=str(self.path), duration_s=_seconds(summary),
                        best_val_acc=fields["best_val_acc"],
                        error="the run's process ended without writing its end (killed, or the machine went down); "
                              f"resume it with: fmnist-tui run --resume {self.path.name}")  # fmt: skip

    def _from_record(self) -> list[Event]:
        """A run with no events.jsonl (older than it): its steps and epochs from metrics.csv, in order."""
        steps, epochs = read_metrics(self.path)
        ends = [EpochEnd(int(e["epoch"]), int(e["step"]), *(e.get(k, math.nan) for k in EPOCH_FIGURES)) for e in epochs]
        out: list[Event] = []
        epoch = 0  # the epoch a step is in: the epoch rows before it
        for step, loss in steps:
            while ends and ends[0].step < step:
                out.append(ends.pop(0))
                epoch += 1
            out.append(StepProgress(epoch, step, 0, 0, 0, loss, 0.0, 0.0, 0.0, (loss,)))
        return out + ends


def _seconds(summary: dict) -> float:
    return number(summary.get("duration_s")) or 0.0
