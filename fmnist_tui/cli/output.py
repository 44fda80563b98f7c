"""Writing to the terminal or a pipe: one-line errors, JSON, and never dying of a closed stdout."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from fmnist_tui.format import printable

EXIT_BAD_INPUT = 2


def error(message: str) -> int:
    """`fmnist-tui: error: ...` on stderr (control characters escaped); returns the bad-input exit code."""
    try:
        print(f"fmnist-tui: error: {printable(message)}", file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass  # stderr is closed: the exit code still says it
    return EXIT_BAD_INPUT


def print_json(value: Any) -> None:
    """One JSON document on stdout (non-finite numbers, which JSON cannot hold, as null)."""
    print(json.dumps(finite(value), indent=2, ensure_ascii=False))


def finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def silence_stdout() -> None:
    """Point stdout at /dev/null, so Python's flush at exit does not fail on a closed pipe again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
