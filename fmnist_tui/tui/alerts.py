"""The end of a run, told to the person who is not looking: the terminal bell and a desktop
notification (OSC 9, which iTerm2, kitty, WezTerm, Windows Terminal and others show, and
which passes through SSH). Inside tmux an escape sequence reaches the outer terminal only
wrapped in tmux's passthrough (and with `set -g allow-passthrough on`)."""

from __future__ import annotations

import os

from textual.app import App

from fmnist_tui.engine.events import RunEnded
from fmnist_tui.format import pct
from fmnist_tui.tui.state import RunState


def alert_text(state: RunState, end: RunEnded) -> str:
    name = state.config.name if state.config else os.path.basename(end.run_dir) or "run"
    if end.status == "finished":
        return f"fmnist-tui: {name} finished, test acc {pct(end.test_acc)}"
    return f"fmnist-tui: {name} {end.status}"


def osc9(text: str, tmux: bool) -> str:
    # Only printable characters inside the sequence: a control character would end it early.
    safe = "".join(c for c in text if c.isprintable())[:200]
    sequence = f"\x1b]9;{safe}\x07"
    if tmux:
        return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return sequence


def send_alert(app: App, text: str) -> None:
    app.bell()
    driver = app._driver
    if driver is not None and not app.is_headless:
        driver.write(osc9(text, tmux=bool(os.environ.get("TMUX"))))
