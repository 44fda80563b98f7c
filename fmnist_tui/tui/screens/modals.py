"""Small dialogs: confirm a question, quit with a run in progress, set the lr, name a new preset, a run's note."""

from __future__ import annotations

import math
import re

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from fmnist_tui import paths

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-text", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error", compact=True)
                yield Button(f"{self.no} (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # the safe answer is the default

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class QuitRunScreen(ModalScreen[str | None]):
    """Quitting with a run in progress: stop it, keep it going in a background process, or not quit."""

    BINDINGS = [
        Binding("s", "answer('stop')", "Stop"),
        Binding("b", "answer('background')", "Background"),
        Binding("escape,n", "answer(None)", "Cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("A run is in progress. Quit and…", classes="dialog-text", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("stop the run (s)", id="stop", variant="error", compact=True)
                yield Button("keep it running in the background (b)", id="background", variant="success",
                             compact=True)  # fmt: skip
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # the safe answer is the default

    def on_resize(self, event: events.Resize) -> None:
        narrow = event.size.width < 60  # the buttons stack there: each label must fit on its own
        self.query_one("#stop", Button).label = "stop (s)" if narrow else "stop the run (s)"
        self.query_one("#background", Button).label = (
            "go on in background (b)" if narrow else "keep it running in the background (b)"
        )

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)


class LrScreen(ModalScreen[float | None]):
    """Asks for the learning rate to train with from the next step on."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: float | None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            now = f" (now {self.current:.4g})" if self.current else ""
            yield Static(f"Learning rate from the next step on{now}.\nA one-cycle or cosine schedule is scaled "
                         "to go on from it.", classes="dialog-text", markup=False)  # fmt: skip
            yield Input(f"{self.current:.4g}" if self.current else "", id="lr-value", placeholder="e.g. 0.001")
            yield Static("", id="lr-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Set (enter)", id="ok", variant="success", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def _value(self) -> float | None:
        try:
            value = float(self.query_one(Input).value.strip())
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and value > 0
        self.query_one("#lr-error", Static).update("" if ok else "✖ a number above 0, e.g. 0.001")
        return value if ok else None

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        value = self._value()
        if value is not None:
            self.dismiss(value)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def name_problem(name: str, taken: set[str]) -> str | None:
    if not name:
        return "enter a name"
    if len(name) > 64 or not NAME_RE.match(name):
        return "letters, digits, _ . - only (64 at most), starting with a letter or digit"
    if name in taken or (paths.user_presets_dir() / f"{name}.toml").exists():
        return f"a preset named {name!r} already exists; choose another name"
    return None


class PresetNameScreen(ModalScreen[str | None]):
    """Asks for the new preset's name; refuses a name already used."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str, taken: set[str]) -> None:
        super().__init__()
        self.current, self.taken = current, taken

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            # Static wraps a long folder name inside the dialog; a Label would run past its edge.
            yield Static(f"Save as a new preset in\n{paths.user_presets_dir()}", classes="dialog-text", markup=False)
            yield Input(self._suggestion(), id="preset-name", placeholder="preset name")
            yield Static("", id="name-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (enter)", id="ok", variant="success", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def _suggestion(self) -> str:
        name, n = self.current, 2
        while name_problem(name, self.taken):
            name, n = f"{self.current}-{n}", n + 1
            if n > 999:
                return ""
        return name

    def on_mount(self) -> None:
        self._check()

    @on(Input.Changed)
    def _check(self) -> bool:
        problem = name_problem(self.query_one(Input).value.strip(), self.taken)
        self.query_one("#name-error", Static).update(f"✖ {problem}" if problem else "")
        self.query_one("#ok", Button).disabled = problem is not None
        return problem is None

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        if self._check():
            self.dismiss(self.query_one(Input).value.strip())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class NoteScreen(ModalScreen[str | None]):
    """Asks for a run's note (empty removes it)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run: str, current: str) -> None:
        super().__init__()
        self.run, self.current = run, current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"A note on {self.run} (shown in the runs list, found by its filter):",
                         classes="dialog-text", markup=False)  # fmt: skip
            yield Input(self.current, id="note-text", placeholder="e.g. baseline for the lr sweep", max_length=500)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (enter)", id="ok", variant="success", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss(self.query_one(Input).value)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
