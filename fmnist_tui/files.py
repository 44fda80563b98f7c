"""Writing files a reader may open at any moment: atomically, and saying so when the disk is full.

The one place that writes summary.json, config.toml, checkpoints and rewritten metrics.
No torch, no textual.
"""

from __future__ import annotations

import errno
import glob
import os
import tempfile
from pathlib import Path

FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(OSError):
    """No space (or quota) left: one line naming the file, never a traceback."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(errno.ENOSPC, "No space left on device", str(path))

    def __str__(self) -> str:
        return f"disk full: no space left to write {self.filename}"


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in FULL


def as_disk_full(err: OSError, path: str | os.PathLike) -> OSError:
    """ENOSPC/EDQUOT become DiskFull naming `path`; any other error is returned as it is."""
    return DiskFull(path) if err.errno in FULL and not isinstance(err, DiskFull) else err


def free_name(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`...: the first name nothing has yet (files set aside never overwrite each other)."""
    candidate, n = path, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def leftovers(path: Path) -> list[Path]:
    """The temporary files `write_atomic(path, ...)` leaves when killed mid-write (its writer's to remove)."""
    return list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def write_atomic(path: Path, data: str | bytes) -> None:
    """Temporary file in the same folder, fsync, rename: a reader never sees half a file.

    On any failure the temporary file is removed and the previous file stays as it was.
    The temporary name is new each time (whatever sits at an old one is never written through).
    """
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise as_disk_full(err, path) from None
    tmp = Path(name)
    try:
        with open(fd, "wb") as f:
            os.fchmod(fd, 0o644)  # as a plain open() would make it (mkstemp's 0600 would hide runs from the group)
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if is_disk_full(err) and not isinstance(err, DiskFull):
            raise DiskFull(path) from None
        raise
