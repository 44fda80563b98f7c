"""The footer, made to fit below 80 columns: no command-palette key there (ctrl+p still opens it).

Screens list their main action first and Quit next, so those are the keys that stay in
view when the footer is cut (the app's f2/f3/f4 come after them).
"""

from __future__ import annotations

from textual import events
from textual.widgets import Footer

NARROW = 80


class AppFooter(Footer):
    def on_resize(self, event: events.Resize) -> None:
        wide = self.app.size.width >= NARROW
        if self.show_command_palette != wide:
            self.show_command_palette = wide
            self.refresh(recompose=True)
