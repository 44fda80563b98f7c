"""Writing to the terminal or a pipe: one-line errors, JSON, and never dying of a closed stdout."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
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
    print(json.dumps(finite(value), indent=2, ensure_ascii=False, default=str))  # TOML dates as text


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


def warn(message: str) -> None:
    """`warning: ...` on stderr (control characters escaped); never raises."""
    try:
        print(f"warning: {printable(message)}", file=sys.stderr)
    except (OSError, ValueError, AttributeError):
        pass


@contextmanager
def engine_warnings():
    """Lightning's chatter off the terminal; the engine's warnings and errors as `warning:` lines
    (for commands that run a Trainer briefly: eval, export)."""
    import pytorch_lightning  # noqa: F401 - its import attaches stderr handlers that route_logs replaces

    from fmnist_tui.engine.events import LogLine
    from fmnist_tui.engine.logs import route_logs

    def sink(event) -> None:
        if isinstance(event, LogLine) and event.level in ("WARNING", "ERROR"):
            warn(event.text)

    with route_logs(sink):
        yield


def preset_config(presets_dirs, name: str, overrides: dict[str, Any]):
    """The preset `name` with the --set values on it; the preset files that did not load are warned of.
    An unknown preset or a bad value: ConfigError (exit 2), before torch loads."""
    from fmnist_tui.config import with_overrides
    from fmnist_tui.presets import load_presets

    found = load_presets(presets_dirs)
    for problem in found.errors:
        warn(problem)
    return with_overrides(found.get(name), overrides)
