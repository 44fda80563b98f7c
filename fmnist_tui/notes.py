"""A person's note on a run: `note.txt` in its folder, one short text, written atomically.

Its own file, so that writing a note never races the run's writer (which owns summary.json).
No torch, no textual.
"""

from __future__ import annotations

import os
from pathlib import Path

from fmnist_tui.files import write_atomic
from fmnist_tui.format import printable

FILE = "note.txt"
MOST = 500  # characters: a line to find a run again, not a lab book


def read_note(folder: Path) -> str:
    """The note, safe to draw ('' when none, or unreadable); newlines become spaces."""
    try:
        fd = os.open(folder / FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(4 * MOST)  # a FIFO or a huge file must not hang or fill the app
    except OSError:
        return ""
    text = " ".join(data.decode("utf-8", "replace").split())
    return printable(text[:MOST])


def write_note(folder: Path, text: str) -> str:
    """Set the note (an empty one removes the file); returns what was kept. OSError if it cannot be written."""
    text = " ".join(text.split())[:MOST]
    path = folder / FILE
    if not text:
        path.unlink(missing_ok=True)
        return ""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise OSError(f"{printable(path)} is not a plain file: move it away to write a note")
    write_atomic(path, text + "\n")
    return text
