"""The run store: one folder per run, the complete record of that run.

    <runs>/<YYYYmmdd-HHMMSS>-<preset>/
        config.toml     resolved config, written before training starts
        summary.json    status (running until the end), metrics, pid
        metrics.csv     one row per training step, per epoch and for the test
        checkpoints/    last.ckpt, best.ckpt

No torch, no textual: the app lists runs without importing either.
"""

from __future__ import annotations

import csv
import json
import os
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w

from fmnist_tui.config import RunConfig, to_dict

METRIC_COLUMNS = ("kind", "epoch", "step", "train_loss", "val_loss", "val_acc", "lr", "seconds", "test_loss", "test_acc")
ENDED = ("finished", "stopped", "failed", "diverged", "interrupted")


class RunStoreError(RuntimeError):
    """The runs folder cannot be used (missing, unwritable, no such run)."""


def write_atomic(path: Path, text: str) -> None:
    """Temporary file in the same folder, fsync, rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunInfo:
    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    problems: list[str]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def preset(self) -> str:
        return str(self.config.get("name", "?"))

    @property
    def status(self) -> str:
        status = self.summary.get("status")
        if status == "running" and not _pid_alive(self.summary.get("pid")):
            return "interrupted"  # the process died without writing its end
        if status is None or self.problems:
            return "incomplete"
        return str(status)

    @property
    def started(self) -> str:
        return str(self.summary.get("started", ""))

    def get(self, key: str) -> Any:
        return self.summary.get(key)

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"


class RunDir:
    """A run's folder, as the engine writes it."""

    def __init__(self, path: Path):
        self.path = path
        self.checkpoints = path / "checkpoints"

    def write_config(self, config: RunConfig) -> None:
        write_atomic(self.path / "config.toml", tomli_w.dumps(to_dict(config)))

    def read_summary(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_summary(self, **fields: Any) -> dict[str, Any]:
        summary = {**self.read_summary(), **fields}
        write_atomic(self.path / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return summary

    def open_metrics(self) -> "MetricsWriter":
        return MetricsWriter(self.path / "metrics.csv")


class MetricsWriter:
    """Appends rows to metrics.csv; a resumed run appends to the same file."""

    def __init__(self, path: Path):
        new = not path.exists() or path.stat().st_size == 0
        self._file = open(path, "a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(METRIC_COLUMNS)

    def steps(self, epoch: int, first_step: int, losses: list[float]) -> None:
        for i, loss in enumerate(losses):
            self._csv.writerow(("step", epoch, first_step + i, f"{loss:.6g}", "", "", "", "", "", ""))

    def row(self, kind: str, **values: Any) -> None:
        self._csv.writerow([kind, *(_fmt(values.get(c)) for c in METRIC_COLUMNS[1:])])
        self.flush()

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def best_val_acc(epochs: list[dict[str, float]]) -> float | None:
    accs = [e["val_acc"] for e in epochs if e.get("val_acc") == e.get("val_acc") and "val_acc" in e]
    return max(accs) if accs else None


def read_metrics(run_dir: Path) -> tuple[list[tuple[int, float]], list[dict[str, float]]]:
    """(step, loss) pairs and epoch rows; a damaged file gives what could be read."""
    steps: list[tuple[int, float]] = []
    epochs: list[dict[str, float]] = []
    try:
        with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                try:
                    if row["kind"] == "step":
                        steps.append((int(row["step"]), float(row["train_loss"])))
                    elif row["kind"] == "epoch":
                        epochs.append({k: float(v) for k, v in row.items() if k != "kind" and v})
                except (KeyError, TypeError, ValueError):
                    continue
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return steps, epochs


def _stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class RunStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        # path -> (file stamps, RunInfo): listing again re-reads only folders whose files changed
        self._cache: dict[Path, tuple[tuple, RunInfo]] = {}

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.write_bytes(b"x" * 4096)
            probe.unlink()
        except OSError as err:
            raise RunStoreError(f"runs folder {self.root} is not writable: {err.strerror or err}") from None

    def create(self, config: RunConfig) -> RunDir:
        """A new folder that no other run has used, with config.toml and a 'running' summary."""
        self.check_writable()
        stem = f"{datetime.now():%Y%m%d-%H%M%S}-{config.name}"
        for n in range(1, 1000):
            path = self.root / (stem if n == 1 else f"{stem}-{n}")
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise RunStoreError(f"could not create a new run folder under {self.root}")
        run = RunDir(path)
        run.checkpoints.mkdir()
        run.write_config(config)
        run.write_summary(status="running", pid=os.getpid(), started=datetime.now().isoformat(timespec="seconds"))
        return run

    def info(self, path: Path) -> RunInfo:
        stamps = (_stamp(path / "config.toml"), _stamp(path / "summary.json"))
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamps and None not in stamps:
            return cached[1]
        info = self._read_info(path)
        self._cache[path] = (stamps, info)
        return info

    def _read_info(self, path: Path) -> RunInfo:
        problems = []
        try:
            config = tomllib.loads((path / "config.toml").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config, problems = {}, ["config.toml missing or unreadable"]
        try:
            summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
            if not isinstance(summary, dict):
                raise ValueError
        except (OSError, ValueError):
            summary = {}
            problems.append("summary.json missing or unreadable")
        return RunInfo(path, config, summary, problems)

    def list(self) -> list[RunInfo]:
        """Every run folder, newest first (folder names start with the date)."""
        if not self.root.is_dir():
            return []
        folders = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if len(self._cache) > 2 * len(folders) + 100:
            self._cache.clear()  # folders were removed: forget them
        return [self.info(p) for p in sorted(folders, key=lambda p: p.name, reverse=True)]

    def find(self, ref: str) -> RunInfo:
        """A run by path, folder name or unique folder-name prefix."""
        path = Path(ref).expanduser()
        if path.is_dir() and (path / "config.toml").exists():
            return self.info(path)
        matches = [p for p in self.root.glob(f"{ref}*") if p.is_dir()] if self.root.is_dir() else []
        exact = [p for p in matches if p.name == ref]
        if exact or len(matches) == 1:
            return self.info((exact or matches)[0])
        if not matches:
            raise RunStoreError(f"no run {ref!r} in {self.root}")
        raise RunStoreError(f"{ref!r} matches {len(matches)} runs; give more of the name")

