"""Small text formatters shared by the app and the CLI (imports neither torch nor textual)."""

from __future__ import annotations

import math
import re
from typing import Any

# Control and bidirectional-override characters: on a terminal they move the cursor, clear
# the screen or reorder text. Anything read from a file is shown with them escaped.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(value: Any) -> str:
    """Text from a file or an exception, safe to draw: '\\x1b[2J' stays those six characters."""
    text = value if isinstance(value, str) else str(value)
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _number(value) -> bool:
    """A finite int or float; summary.json values may be anything."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pct(value: float | None) -> str:
    """0.8731 -> '87.31%'; missing, NaN or not a number -> '-'."""
    if not _number(value):
        return "-"
    return f"{100 * value:.2f}%"


def num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"


def sci(value: float | None) -> str:
    """Learning rates: 0.003 -> '3.00e-03'."""
    return "-" if value is None else f"{value:.2e}"


def clock(seconds: float | None) -> str:
    """42 -> '0:42', 3725 -> '1:02:05'."""
    if not _number(seconds) or seconds < 0:
        return "-"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def rate(per_s: float | None) -> str:
    if per_s is None or not math.isfinite(per_s):
        return "-"
    return f"{per_s:,.0f} img/s"


def date(iso: str) -> str:
    """'2026-11-27T15:40:30' -> '2026-11-27 15:40'."""
    return iso.replace("T", " ")[:16] if iso else "-"


def secs(seconds: float | None) -> str:
    """Short durations: 0.23 -> '0.2s', 42 -> '42s', 125 -> '2:05'."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    return f"{seconds:.0f}s" if seconds < 60 else clock(seconds)
