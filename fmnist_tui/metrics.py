"""metrics.csv: every training step once, one row per epoch, one per tested set of weights.

    kind,epoch,step,train_loss,val_loss,val_acc,lr,seconds,test_loss,test_acc,weights

- step rows: the loss of each optimiser step, written exactly (repr of the float), so an
  epoch's `train_loss` can be recomputed from them; `seconds` (time into the epoch) is set
  on the last step of each progress tick.
- epoch rows: written at the end of the epoch, before its checkpoint is saved; `seconds`
  is the epoch's wall time, validation included, summed across resumes.
- test rows: `weights` says which were tested (best or last); `seconds` is the test's time.
- lr rows: the learning rate was set to `lr` while the run trained (`fmnist-tui control RUN
  lr=VALUE`), from the step after `step` on.

Epochs are 0-based, as in the checkpoints. A resume first rewrites the file to what its
checkpoint holds (`restart_at`), so no stop, kill -9 or failure leaves a step twice or an
epoch row of weights that were lost. No torch, no textual.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fmnist_tui.files import as_disk_full, free_name, write_atomic

COLUMNS = (
    "kind",
    "epoch",
    "step",
    "train_loss",
    "val_loss",
    "val_acc",
    "lr",
    "seconds",
    "test_loss",
    "test_acc",
    "weights",
)
FILE = "metrics.csv"
KINDS = ("step", "epoch", "test", "lr")
ORDER = {"step": 0, "epoch": 1, "lr": 2}  # rows at the same step, as they are written


def _text(value: Any) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _row(fields: list[str]) -> dict[str, str] | None:
    """A line's fields as a row, by position (the header may be damaged; older files lack `weights`)."""
    if not 8 <= len(fields) <= len(COLUMNS) or fields[0] not in KINDS or max(map(len, fields)) > 40:
        return None
    row = dict(zip(COLUMNS, fields + [""] * (len(COLUMNS) - len(fields)), strict=True))
    try:
        if int(row["epoch"]) < 0 or int(row["step"]) < 0:
            return None
    except ValueError:
        return None
    if row["kind"] == "step" and _float(row["train_loss"]) is None:
        return None
    return row


def _parse(text: str) -> tuple[list[dict[str, str]], int]:
    """(well-formed rows, lines that were not). A last line without its newline is still being written.

    Split by hand, not with the csv module: the writer never quotes (every field is a number
    or a word), and a stray quote or a huge field must cost one line, not the rest of the file."""
    rows, bad = [], 0
    for n, line in enumerate(text[: text.rfind("\n") + 1].splitlines()):
        fields = line.split(",")
        row = _row(fields)
        if row is not None:
            rows.append(row)
        elif line.strip() and not (n == 0 and fields[0] == "kind"):
            bad += 1
    return rows, bad


def read_rows(path: Path) -> list[dict[str, str]]:
    """The well-formed rows; a damaged or half-written line is skipped, never raised."""
    try:
        return _parse(path.read_text(encoding="utf-8", errors="replace"))[0]
    except OSError:
        return []


@dataclass
class Carried:
    """What the record holds of the epoch a resumed run starts in."""

    epoch: int
    losses: list[float] = field(default_factory=list)  # its step losses so far, in order
    seconds: float = 0.0  # its time so far
    problem: str | None = None  # what was wrong with the file, for the log
    epochs_seconds: float = 0.0  # the time of the epochs before it
    best_val_acc: float | None = None  # the best of the epochs before it


