"""What every screen of the app shares: the app, typed, and the requests a screen makes of it.

Screens read the app's state through `self.fmnist` (Textual types `self.app` as any App)
and ask it to act by posting a message, which bubbles from the screen to the app; the
app alone starts and stops runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual.message import Message
from textual.screen import Screen

from fmnist_tui.config import RunConfig

if TYPE_CHECKING:
    from fmnist_tui.tui.app import FmnistApp


class StartRun(Message):
    """Start this config (the app refuses while a run is in progress, and says so); `background`:
    in a process of its own, which the live view attaches to."""

    def __init__(self, config: RunConfig, background: bool = False) -> None:
        super().__init__()
        self.config, self.background = config, background


class QueueRun(Message):
    """Add this config to the runs folder's queue (its scheduler starts it when a slot is free)."""

    def __init__(self, config: RunConfig) -> None:
        super().__init__()
        self.config = config


class StopRun(Message):
    """Stop the run in progress within a step; its checkpoint is kept."""


class ControlRun(Message):
    """A control for the run shown, in-app or attached: stop, stop-after-epoch, checkpoint, lr."""

    def __init__(self, action: str, value: float | None = None) -> None:
        super().__init__()
        self.action, self.value = action, value


class AttachRun(Message):
    """Show the run in this folder live (or its record, when it has ended)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class Detach(Message):
    """Stop following the attached run (it goes on in its own process)."""


class AppScreen(Screen):
    @property
    def fmnist(self) -> FmnistApp:
        return cast("FmnistApp", self.app)
