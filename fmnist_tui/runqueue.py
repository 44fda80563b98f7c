"""The queue of runs waiting for a device, kept in the runs folder. No torch, no textual.

    <runs>/.queue/
        entries.jsonl    one entry a line, rewritten atomically under `lock`
        lock             flock held for each read-modify-write: two terminals adding at once lose nothing
        next-id          the next entry's number (ids are never reused, so `rm 7` from an old listing
                         cannot remove a newer entry)
        rejected.jsonl   lines that were not entries, set aside (never dropped) the next time it is written
        launch-N.lock    held by entry N's background process for its whole life (scheduler.py)
        scheduler.lock   held by the one scheduler of this runs folder
        scheduler.log    what the scheduler did

An entry is queued, then starting (a process is on its way), then running (its run has a
folder), then ended: done, failed, stopped or interrupted, as its run ended.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from fmnist_tui.config import ConfigError, make_config
from fmnist_tui.files import write_atomic
from fmnist_tui.format import printable

FOLDER = ".queue"
ACTIVE = ("starting", "running")
ENDED = ("done", "failed", "stopped", "interrupted")
STATES = ("queued", *ACTIVE, *ENDED)
FROM_STATUS = {"finished": "done", "failed": "failed", "diverged": "failed", "stopped": "stopped",
               "interrupted": "interrupted"}  # fmt: skip


class QueueError(RuntimeError):
    """The queue cannot be used or changed as asked: one line."""


@dataclass
class Entry:
    id: int
    config: dict[str, Any]  # validated when added, validated again when started
    added: str = ""
    label: str = ""  # a sweep's point, e.g. "lr=0.01 batch_size=64"; it ends the run folder's name
    sweep: str = ""  # the sweep it belongs to
    state: str = "queued"
    run: str | None = None  # the run folder's name, once it has one
    status: str | None = None  # how the run ended (summary.json), once it has
    error: str | None = None
    devices: list[int] | None = None  # the GPUs it was given (CUDA_VISIBLE_DEVICES)
    started: str | None = None
    ended: str | None = None
    launch: str = ""  # the token of the process last sent to start it: only that one may run it
    command: str = ""  # what queued it (`fmnist-tui sweep ...`, the app): the run's card says "started by" that

    @property
    def preset(self) -> str:
        return printable(self.config.get("name", "?"))

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @staticmethod
    def parse(line: str) -> Entry:
        """The entry a line holds; ValueError saying why it is not one."""
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in fields(Entry)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fields {', '.join(sorted(map(printable, unknown)))}")
        entry = Entry(**data)
        if not isinstance(entry.id, int) or isinstance(entry.id, bool) or entry.id < 1:
            raise ValueError("id is not a positive whole number")
        if entry.state not in STATES:
            raise ValueError(f"unknown state {printable(entry.state)!r}")
        if not isinstance(entry.config, dict):
            raise ValueError("config is not a table")
        for name in ("added", "label", "sweep", "launch"):
            if not isinstance(getattr(entry, name), str):
                raise ValueError(f"{name} is not text")
        for name in ("run", "status", "error", "started", "ended"):
            if not isinstance(getattr(entry, name), str | None):
                raise ValueError(f"{name} is not text")
        if entry.devices is not None and not (
            isinstance(entry.devices, list) and all(type(d) is int and d >= 0 for d in entry.devices)
        ):
            raise ValueError("devices is not a list of GPU numbers")
        return entry


@dataclass
class Loaded:
    entries: list[Entry]
    problems: list[str] = field(default_factory=list)  # "line 3: not JSON", for the listing to report
    rejected: list[str] = field(default_factory=list)  # the raw lines, set aside at the next write


class Queue:
    """The queue of one runs folder. Every change is one locked read-modify-write."""

    def __init__(self, runs_root: Path):
        self.root = Path(runs_root) / FOLDER
        self.file = self.root / "entries.jsonl"

    def launch_lock(self, entry_id: int) -> Path:
        return self.root / f"launch-{entry_id}.lock"

    # -- reading ------------------------------------------------------------------
    def load(self) -> Loaded:
        """Every entry that parses; the other lines are reported, not lost."""
        try:
            raw = read_plain(self.file)
        except FileNotFoundError:
            return Loaded([])
        except OSError as err:
            raise QueueError(f"the queue {self.file} cannot be read ({err.strerror or err}): move it away") from None
        loaded, seen = Loaded([]), set()
        for number, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                entry = Entry.parse(line.decode("utf-8"))
                if entry.id in seen:
                    raise ValueError(f"a second entry {entry.id}")
            except (ValueError, TypeError, UnicodeDecodeError) as err:
                loaded.problems.append(f"{self.file} line {number} is not a queue entry ({printable(err)[:120]})")
                loaded.rejected.append(line.decode("utf-8", "replace"))
                continue
            seen.add(entry.id)
            loaded.entries.append(entry)
        return loaded

    # -- changing -----------------------------------------------------------------
    @contextmanager
    def edit(self) -> Iterator[Loaded]:
        """Hold the queue's lock, yield its entries; whatever the caller changed is written on exit."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise QueueError(f"the queue in {self.root} cannot be written ({err.strerror or err})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            loaded = self.load()
            before = [asdict(e) for e in loaded.entries]
            yield loaded
            if [asdict(e) for e in loaded.entries] != before or loaded.rejected:
                try:
                    self._write(loaded)
                except OSError as err:  # a full disk, entries.jsonl made a folder: the queue stays as it was
                    raise QueueError(f"the queue {self.file} cannot be written ({err}): nothing was changed") from None
        finally:
            os.close(fd)  # releases the lock

    def _write(self, loaded: Loaded) -> None:
        if loaded.rejected:  # set aside first: a line that is no entry is never lost
            with open(self.root / "rejected.jsonl", "a", encoding="utf-8") as out:
                out.write("".join(line + "\n" for line in loaded.rejected))
            loaded.rejected = []
        text = "".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in loaded.entries)
        write_atomic(self.file, text)

    def _next_id(self, loaded: Loaded) -> int:
        try:
            stored = int(read_plain(self.root / "next-id").decode().strip())
        except (OSError, ValueError):
            stored = 1
        return max([stored, *(e.id + 1 for e in loaded.entries)])

    def add(self, configs: list[tuple[dict[str, Any], str]], sweep: str = "", command: str = "") -> list[Entry]:
        """Queue (config, label) pairs, in order, all or none; each config is validated first."""
        for values, label in configs:
            try:
                make_config(values)
            except ConfigError as err:
                raise QueueError(f"{label or 'the config'}: {err}") from None
        now = datetime.now().isoformat(timespec="seconds")
        with self.edit() as loaded:
            first = self._next_id(loaded)
            new = [
                Entry(first + i, values, now, label, sweep, command=command)
                for i, (values, label) in enumerate(configs)
            ]
            try:
                write_atomic(self.root / "next-id", f"{first + len(new)}\n")  # before the entries: ids never repeat
            except OSError as err:
                raise QueueError(f"the queue in {self.root} cannot be written ({err}): nothing was queued") from None
            loaded.entries.extend(new)
        return new

    def remove(self, entry_id: int) -> Entry:
        with self.edit() as loaded:
            entry = next((e for e in loaded.entries if e.id == entry_id), None)
            if entry is None:
                raise QueueError(f"no queue entry {entry_id} (fmnist-tui queue lists them)")
            if entry.state != "queued":
                what = f"run {entry.run}" if entry.run else "its run"
                raise QueueError(f"entry {entry_id} is {entry.state}, not queued: only queued entries can be "
                                 f"removed{' (stop ' + what + ' with fmnist-tui control)' if entry.active else ''}")  # fmt: skip
            loaded.entries.remove(entry)
        return entry

    def clear(self, ended: bool = False) -> list[Entry]:
        """Remove every queued entry (with `ended`, every ended one instead)."""
        wanted = ENDED if ended else ("queued",)
        with self.edit() as loaded:
            gone = [e for e in loaded.entries if e.state in wanted]
            loaded.entries = [e for e in loaded.entries if e.state not in wanted]
        for entry in gone if ended else []:
            self.launch_lock(entry.id).unlink(missing_ok=True)
        return gone

    def claim(self, entry_id: int, token: str) -> str | None:
        """A process about to run entry `entry_id`: None if it is the one sent to (still starting),
        else why not (a process that was too slow, whose entry was started again by another)."""
        with self.edit() as loaded:
            entry = next((e for e in loaded.entries if e.id == entry_id), None)
            if entry is None:
                return f"queue entry {entry_id} was removed"
            if entry.state != "starting" or entry.launch != token:
                return f"queue entry {entry_id} is {entry.state} in another process's hands"
        return None

    def update(self, entry_id: int, **changes: Any) -> Entry | None:
        """Change one entry (None if it is gone: removed while its change was on its way)."""
        with self.edit() as loaded:
            for entry in loaded.entries:
                if entry.id == entry_id:
                    for key, value in changes.items():
                        setattr(entry, key, value)
                    return entry
        return None


def now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def read_plain(path: Path) -> bytes:
    """A plain file's bytes; OSError for anything else (a FIFO would block the reader for ever)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a plain file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)
