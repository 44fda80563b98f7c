"""events.jsonl: every engine event of a run, one JSON object a line, appended by its writer.

The writer (the run's one process, in-app or background) flushes after every line, so a
reader sees each progress tick and epoch as it happens, and a kill -9 loses at most the
line being written. Readers tolerate that half-written last line (it is read once it is
whole), garbage lines and lines of another version (skipped and counted), and read the
file in pieces as it grows. Text comes back with control characters escaped. A resume appends to the same file: its RunStarted says where
the new segment starts. No torch, no textual.
"""

from __future__ import annotations

import json
import math
import os
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from fmnist_tui.engine import events as ev
from fmnist_tui.files import as_disk_full
from fmnist_tui.format import printable

FILE = "events.jsonl"
KINDS: dict[str, type] = {t.__name__: t for t in typing.get_args(ev.Event)}
MAX_LINE = 1 << 20  # a line longer than this is garbage, however it ends
_HINTS = {name: typing.get_type_hints(kind, vars(ev)) for name, kind in KINDS.items()}


def encode(event: ev.Event) -> str:
    """One line; NaN and infinities as JSON null cannot say which, so as the strings Python reads back."""
    values = {k: _plain(v) for k, v in ev.as_dict(event).items()}
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "nan", "inf", "-inf"
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def decode(line: str | bytes) -> ev.Event | None:
    """The event a line holds, or None when it is not one this version knows, field for field."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("event") not in KINDS:
        return None
    name = data.pop("event")
    kind, hints = KINDS[name], _HINTS[name]
    values = {}
    for f in fields(kind):
        if f.name not in data:
            if f.default is MISSING:
                return None
            continue
        value = _typed(data[f.name], hints[f.name])
        if value is _BAD:
            return None
        values[f.name] = value
    return kind(**values)


_BAD = object()
_NUMBER_WORDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _typed(value, hint):
    """`value` checked against a field's type (int, float, str, Literal, tuples of floats, optionals)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float:
            if isinstance(value, str) and value in _NUMBER_WORDS:
                return _NUMBER_WORDS[value]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        if option is str and isinstance(value, str):
            return printable(value)  # from a file anyone may have written: never an escape code on a screen
        if typing.get_origin(option) is typing.Literal and value in typing.get_args(option):
            return value
        if typing.get_origin(option) is tuple and isinstance(value, list):
            items = [_typed(v, float) for v in value]
            if _BAD not in items:
                return tuple(items)
    return _BAD


class EventLog:
    """The writer's side: a sink that appends each event, then hands it on to `sink`.

    A full disk (or any write error) while training goes on must end the run, as metrics.csv
    does: progress and epoch events raise DiskFull into the training loop. Log lines and the
    run's end never raise (the end must still reach summary.json and the front end).
    """

    RAISE_ON = (ev.StepProgress, ev.EpochEnd, ev.Control, ev.RunStarted)

    def __init__(self, path: Path, sink: ev.Sink):
        self.path, self.sink = path, sink
        self.error: OSError | None = None
        self._file = open(path, "ab")  # noqa: SIM115 - held for the run's life, closed by close()
        if self._file.tell() and not _ends_with_newline(path):
            self._write(b"\n")  # a kill cut the last line: start ours on a line of its own

    def _write(self, data: bytes) -> None:
        try:
            self._file.write(data)
            self._file.flush()
        except OSError as err:
            self.error = as_disk_full(err, self.path)
            raise self.error from None

    def __call__(self, event: ev.Event) -> None:
        if self.error is None:
            try:
                self._write(encode(event).encode("utf-8"))
            except OSError:
                if isinstance(event, self.RAISE_ON):
                    raise
        self.sink(event)

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class EventReader:
    """Reads a growing events.jsonl in pieces: `read()` returns the events of the lines completed
    since the last call. Never raises for what is in the file; a missing file reads as empty."""

    def __init__(self, path: Path, chunk: int = 1 << 20):
        self.path, self.chunk = path, chunk
        self.offset = 0
        self.bad_lines = 0
        self._partial = b""

    def read(self, limit: int | None = None) -> list[ev.Event]:
        """Events from at most `limit` bytes more (default: one chunk), in order."""
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self.offset:  # replaced by a shorter file: start over
                    self.offset, self._partial = 0, b""
                f.seek(self.offset)
                data = f.read(limit or self.chunk)
        except OSError:
            return []
        self.offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # after the last newline: not whole yet
        if len(self._partial) > MAX_LINE:
            self._partial, self.bad_lines = b"", self.bad_lines + 1
        out = []
        for line in lines:
            if not line.strip():
                continue
            event = decode(line) if len(line) <= MAX_LINE else None
            if event is None:
                self.bad_lines += 1
            else:
                out.append(event)
        return out

    def read_all(self) -> list[ev.Event]:
        events, more = [], self.read()
        while more or self.pending():
            events += more
            more = self.read()
        return events

    def pending(self) -> bool:
        """The file holds bytes not read yet."""
        try:
            return os.path.getsize(self.path) > self.offset
        except OSError:
            return False
