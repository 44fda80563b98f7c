"""Sorting and filtering the runs list (the app's runs screen). No torch, no textual.

A filter is words, all of which must match (case does not matter):
    status:finished   the run's status starts with "finished"
    preset:mlp        its preset's name contains "mlp"
    lr=0.01           its config has lr = 0.01 (as written in config.toml)
    anything else     found in the run's name, its note, or any "key=value" of its config
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fmnist_tui.format import number
from fmnist_tui.notes import read_note
from fmnist_tui.runs import RunInfo

# name -> (key, newest/largest first?); missing figures always go last
SORTS: dict[str, Callable[[RunInfo], float | None]] = {
    "date": lambda r: None,  # the store's order: folder names start with the date, newest first
    "best val": lambda r: number(r.get("best_val_acc")),
    "test acc": lambda r: number(r.get("test_acc")),
    "time": lambda r: number(r.get("duration_s")),
}


def sort_runs(runs: list[RunInfo], by: str) -> list[RunInfo]:
    """Runs in `by` order, best (or longest) first, those without the figure last; "date" keeps
    running ones on top, newest first."""
    if by == "date":
        return sorted(runs, key=lambda r: r.status != "running")  # stable: the store lists newest first
    value = SORTS[by]
    return sorted(runs, key=lambda r: (value(r) is None, -(value(r) or 0.0)))


def config_words(info: RunInfo) -> list[str]:
    return [f"{k}={v}".lower() for k, v in info.config.items()]


@dataclass(frozen=True)
class Filter:
    text: str = ""

    @property
    def words(self) -> list[str]:
        return self.text.lower().split()

    def __bool__(self) -> bool:
        return bool(self.words)

    def matches(self, info: RunInfo, note: str | None = None) -> bool:
        config = config_words(info)
        for word in self.words:
            if word.startswith("status:"):
                ok = info.status.startswith(word[7:])
            elif word.startswith("preset:"):
                ok = word[7:] in info.preset.lower()
            elif "=" in word:
                ok = word in config
            else:
                if note is None:
                    note = read_note(info.path)  # only for a plain word: a file read per run
                ok = word in info.name.lower() or word in note.lower() or any(word in c for c in config)
            if not ok:
                return False
        return True
