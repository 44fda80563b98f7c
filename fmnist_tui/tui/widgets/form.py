"""The run-configuration form: one row per RunConfig field, validated as it is typed."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Select, Static

from fmnist_tui.config import RunConfig, check, is_utf8, not_applicable
from fmnist_tui.tui.fields import FieldSpec, from_text, sections, to_text


def displayable(text: str) -> str:
    """Lone surrogates (bytes that were not UTF-8) as U+FFFD: one cell each, and writable to the terminal."""
    return text if is_utf8(text) else "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


class TextField(Input):
    """An Input that keeps bytes that were not UTF-8 (so the form can say so) but draws them as \ufffd."""

    @property
    def _value(self) -> Text:
        text = super()._value
        if not is_utf8(text.plain):
            text = Text(displayable(text.plain), no_wrap=True, overflow="ignore", end="")
        return text

    async def _on_key(self, event: events.Key) -> None:
        # Textual calls Input._on_key after this one (handlers run along the MRO) unless the
        # default is prevented. A lone surrogate is not printable, so Input would drop it unseen.
        character = event.character
        if character and not is_utf8(character):
            event.stop()
            event.prevent_default()
            self.insert_text_at_cursor(character)


class FieldRow(Vertical):
    """Label and control on one line, the help text below, the error (if any) under that."""

    def __init__(self, field: FieldSpec, placeholder: str = "") -> None:
        super().__init__(id=f"row-{field.key}", classes="field-row")
        self.field = field
        self.placeholder = placeholder
        self._reason: str | None = None

    def compose(self) -> ComposeResult:
        f = self.field
        with Horizontal(classes="field-line"):
            yield Label(f.key, classes="field-label")
            if f.kind == "choice":
                options = [(c, c) for c in f.choices]
                # allow_blank: a value from a preset or --set that no option matches shows as blank
                # (with the error below), and choosing any option then counts as a change.
                yield Select(options, value=to_text(f.default), prompt="choose…", compact=True, id=f"field-{f.key}")
            elif f.kind == "bool":
                yield Checkbox("yes" if f.default else "no", value=bool(f.default), compact=True, id=f"field-{f.key}")
            else:
                yield TextField(to_text(f.default), placeholder=self.placeholder, compact=True, id=f"field-{f.key}")
        yield Static(f.help, classes="field-help", markup=False)
        yield Static("", classes="field-unused", markup=False)
        yield Static("", classes="field-error", markup=False)

    def set_error(self, message: str | None) -> None:
        self.set_class(bool(message), "-invalid")
        self.query_one(".field-error", Static).update(f"✖ {message}" if message else "")

    def set_unused(self, reason: str | None) -> None:
        """Greyed out, with why, while other values leave this option unused (config.APPLIES_WHEN)."""
        if reason == self._reason:
            return
        self._reason = reason
        self.set_class(bool(reason), "-unused")
        self.query_one(f"#field-{self.field.key}").disabled = bool(reason)
        self.query_one(".field-unused", Static).update(f"not used: {reason}" if reason else "")


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
        self.unknown: dict[str, Any] = {}  # values set that no option or checkbox can show, until changed

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
                out[key] = self.unknown.get(key, widget.value)
            elif isinstance(widget, Select):
                blank = widget.value is Select.NULL
                out[key] = self.unknown.get(key) if blank else widget.value
            else:
                out[key] = from_text(field, widget.value)
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        """Fill the form (unknown keys ignored, missing keys get their defaults)."""
        for key, field in self.specs.items():
            value = values.get(key, field.default)
            widget = self.control(key)
            if isinstance(widget, Checkbox):
                if isinstance(value, bool):
                    self.unknown.pop(key, None)
                    widget.value = value
                else:  # e.g. --set normalize=5: reported until the box is toggled
                    self.unknown[key] = value
            elif isinstance(widget, Select):
                text = to_text(value)
                if text in field.choices:
                    self.unknown.pop(key, None)
                    widget.value = text
                else:  # validation reports it at the field: "unknown value 'transformer'; allowed: ..."
                    self.unknown[key] = value
                    widget.clear()
            else:
                widget.value = to_text(value)
        self.check()

    def check(self) -> RunConfig | None:
        values = self.values()
        self.config, self.errors = check(values)
        unused = not_applicable(values)
        for key in self.specs:
            row = self.query_one(f"#row-{key}", FieldRow)
            error = self.errors.get(key)
            if error and key in unused:  # a wrong value stays editable, used or not: it is saved with the rest
                error = f"{error} (unused here: {unused[key]}, but it is saved with the rest)"
            row.set_error(error)
            row.set_unused(None if error else unused.get(key))
        self.post_message(self.Validated(self.config, self.errors))
        return self.config

    @on(Input.Changed)
    def _changed(self, event: Message) -> None:
        event.stop()
        self.check()

    @on(Select.Changed)
    def _chosen(self, event: Select.Changed) -> None:
        event.stop()
        # a late Changed from before set_values blanked the select must not clear the error
        if event.value is not Select.NULL and event.value == event.select.value and event.select.id:
            self.unknown.pop(event.select.id.removeprefix("field-"), None)
        self.check()

    @on(Checkbox.Changed)
    def _toggled(self, event: Checkbox.Changed) -> None:
        event.stop()
        if event.checkbox.id:
            self.unknown.pop(event.checkbox.id.removeprefix("field-"), None)
        event.checkbox.label = "yes" if event.value else "no"
        self.check()