def restart_at(path: Path, step: int, epochs_done: int) -> Carried:
    """Rewrite metrics.csv to what a checkpoint at `step` with `epochs_done` epoch rows holds.

    Steps after the checkpoint (trained, then lost to a kill), epoch rows it does not hold
    and every test row (the run goes on, so its weights are tested again) are dropped; the
    rest is put in order, each step once. A file that needed more than that (garbage, a
    step twice, rows out of order) is first kept beside it as metrics.csv.damaged.
    """
    # Unreadable is not empty: the resume checked it reads (segment.py), so a failure here raises.
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    rows, bad = _parse(text)
    steps: dict[int, dict[str, str]] = {}
    epochs: dict[int, dict[str, str]] = {}
    changes: list[dict[str, str]] = []
    for row in rows:
        if row["kind"] == "step" and int(row["step"]) <= step:
            bad += int(row["step"]) in steps
            steps.setdefault(int(row["step"]), row)
        elif row["kind"] == "epoch" and int(row["epoch"]) < epochs_done:
            bad += int(row["epoch"]) in epochs
            epochs.setdefault(int(row["epoch"]), row)
        elif row["kind"] == "lr" and int(row["step"]) < step:  # set before the step after it: in the checkpoint
            changes.append(row)
    # Each epoch row right after its epoch's last step, as written; an lr change after the step it follows.
    kept = sorted([*steps.values(), *epochs.values(), *changes], key=lambda r: (int(r["step"]), ORDER[r["kind"]]))
    kept_ids = [id(r) for r in kept]
    wanted = set(kept_ids)
    in_file_order = [id(r) for r in rows if id(r) in wanted]
    problems = []
    if bad or in_file_order != kept_ids:
        aside = free_name(path.with_name(path.name + ".damaged"))
        write_atomic(aside, text)
        problems.append(f"{FILE} had damaged, repeated or misplaced rows: the original is kept as {aside.name}")
    missing = step - len(steps)
    if missing:
        problems.append(
            f"{FILE} lacks {missing} of the {step} steps the checkpoint holds: their losses are not on record"
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([row[c] for c in COLUMNS] for row in kept)
    write_atomic(path, out.getvalue())
    carried = Carried(epochs_done, problem="; ".join(problems) or None, best_val_acc=best_val_acc(kept),
                      epochs_seconds=recorded_seconds([r for r in kept if r["kind"] == "epoch"]))  # fmt: skip
    for row in kept:
        if row["kind"] == "step" and int(row["epoch"]) == epochs_done:
            carried.losses.append(float(row["train_loss"]))
            carried.seconds = _float(row["seconds"]) or carried.seconds
    return carried


class Copy(Protocol):
    """Another format fed the same rows (engine/tensorboard.py)."""

    def config(self, config: dict[str, Any]) -> None: ...  # the run's resolved config, before any row
    def steps(self, first_step: int, losses: list[float]) -> None: ...
    def row(self, kind: str, values: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class MetricsWriter:
    """Appends rows; flushed at every tick and epoch, so a kill -9 loses nothing written.
    Each row, once flushed, goes to `copy` too."""

    def __init__(self, path: Path, copy: Copy | None = None):
        self.path, self.copy = path, copy
        new = not path.exists() or path.stat().st_size == 0
        self._file = open(path, "a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file, lineterminator="\n")
        if new:
            self._csv.writerow(COLUMNS)

    def steps(self, epoch: int, first_step: int, losses: list[float], seconds: float) -> None:
        last = len(losses) - 1
        for i, loss in enumerate(losses):
            time = f"{seconds:.3f}" if i == last else ""
            self._csv.writerow(("step", epoch, first_step + i, repr(loss), "", "", "", time, "", "", ""))
        self.flush()
        if self.copy:
            self.copy.steps(first_step, losses)

    def row(self, kind: str, **values: Any) -> None:
        self._csv.writerow([kind, *(_text(values.get(c)) for c in COLUMNS[1:])])
        self.flush()
        if self.copy:
            self.copy.row(kind, values)

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as err:
            raise as_disk_full(err, self.path) from None

    def close(self) -> None:
        if self.copy:
            self.copy.close()
        try:
            self._file.close()
        except OSError:
            pass  # a full disk: the failure was reported when it happened


def best_val_acc(rows: list[dict[str, str]]) -> float | None:
    accs = [_float(r["val_acc"]) for r in rows if r["kind"] == "epoch"]
    finite = [a for a in accs if a is not None and math.isfinite(a)]
    return max(finite) if finite else None


def best_step(rows: list[dict[str, str]]) -> int | None:
    """The step of the first epoch with the best validation accuracy: where best.ckpt stands."""
    best, step = None, None
    for row in rows:
        acc = _float(row["val_acc"]) if row["kind"] == "epoch" else None
        if acc is not None and math.isfinite(acc) and (best is None or acc > best):
            best, step = acc, int(row["step"])
    return step


def recorded_seconds(rows: list[dict[str, str]]) -> float:
    """Training time as the record has it: every epoch, the unfinished one so far, the tests."""
    total, done, partial = 0.0, set[int](), dict[int, float]()
    for row in rows:
        seconds, epoch = _float(row["seconds"]) or 0.0, int(row["epoch"])
        if not math.isfinite(seconds) or seconds < 0:
            continue
        if row["kind"] == "step":
            partial[epoch] = seconds or partial.get(epoch, 0.0)
            continue
        total += seconds
        if row["kind"] == "epoch":
            done.add(epoch)
    return total + sum(s for epoch, s in partial.items() if epoch not in done)


def read_metrics(run_dir: Path) -> tuple[list[tuple[int, float]], list[dict[str, float]]]:
    """(step, loss) pairs and epoch rows as numbers, for charts and tables."""
    steps: list[tuple[int, float]] = []
    epochs: list[dict[str, float]] = []
    for row in read_rows(Path(run_dir) / FILE):
        if row["kind"] == "step":
            steps.append((int(row["step"]), float(row["train_loss"])))
        elif row["kind"] == "epoch":
            numbers = {k: _float(v) for k, v in row.items() if k not in ("kind", "weights")}
            epochs.append({k: v for k, v in numbers.items() if v is not None})
    return steps, epochs
