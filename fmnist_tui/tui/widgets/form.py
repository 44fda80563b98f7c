"""The run-configuration form: one row per RunConfig field, validated as it is typed."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Select, Static

from fmnist_tui.config import RunConfig
from fmnist_tui.tui.fields import FieldSpec, from_text, sections, to_text, validate


class FieldRow(Vertical):
    """Label and control on one line, the help text below, the error (if any) under that."""

    def __init__(self, field: FieldSpec, placeholder: str = "") -> None:
        super().__init__(id=f"row-{field.key}", classes="field-row")
        self.field = field
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        f = self.field
        with Horizontal(classes="field-line"):
            yield Label(f.key, classes="field-label")
            if f.kind == "choice":
                options = [(c, c) for c in f.choices]
                yield Select(options, value=to_text(f.default), allow_blank=False, compact=True, id=f"field-{f.key}")
            elif f.kind == "bool":
                yield Checkbox("yes" if f.default else "no", value=bool(f.default), compact=True, id=f"field-{f.key}")
            else:
                yield Input(to_text(f.default), placeholder=self.placeholder, compact=True, id=f"field-{f.key}")
        yield Static(f.help, classes="field-help", markup=False)
        yield Static("", classes="field-error", markup=False)

    def set_error(self, message: str | None) -> None:
        self.set_class(bool(message), "-invalid")
        self.query_one(".field-error", Static).update(f"✖ {message}" if message else "")


class ConfigForm(VerticalScroll):
    """Posts `Validated` after every change; `config` is None while any field is wrong."""

    class Validated(Message):
        def __init__(self, config: RunConfig | None, errors: dict[str, str]) -> None:
            super().__init__()
            self.config = config
            self.errors = errors

    def __init__(self, placeholders: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.placeholders = placeholders or {}
        self.specs = {s.key: s for _, group in sections() for s in group}
        self.config: RunConfig | None = None
        self.errors: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        for title, group in sections():
            yield Static(title, classes="form-section")
            for field in group:
                yield FieldRow(field, self.placeholders.get(field.key, ""))

    def on_mount(self) -> None:
        self.check()

    def control(self, key: str) -> Input | Select | Checkbox:
        return self.query_one(f"#field-{key}")  # type: ignore[return-value]

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, field in self.specs.items():
            widget = self.control(key)
            if isinstance(widget, Checkbox):
                out[key] = widget.value
            elif isinstance(widget, Select):
                out[key] = widget.value
            else:
                out[key] = from_text(field, widget.value)
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        """Fill the form (unknown keys ignored, missing keys get their defaults)."""
        for key, field in self.specs.items():
            value = values.get(key, field.default)
            widget = self.control(key)
            if isinstance(widget, Checkbox):
                widget.value = bool(value)
            elif isinstance(widget, Select):
                text = to_text(value)
                if text in field.choices:
                    widget.value = text
            else:
                widget.value = to_text(value)
        self.check()

    def check(self) -> RunConfig | None:
        self.config, self.errors = validate(self.values())
        for key in self.specs:
            self.query_one(f"#row-{key}", FieldRow).set_error(self.errors.get(key))
        self.post_message(self.Validated(self.config, self.errors))
        return self.config

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self, event: Message) -> None:
        event.stop()
        self.check()

    @on(Checkbox.Changed)
    def _toggled(self, event: Checkbox.Changed) -> None:
        event.stop()
        event.checkbox.label = "yes" if event.value else "no"
        self.check()
