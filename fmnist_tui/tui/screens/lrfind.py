"""The lr finder on the form's config: Lightning's search in a worker thread, loss against lr, and
a key that puts the suggestion into the form (the screen is dismissed with it).

The search reports through messages (never a reactive set from the thread). Escape sets the
stop event, which the finder's training step checks: the thread ends within a step, and
nothing it posts afterwards reaches a screen that is gone.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header, Static
from textual_plotext import PlotextPlot

from fmnist_tui.config import ConfigError, RunConfig
from fmnist_tui.format import failure_text
from fmnist_tui.lrplot import draw, lr_text
from fmnist_tui.tui.widgets.footer import AppFooter

if TYPE_CHECKING:
    from fmnist_tui.engine.lrfind import LrFind


class LrProgress(Message):
    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done, self.total = done, total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LrProgress)  # a newer count supersedes one not yet shown


class LrFound(Message):
    def __init__(self, result: LrFind) -> None:
        super().__init__()
        self.result = result


class LrFailed(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class LrFindScreen(Screen[float | None]):
    """Dismissed with the suggestion (rounded as written) when it is used, else None."""

    SUB_TITLE = "lr finder"
    DEFAULT_CSS = """
    LrFindScreen #lr-body { height: 1fr; padding: 0 1; }
    LrFindScreen #lr-what { color: $text-muted; }
    LrFindScreen #lr-status { height: auto; margin: 0 0 1 0; }
    LrFindScreen #lr-status.-bad { color: $error; }
    LrFindScreen #lr-plot { height: 1fr; }
    """
    BINDINGS = [
        Binding("enter", "use", "Use lr", tooltip="Put the suggested lr into the form's lr field", priority=True),
        Binding("escape", "cancel", "Cancel", priority=True),
    ]

    def __init__(self, config: RunConfig, data_dir: str | None = None, result: LrFind | None = None) -> None:
        super().__init__()
        self.config, self.data_dir = config, data_dir
        self.stop = threading.Event()
        self.result: LrFind | None = None
        self.given = result  # a result to show instead of searching (the snapshot test)

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="lr-body"):
            c = self.config
            yield Static(f"{c.name} · {c.model} · {c.optimizer} · batch {c.batch_size} · {c.dataset}: "
                         "Lightning's lr_find, one optimiser step per lr", id="lr-what", markup=False)  # fmt: skip
            yield Static("finding the lr… loading the data", id="lr-status", markup=False)
            yield PlotextPlot(id="lr-plot")
        yield AppFooter()

    def on_mount(self) -> None:
        self.query_one("#lr-plot").display = False
        if self.given is not None:
            self.post_message(LrFound(self.given))
        else:
            self.search(max(1, (os.cpu_count() or 2) - 1))  # a core left to the UI, as for a run

    def on_unmount(self) -> None:
        self.stop.set()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "use":
            return True if self.result is not None and self.result.rounded is not None else None
        return True

    # -- the search (worker thread) -------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="lr-find")
    def search(self, cpu_threads: int) -> None:
        from fmnist_tui.engine.events import LogLine
        from fmnist_tui.engine.idx import DataError
        from fmnist_tui.engine.logs import route_logs
        from fmnist_tui.engine.lrfind import Cancelled, LrFindError, find_lr

        problems: list[str] = []

        def sink(event) -> None:  # Lightning's lines off the screen; its warnings kept for a failure
            if isinstance(event, LogLine) and event.level in ("WARNING", "ERROR"):
                problems.append(event.text)

        def progress(done: int, total: int) -> None:
            self.post_message(LrProgress(done, total))

        try:
            with route_logs(sink):
                result = find_lr(self.config, data_dir=self.data_dir, stop=self.stop, progress=progress,
                                 cpu_threads=cpu_threads)  # fmt: skip
        except Cancelled:
            return
        except (DataError, LrFindError, ConfigError) as err:
            self.post_message(LrFailed(str(err)))
        except Exception as err:  # noqa: BLE001 - one line on the screen, never a traceback
            self.post_message(LrFailed(f"the lr finder failed: {failure_text(err)}"))
        else:
            self.post_message(LrFound(result))

    # -- results (UI thread) ----------------------------------------------------------
    def on_lr_progress(self, message: LrProgress) -> None:
        if self.result is None:
            self._status(f"finding the lr… {message.done}/{message.total} steps (escape stops)")

    def on_lr_failed(self, message: LrFailed) -> None:
        self._status(f"✖ {message.text}", bad=True)

    def on_lr_found(self, message: LrFound) -> None:
        result = self.result = message.result
        steps = f"{len(result.lrs)} steps in {result.seconds:.1f} s"
        if result.rounded is None:
            self._status(f"✖ no lr suggested: {result.reason} · {steps}", bad=True)
        else:
            self._status(f"suggested lr {lr_text(result.rounded)} ({result.reason}) · {steps} · "
                         "enter puts it in the form")  # fmt: skip
        plot = self.query_one("#lr-plot", PlotextPlot)
        plot.display = bool(result.lrs)
        self._draw()
        self.refresh_bindings()

    def on_resize(self, event: events.Resize) -> None:
        if self.result is not None:
            self._draw()

    def _draw(self) -> None:
        if self.result is None:
            return
        plot = self.query_one("#lr-plot", PlotextPlot)
        width = plot.size.width or self.size.width
        draw(plot.plt, self.result.lrs, self.result.losses, self.result.rounded, width)
        plot.refresh()

    def _status(self, text: str, bad: bool = False) -> None:
        status = self.query_one("#lr-status", Static)
        status.update(text)
        status.set_class(bad, "-bad")

    # -- keys ---------------------------------------------------------------------------
    def action_use(self) -> None:
        if self.result is not None and self.result.rounded is not None:
            self.dismiss(self.result.rounded)

    def action_cancel(self) -> None:
        self.stop.set()
        self.dismiss(None)
