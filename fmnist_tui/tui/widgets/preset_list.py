"""The presets, each with its description; load problems listed below, never fatal."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from fmnist_tui.presets import PresetSet


class PresetList(Vertical):
    def compose(self) -> ComposeResult:
        yield Label("Presets", classes="pane-title")
        yield OptionList(id="preset-options")
        with VerticalScroll(id="preset-errors-box"):  # focusable: tab to it, scroll with the arrows
            yield Static("", id="preset-errors", markup=False)

    def show(self, presets: PresetSet, selected: str | None = None) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        for name, preset in presets.presets.items():
            prompt = Text(name, style="bold")
            if preset.config.for_gpu:
                prompt.append("  GPU preset", style="italic")  # words, not only a colour (NO_COLOR)
            if preset.config.description:
                prompt.append(f"\n{preset.config.description}", style="dim")
            options.add_option(Option(prompt, id=name))
        if selected in presets.presets:
            options.highlighted = options.get_option_index(selected)
        errors = self.query_one("#preset-errors", Static)
        count = len(presets.errors)
        text = f"⚠ {count} preset file{'s' if count > 1 else ''} not loaded:\n" + error_lines(presets.errors)
        errors.update(text if count else "")
        self.query_one("#preset-errors-box").display = bool(count)


def error_lines(errors: list[str]) -> str:
    """'/long/folder/x.toml: problem' lines grouped under their folder: the pane is 26 columns wide."""
    lines: list[str] = []
    folder: Path | None = None
    for error in errors:
        path, sep, problem = error.partition(".toml: ")
        if not sep:
            lines.append(error)
            folder = None
            continue
        file = Path(f"{path}.toml")
        if file.parent != folder:
            lines.append(f"{file.parent}{os.sep}")
            folder = file.parent
        lines.append(f"• {file.name}: {problem}")
    return "\n".join(lines)
