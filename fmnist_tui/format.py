"""Small text formatters shared by the app and the CLI (imports neither torch nor textual)."""

from __future__ import annotations

import math
import re
from typing import Any, TypeGuard

# Control and bidirectional-override characters: on a terminal they move the cursor, clear
# the screen or reorder text. Anything read from a file is shown with them escaped.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(value: Any) -> str:
    """Text from a file or an exception, safe to draw: '\\x1b[2J' stays those six characters."""
    text = value if isinstance(value, str) else str(value)
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def value_text(value: Any) -> str:
    """A config value as text, safe to draw; a string quoted ('mlp'), so that it reads as one."""
    return printable(repr(value) if isinstance(value, str) else value)


def number(value: Any) -> float | None:
    """A value read from a file as a finite float, or None: summary.json may hold anything ("abc", 10**400)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


def _number(value: Any) -> TypeGuard[float]:
    return number(value) is not None


def epoch_number(value: Any) -> int | None:
    """A 0-based epoch from a file, as people count it (from 1); None unless a whole number >= 0."""
    return value + 1 if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9 else None


def pct(value: float | None) -> str:
    """0.8731 -> '87.31%'; missing, NaN or not a number -> '-'."""
    value = number(value)
    return "-" if value is None or not math.isfinite(100 * value) else f"{100 * value:.2f}%"


def num(value: float | None, digits: int = 4) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # a diverged loss says so: inf, nan
    return f"{float(value):.{digits}f}" if _number(value) else "-"


def sci(value: float | None) -> str:
    """Learning rates: 0.003 -> '3.00e-03'."""
    return f"{float(value):.2e}" if _number(value) else "-"


def clock(seconds: float | None) -> str:
    """42 -> '0:42', 3725 -> '1:02:05'."""
    if not _number(seconds) or seconds < 0:
        return "-"
    s = int(round(float(seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def rate(per_s: float | None) -> str:
    return f"{float(per_s):,.0f} img/s" if _number(per_s) else "-"


def date(iso: str) -> str:
    """'2026-11-27T15:40:30' -> '2026-11-27 15:40'."""
    return iso.replace("T", " ")[:16] if isinstance(iso, str) and iso else "-"


def secs(seconds: float | None) -> str:
    """Short durations: 0.23 -> '0.2s', 42 -> '42s', 125 -> '2:05'."""
    if not _number(seconds):
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    return f"{seconds:.0f}s" if seconds < 60 else clock(seconds)


def failure_text(err: BaseException) -> str:
    """An exception in one line a person can read: 'OutOfMemoryError: CUDA out of memory ...'."""
    message = str(err).strip()
    return f"{type(err).__name__}: {message.splitlines()[0]}" if message else type(err).__name__
