"""The run store: one folder per run, the complete record of that run.

    <runs>/<YYYYmmdd-HHMMSS>-<preset>/
        config.toml     the current resolved config, then one [[resume]] table per resume
        summary.json    status and results; every test figure names its weights
        metrics.csv     each step once, one row per epoch, the tests (see metrics.py)
        checkpoints/    last.ckpt (end of the latest epoch, or the stop), best.ckpt
        events.jsonl    the engine's events, one JSON object a line (engine/eventlog.py)
        run.log         the output of a background run's process (background.py)
        note.txt        a person's note on the run (notes.py); <runs>/.trash/ holds deleted runs (trash.py)
        writer.lock     held (flock) by the one process writing the run, for its whole life
        control.sock    its controls while it runs (engine/control.py)

"Is it running?" is "is writer.lock held?", never "is the pid alive?" (pids are reused).
No torch, no textual: the app lists runs without importing either.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import json
import math
import os
import re
import shutil
import socket
import stat
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import tomli_w

from fmnist_tui.config import RunConfig, to_dict
from fmnist_tui.files import DiskFull, write_atomic
from fmnist_tui.format import printable

STATUSES = ("running", "finished", "stopped", "failed", "diverged", "interrupted")
LOCK = "writer.lock"
LOCK_NOTE = ("Held (flock) by the process writing this run, for as long as it runs: released when it ends,\n"
             "even by kill -9. Not a pid file: deleting it does not unlock anything.\n")  # fmt: skip
RESERVE = ".space-reserve"
RESERVE_BYTES = 256 * 1024  # freed on a full disk so that summary.json can still say so


class RunStoreError(RuntimeError):
    """The runs folder cannot be used (missing, unwritable, no such run)."""


class RunLocked(RunStoreError):
    """Another process is writing this run."""


class LockLost(RunStoreError):
    """This process may write the run no more: another holds its (new) writer.lock, or its folder went away."""


def _open_lock(path: Path, write: bool) -> int:
    """The lock file's descriptor: never through a link, never blocking on a FIFO, a plain file only."""
    flags = (os.O_RDWR | os.O_CREAT if write else os.O_RDONLY) | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:  # a hard link would have us write into another file
        os.close(fd)
        raise OSError(errno.EINVAL, "not a plain file of its own", str(path))
    if write and st.st_mode & 0o077:
        os.fchmod(fd, 0o600)  # another user who can open it can hold it (a shared flock) and block every resume
    return fd


def lock_held(folder: Path) -> bool:
    """True while some process holds the run's writer lock (the probe takes a shared lock for an instant)."""
    try:
        fd = _open_lock(folder / LOCK, write=False)
    except OSError:
        return False  # none, not a plain file, or not ours to read: no writer of ours holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@dataclass
class RunInfo:
    path: Path
    config: dict[str, Any]  # as read from config.toml, without its history
    summary: dict[str, Any]
    problems: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)  # config.toml's [[resume]] tables

    @property
    def name(self) -> str:
        return printable(self.path.name)

    @property
    def preset(self) -> str:
        return printable(self.config.get("name", "?"))

    @property
    def status(self) -> str:
        if lock_held(self.path):
            return "running"
        status = self.summary.get("status")
        if self.problems or status not in STATUSES:
            return "incomplete"
        return "interrupted" if status == "running" else status  # it died without writing its end

    @property
    def started(self) -> str:
        return printable(self.summary.get("started", ""))

    def get(self, key: str) -> Any:
        """A summary value as stored (numbers may be anything: check before use)."""
        return self.summary.get(key)

    def text(self, key: str) -> str:
        """A summary value as text that is safe to draw ('' when missing)."""
        value = self.summary.get(key)
        return "" if value is None else printable(value)

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"


