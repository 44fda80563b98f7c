"""Deleting a run moves its folder to `<runs>/.trash/` (the listing skips dot folders): a slip of
the finger is undone with `mv`, never `rm -rf`. No torch, no textual."""

from __future__ import annotations

import os
from pathlib import Path

from fmnist_tui.files import free_name
from fmnist_tui.format import printable
from fmnist_tui.runs import RunDir, RunLocked, RunStoreError

FOLDER = ".trash"


def move_to_trash(root: Path, folder: Path) -> Path:
    """Move the run `folder` (a folder of `root`) into root/.trash; returns where it went.

    The run's writer lock is held for the move, so no run can start or resume into it meanwhile.
    RunStoreError (one line) when it runs, or the move fails."""
    if folder.parent.resolve() != root.resolve() or folder.name.startswith("."):
        raise RunStoreError(f"{printable(folder)} is not a run of {printable(root)}")
    if not folder.is_dir():
        raise RunStoreError(f"run {printable(folder.name)} is no longer in {printable(root)} (deleted already?)")
    run = RunDir(folder)
    try:
        run.lock(wait_s=0.2)
    except RunLocked:
        raise RunStoreError(f"run {printable(folder.name)} is in use (running, or being evaluated or exported): "
                            "delete it once that has ended") from None  # fmt: skip
    except OSError as err:  # writer.lock cannot be written: a full disk, a read-only folder
        raise RunStoreError(f"cannot delete {printable(folder.name)}: its writer lock cannot be taken "
                            f"({err.strerror or err})") from None  # fmt: skip
    try:
        trash = root / FOLDER
        if trash.is_symlink() or (trash.exists() and not trash.is_dir()):
            raise RunStoreError(f"{printable(trash)} is not a folder: move it away to delete runs")
        trash.mkdir(exist_ok=True)
        target = free_name(trash / folder.name)
        os.rename(folder, target)  # same filesystem: one step, the folder is whole here or there
    except OSError as err:
        raise RunStoreError(f"cannot move {printable(folder.name)} to {printable(root / FOLDER)}: "
                            f"{err.strerror or err}") from None  # fmt: skip
    finally:
        run.unlock()
    return target
