"""Runs side by side: their figures, their curves, and the config keys whose values differ.

Shared by `fmnist-tui compare` and the app's compare view. No torch, no textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmnist_tui.format import clock, number, pct, printable, value_text
from fmnist_tui.metrics import read_metrics
from fmnist_tui.notes import read_note
from fmnist_tui.runs import RunInfo

MOST = 6  # one colour and one marker each, told apart in a terminal plot
LABELS = "ABCDEF"
MISSING = "-"  # a key one run's config does not have (as a missing figure is shown)
CELL = 24  # a value wider than this is cut (with …): six runs' columns stay readable at 80 columns
SKIPPED = ("description",)  # prose, not a setting: it differs whenever the preset does


class CompareError(ValueError):
    """Not a comparison that can be made: one line saying why."""


@dataclass
class Side:
    """One run of a comparison, with its curves."""

    label: str
    info: RunInfo
    steps: list[tuple[int, float]] = field(default_factory=list)  # (step, train loss)
    epochs: list[dict[str, float]] = field(default_factory=list)  # metrics.csv epoch rows, as numbers
    note: str = ""

    @property
    def has_metrics(self) -> bool:
        return bool(self.steps or self.epochs)

    @property
    def best_val(self) -> float | None:
        """summary.json's, or while it runs (it is written at the end) the best of its epochs so far."""
        best = number(self.info.get("best_val_acc"))
        seen = [e["val_acc"] for e in self.epochs if number(e.get("val_acc")) is not None]
        return best if best is not None or not seen else max(seen)

    @property
    def epochs_text(self) -> str:
        planned = self.info.config.get("epochs")
        done = len(self.epochs)
        return f"{done}/{planned}" if isinstance(planned, int) and not isinstance(planned, bool) else str(done)


def check_count(count: int) -> None:
    if count > MOST:
        raise CompareError(f"at most {MOST} runs can be compared at once ({count} given)")
    if count < 2:
        raise CompareError("compare needs two runs or more (up to 6)")


def check(infos: list[RunInfo]) -> None:
    """CompareError unless 2 to MOST different runs."""
    check_count(len(infos))
    seen: set[Path] = set()
    for info in infos:
        if info.path.resolve() in seen:
            raise CompareError(f"run {info.name} is given twice: compare it with another run")
        seen.add(info.path.resolve())


def load(infos: list[RunInfo]) -> list[Side]:
    """The runs' curves and notes, read now (a running run's grow: load again to follow)."""
    check(infos)
    sides = []
    for label, info in zip(LABELS, infos, strict=False):
        try:
            steps, epochs = read_metrics(info.path)
        except (OSError, ValueError):
            steps, epochs = [], []
        sides.append(Side(label, info, steps, epochs, read_note(info.path)))
    return sides


def no_metrics(sides: list[Side]) -> list[str]:
    """A line for each run that has nothing to plot."""
    return [f"run {s.info.name} has no metrics to plot (metrics.csv missing, empty or unreadable): no curves for "
            f"{s.label}"
            for s in sides if not s.has_metrics]  # fmt: skip


def table(sides: list[Side]) -> list[tuple[str, list[str]]]:
    """The comparison's rows: (what, one value per run)."""
    rows = [
        ("status", [s.info.status for s in sides]),
        ("best val", [pct(s.best_val) for s in sides]),
        ("test acc", [pct(number(s.info.get("test_acc"))) for s in sides]),
        ("time", [clock(number(s.info.get("duration_s"))) for s in sides]),
        ("epochs", [s.epochs_text for s in sides]),
        ("preset", [s.info.preset for s in sides]),
    ]
    if any(s.note for s in sides):
        rows.append(("note", [s.note or MISSING for s in sides]))
    return rows


def cut(text: str, width: int = CELL) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def shown(value: Any) -> str:
    if value is None:
        return MISSING
    return value_text(value)


def config_diff(sides: list[Side]) -> list[tuple[str, list[str]]]:
    """Only the config keys whose values differ, in config order: (key, one value per run, as text)."""
    return [(printable(key), [shown(v) for v in values]) for key, values in differing(sides)]


def differing(sides: list[Side]) -> list[tuple[str, list[Any]]]:
    """(key, values as read) for each config key whose values differ (true and 1 differ; 1 and 1.0 do not)."""
    keys: list[str] = []
    for side in sides:
        keys += [k for k in side.info.config if k not in keys and k not in SKIPPED]
    diff = []
    for key in keys:
        values = [side.info.config.get(key) for side in sides]
        kinds = {isinstance(v, bool) for v in values}
        if len(kinds) > 1 or any(v != values[0] for v in values):
            diff.append((key, values))
    return diff


def record(sides: list[Side]) -> dict[str, Any]:
    """The comparison for scripts (`compare --json`): numbers as numbers, null when missing."""
    return {
        "runs": [
            {"label": s.label, "run": s.info.path.name, "path": str(s.info.path), "status": s.info.status,
             "preset": s.info.config.get("name"), "best_val_acc": s.best_val,
             "test_acc": number(s.info.get("test_acc")), "duration_s": number(s.info.get("duration_s")),
             "epochs": len(s.epochs), "epochs_planned": s.info.config.get("epochs"), "note": s.note,
             "has_metrics": s.has_metrics}
            for s in sides
        ],
        "config_diff": dict(differing(sides)),
    }  # fmt: skip