class RunDir:
    """A run's folder, as its one writer sees it."""

    def __init__(self, path: Path):
        self.path = path
        self.checkpoints = path / "checkpoints"
        self._lock_file: Any = None
        self._lock_id: tuple[int, int] | None = None
        self.lost = ""  # why this process may write the run no more (another took it over, its folder went)

    # -- one writer ---------------------------------------------------------------------
    def lock(self, wait_s: float = 1.0) -> None:
        """Hold the writer lock until `unlock` or the process ends; RunLocked if another holds it
        for longer than `wait_s` (a reader's probe lasts an instant; a hand-over, a step)."""
        path = self.path / LOCK
        try:
            fd = _open_lock(path, write=True)
        except OSError as err:
            raise RunStoreError(f"{printable(path)} cannot serve as the run's writer lock ({err.strerror or err}): "
                                "it must be a plain file; move it away and try again") from None  # fmt: skip
        for _ in range(max(1, round(wait_s / 0.05))):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.05)
        else:
            holder = os.pread(fd, 300, 0).decode("utf-8", "replace").strip().splitlines()
            os.close(fd)
            raise RunLocked(f"run {printable(self.path.name)} is being written by another process "
                            f"({printable(holder[0]) if holder else 'unknown'}): wait for it to end, or stop it first")  # fmt: skip
        self._hold(fd)

    def _hold(self, fd: int) -> None:
        os.ftruncate(fd, 0)  # who holds it, for a person reading the file; the lock itself is the truth
        who = f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now():%Y-%m-%dT%H:%M:%S}"
        os.pwrite(fd, (f"{who}\n" + LOCK_NOTE).encode(), 0)
        st = os.fstat(fd)
        self._lock_id = (st.st_dev, st.st_ino)
        self._lock_file = os.fdopen(fd, "rb", buffering=0)  # a file object: closed, and unlocked, if dropped

    def check_lock(self) -> None:
        """Still the one writer? A deleted or replaced writer.lock is taken again if nobody holds it;
        LockLost if another process does (this one must then write nothing more)."""
        if self.lost:
            raise LockLost(self.lost)
        if self._lock_file is None:
            return
        if not self.path.is_dir():
            self._lose(f"the run folder {printable(self.path)} was deleted or moved while this process wrote it")
        try:
            st = os.stat(self.path / LOCK, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == self._lock_id:
                return
        except FileNotFoundError:
            pass
        try:
            fd = _open_lock(self.path / LOCK, write=True)
        except OSError:
            fd = None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                fd = None
        if fd is None:
            self._lose(f"another process took over run {printable(self.path.name)} (its writer.lock was "
                       "deleted or replaced while this process wrote it): this process stops writing")  # fmt: skip
        self._lock_file.close()
        self._hold(fd)

    def _lose(self, reason: str) -> NoReturn:
        self.unlock()
        self.lost = reason
        raise LockLost(reason)

    def unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing releases the flock
            self._lock_file = None

    # -- space for the last word --------------------------------------------------------
    def reserve_space(self) -> None:
        """Set space aside for the last summary.json; DiskFull when there is not even that much."""
        try:
            write_atomic(self.path / RESERVE, b"\0" * RESERVE_BYTES)
        except DiskFull:
            raise DiskFull(self.path) from None

    def release_space(self) -> None:
        try:
            (self.path / RESERVE).unlink(missing_ok=True)
        except OSError:
            pass

    # -- the record -----------------------------------------------------------------------
    def write_config(self, config: RunConfig, history: list[dict[str, Any]] | None = None) -> None:
        values: dict[str, Any] = to_dict(config)
        if history:
            values["resume"] = history
        write_atomic(self.path / "config.toml", tomli_w.dumps(values))

    def read_summary(self) -> dict[str, Any]:
        try:
            summary = json.loads((self.path / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return summary if isinstance(summary, dict) else {}

    def write_summary(self, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into summary.json; a field given as None (or NaN, or infinite) is removed."""
        summary = {**self.read_summary(), **fields}
        summary = {
            k: v for k, v in summary.items() if v is not None and not (isinstance(v, float) and not math.isfinite(v))
        }
        write_atomic(self.path / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return summary


def folder_safe(text: str, most: int = 120) -> str:
    """`text` as part of a folder name: letters, digits and _ . = + - only, the rest as -."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", text).strip("-.")[:most]


def read_config(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """config.toml as (config values, resume history); OSError or ValueError if unreadable."""
    values = tomllib.loads((path / "config.toml").read_text(encoding="utf-8"))
    history = values.pop("resume", [])
    return values, history if isinstance(history, list) else []


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
            try:
                probe.write_bytes(b"x" * 4096)
            finally:
                probe.unlink(missing_ok=True)
        except OSError as err:
            raise RunStoreError(f"runs folder {self.root} is not writable: {err.strerror or err}") from None

    def create(self, config: RunConfig, tag: str = "", record: dict[str, Any] | None = None) -> RunDir:
        """A new folder that no other run has used, locked, with config.toml and a 'running' summary.
        `tag` ends the folder's name (a sweep's point, "lr=0.01-batch_size=64"); `record` joins the summary."""
        self.check_writable()
        stem = f"{datetime.now():%Y%m%d-%H%M%S}-{config.name}{'-' + folder_safe(tag) if tag else ''}"
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
        try:
            run.write_config(config)  # first: a folder that lists at all says what it is
            run.lock()
            run.reserve_space()
            run.checkpoints.mkdir()
            run.write_summary(**(record or {}), status="running", pid=os.getpid(),
                              started=datetime.now().isoformat(timespec="seconds"))  # fmt: skip
        except (OSError, RunStoreError) as err:
            run.unlock()
            shutil.rmtree(path, ignore_errors=True)  # only what this call made: nothing has trained yet
            if isinstance(err, RunStoreError):
                raise
            raise RunStoreError(f"runs folder {self.root}: {err}") from None
        return run

    def info(self, path: Path) -> RunInfo:
        stamps = (_stamp(path / "config.toml"), _stamp(path / "summary.json"))
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamps and None not in stamps:
            return cached[1]
        info = self._read_info(path)
        self._cache[path] = (stamps, info)
        return info

    def read(self, path: Path) -> RunInfo:
        """The run as its files are now (no cache)."""
        return self._read_info(path)

    def _read_info(self, path: Path) -> RunInfo:
        problems = []
        try:
            config, history = read_config(path)
        except (OSError, ValueError):
            config, history, problems = {}, [], ["config.toml missing or unreadable"]
        try:
            summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
            if not isinstance(summary, dict):
                raise ValueError
        except (OSError, ValueError):
            summary = {}
            problems.append("summary.json missing or unreadable")
        if summary and summary.get("status") not in STATUSES:
            problems.append(f"summary.json: unknown status {printable(summary.get('status'))!r}")
        return RunInfo(path, config, summary, problems, history)

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
        if path.is_dir() and (path / "config.toml").exists() or (os.sep in ref and path.is_dir()):
            return self.info(path)  # a path names its folder, whatever is (not) in it
        pattern = glob.escape(ref) + "*"
        # dot folders are not runs (.trash, .queue), as in list()
        matches = [p for p in self.root.glob(pattern) if p.is_dir() and not p.name.startswith(".")] if ref else []
        exact = [p for p in matches if p.name == ref]
        if exact or len(matches) == 1:
            return self.info((exact or matches)[0])
        if not matches:
            raise RunStoreError(f"no run {printable(ref)!r} in {self.root}")
        raise RunStoreError(f"{printable(ref)!r} matches {len(matches)} runs; give more of the name")
