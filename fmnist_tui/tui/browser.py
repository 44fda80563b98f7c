"""The app in a browser tab (`fmnist-tui serve`): a closed tab is a hang-up.

textual-serve runs one app process per tab with Textual's web driver, which speaks over
the process's stdin and stdout. When the tab closes, the server sends "quit", and the web
driver would simply exit the app: an in-app run would stop there. When the server dies
(kill -9), stdin ends and the next write fails with EPIPE, which Textual takes as a crash.
Both are what an SSH drop is to the terminal app, so both post TabClosed, and the app
does what it does on SIGHUP: the run goes on in a background process (see tui/outside.py).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from textual.driver import Driver
from textual.drivers.web_driver import WebDriver
from textual.message import Message


class TabClosed(Message):
    """The browser tab is gone (closed, reloaded, or the server stopped)."""


class BrowserDriver(WebDriver):
    """Textual's web driver, with the end of the tab reported to the app instead of quitting it."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._gone = False
        self._write = partial(BrowserDriver._write_or_drop, self)

    def _write_or_drop(self, data: bytes) -> int:
        if self._gone:
            return len(data)
        try:
            return os.write(self.fileno, data)
        except OSError:  # the server is gone: nobody reads the screen any more
            self._closed()
            return len(data)

    def _closed(self) -> None:
        if not self._gone:
            self._gone = True
            self._app.post_message(TabClosed())  # thread-safe; the app decides what a hang-up means

    def on_meta(self, packet_type: str, payload: dict[str, object]) -> None:
        if packet_type == "quit":
            self._closed()
        else:
            super().on_meta(packet_type, payload)

    def run_input_thread(self) -> None:
        super().run_input_thread()
        if not self.exit_event.is_set():  # stdin ended: the server is gone
            self._closed()


def driver_for(driver: type[Driver]) -> type[Driver]:
    """The driver the app runs with: ours in place of Textual's web driver."""
    return BrowserDriver if driver is WebDriver else driver
