"""Two to six runs side by side: their curves overlaid, their figures, and the config keys that
differ. Opened from the runs screen (space marks runs, c compares them)."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static, TabbedContent, TabPane

from fmnist_tui.compare import CELL, CompareError, Side, config_diff, cut, load, no_metrics, table
from fmnist_tui.runs import RunInfo, RunStore
from fmnist_tui.tui.widgets.compare_plot import LOOKS, METRICS, ComparePlot, legend
from fmnist_tui.tui.widgets.footer import AppFooter

REFRESH_S = 5.0  # while one of them runs, its curves grow


class Loaded(Message):
    def __init__(self, sides: list[Side]) -> None:
        super().__init__()
        self.sides = sides


class CompareScreen(Screen):
    TITLE = "fmnist-tui"
    SUB_TITLE = "compare runs"
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        Binding("q", "app.quit", "Quit"),
        Binding("r", "reload", "Refresh"),
    ]
    DEFAULT_CSS = """
    #compare-legend { height: auto; max-height: 3; padding: 0 1; }  /* 6 runs in 3 lines at 80 columns */
    #compare-tabs { height: 1fr; }
    #compare-tables DataTable { height: auto; max-height: 100%; }
    #compare-diff-title { padding: 1 1 0 1; color: $text-muted; }
    """

    def __init__(self, runs: list[RunInfo]) -> None:
        super().__init__()
        self.runs = runs
        self.sides: list[Side] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading the runs' metrics…", id="compare-legend")
        with TabbedContent(id="compare-tabs"):
            for metric, (title, _) in METRICS.items():
                with TabPane(title.split(" by ")[0].capitalize(), id=f"tab-{metric}"):
                    yield ComparePlot(metric, id=f"plot-{metric}")
            with TabPane("Table", id="tab-table"), VerticalScroll(id="compare-tables"):
                yield DataTable(id="compare-table", cursor_type="none", zebra_stripes=True)
                yield Static("", id="compare-diff-title", markup=False)
                yield DataTable(id="compare-diff", cursor_type="none", zebra_stripes=True)
        yield AppFooter()

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(REFRESH_S, self._follow)

    def _follow(self) -> None:
        if self.is_current and any(s.info.status == "running" for s in self.sides):
            self.reload()

    def action_reload(self) -> None:
        self.reload()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def reload(self) -> None:
        try:
            sides = load([RunStore(info.path.parent).read(info.path) for info in self.runs])  # status as it is now
        except CompareError as err:  # the runs screen checks first; a file may still change in between
            self.app.call_from_thread(self.notify, str(err), severity="error")
            return
        self.post_message(Loaded(sides))

    def on_loaded(self, message: Loaded) -> None:
        first = not self.sides
        self.sides = message.sides
        self._legend()
        for plot in self.query(ComparePlot):
            plot.show(self.sides)
        self._tables()
        if first:
            for line in no_metrics(self.sides):
                self.notify(line, severity="warning", timeout=6)

    def on_resize(self) -> None:
        self._legend()
        if self.sides:
            self._tables()

    def _legend(self) -> None:
        if self.sides:
            self.query_one("#compare-legend", Static).update(legend(self.sides, self.size.width - 2))

    def _tables(self) -> None:
        heads = [Text(f"{LOOKS[n][0]} {s.label}", style=f"bold {LOOKS[n][2]}") for n, s in enumerate(self.sides)]
        # Every run's column in view: long values (a data_dir, a note) are cut to what the width allows.
        width = max(8, min(CELL, (self.size.width - 16) // len(self.sides) - 2))
        summary = self.query_one("#compare-table", DataTable)
        summary.clear(columns=True)
        summary.add_columns("", *heads)
        for what, values in table(self.sides):
            summary.add_row(what, *(cut(v, width) for v in values))
        diff = config_diff(self.sides)
        title = self.query_one("#compare-diff-title", Static)
        table_ = self.query_one("#compare-diff", DataTable)
        table_.clear(columns=True)
        table_.display = bool(diff)
        if not diff:
            title.update("config: the same for all (description aside)")
            return
        title.update(f"config: the {len(diff)} key{'s that differ' if len(diff) != 1 else ' that differs'}")
        table_.add_columns("key", *heads)
        for key, values in diff:
            table_.add_row(cut(key, 14), *(cut(v, width) for v in values))
