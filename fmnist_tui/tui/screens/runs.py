"""Past runs from the run store; Enter opens one."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from fmnist_tui import paths
from fmnist_tui.runs import RunInfo, RunStore
from fmnist_tui.tui.format import clock, date, pct
from fmnist_tui.tui.screens.detail import RunDetailScreen

STATUS_STYLE = {
    "finished": "green", "stopped": "yellow", "running": "cyan", "failed": "red",
    "diverged": "red", "interrupted": "yellow", "incomplete": "dim",
}  # fmt: skip


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


class RunsScreen(Screen):
    TITLE = "fmnist-tui"
    SUB_TITLE = "runs"
    BINDINGS = [Binding("o", "open", "Open"), Binding("r", "reload", "Refresh"), Binding("q", "app.quit", "Quit")]  # enter opens too

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, RunInfo] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="runs-folder", markup=False)
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Date", key="date")
        table.add_column("Preset", key="preset")
        table.add_column("Status", key="status")
        table.add_column("Best val", key="best")
        table.add_column("Test acc", key="test")
        table.add_column("Time", key="time")
        self.action_reload()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        store = RunStore(paths.runs_dir(self.app.runs_dir))
        try:
            runs = store.list()
        except OSError as err:
            runs = []
            self.notify(f"Cannot read {store.root}: {err}", severity="error")
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        self.runs = {str(r.path): r for r in runs}
        for r in runs:
            table.add_row(
                date(r.started), r.preset, status_text(r.status),
                Text(pct(r.get("best_val_acc")), justify="right"), Text(pct(r.get("test_acc")), justify="right"),
                Text(clock(r.get("duration_s")), justify="right"), key=str(r.path),
            )  # fmt: skip
        if runs:
            table.move_cursor(row=min(keep, len(runs) - 1))
        count = f"{len(runs)} run{'s' if len(runs) != 1 else ''}" if runs else "no runs yet"
        self.query_one("#runs-folder", Static).update(f"{count} in {store.root}")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self._open(event.row_key.value)

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            self._open(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def _open(self, key: str | None) -> None:
        info = self.runs.get(key or "")
        if info is not None:
            self.app.push_screen(RunDetailScreen(info))
