"""Queued entries, then runs from the run store, running ones first; Enter opens a run (attaches to a
running one), a attaches, x removes a queued entry.

Shown every time the screen comes back and every REFRESH_S while shown, so a reload must be
cheap: the store caches what it parsed (keyed on file times), and the table is only rebuilt
when a row changed.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Header, Static

from fmnist_tui import paths
from fmnist_tui.format import clock, number, pct, printable
from fmnist_tui.runqueue import Entry, Queue, QueueError
from fmnist_tui.runs import RunInfo, RunStore
from fmnist_tui.tui.screens.base import AppScreen, AttachRun
from fmnist_tui.tui.screens.detail import RunDetailScreen
from fmnist_tui.tui.widgets.footer import AppFooter

STATUS_STYLE = {
    "finished": "green", "stopped": "yellow", "running": "cyan", "failed": "red",
    "diverged": "red", "interrupted": "yellow", "incomplete": "dim", "queued": "magenta", "starting": "magenta",
}  # fmt: skip
REFRESH_S = 2.0  # runs start and end, entries leave the queue: the list follows
QUEUED = "queue:"  # the row key of a queued entry: "queue:7"


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def row_of(r: RunInfo) -> tuple:
    # The folder's name is the run's name: what `run --resume` takes, and it carries date and preset.
    return (
        printable(r.path.name), r.status, pct(number(r.get("best_val_acc"))),
        pct(number(r.get("test_acc"))), clock(number(r.get("duration_s"))),
    )  # fmt: skip


def queued_row(e: Entry) -> tuple:
    return (f"#{e.id} {e.preset}{' ' + printable(e.label) if e.label else ''}", e.state, "", "", "")


def cells(row: tuple) -> tuple:
    name, status, best, test, took = row
    right = [Text(v, justify="right") for v in (best, test, took)]
    return (Text(name), status_text(status), *right)


class RunsScreen(AppScreen):
    TITLE = "fmnist-tui"
    SUB_TITLE = "runs"
    # Main action, then Quit: what stays in view when a narrow terminal cuts the footer. Enter opens too.
    BINDINGS = [
        Binding("o", "open", "Open"),
        Binding("q", "app.quit", "Quit"),
        Binding("a", "attach", "Attach", tooltip="Follow the run live (its history, then as it goes)"),
        Binding("r", "reload", "Refresh"),
        Binding("x", "remove_queued", "Unqueue", tooltip="Remove the queued entry under the cursor"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, RunInfo] = {}
        self.queued: dict[str, Entry] = {}
        self._store: RunStore | None = None
        self._rows: list[tuple] | None = None  # what the table shows, to skip rebuilding it
        self._reload_queued = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="runs-folder", markup=False)
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield AppFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Run", key="run")
        table.add_column("Status", key="status")
        table.add_column("Best val", key="best")
        table.add_column("Test acc", key="test")
        table.add_column("Time", key="time")
        # no load here: ScreenResume follows when the screen is first shown
        self.set_interval(REFRESH_S, lambda: self.reload() if self.is_current else None)

    def on_screen_resume(self) -> None:
        # Textual sends ScreenResume twice when a mode is first shown: load once for both.
        if not self._reload_queued:
            self._reload_queued = True
            self.call_later(self.reload)

    def action_reload(self) -> None:
        self.reload(force=True)

    def reload(self, force: bool = False) -> None:
        self._reload_queued = False
        root = paths.runs_dir(self.fmnist.runs_dir)
        if self._store is None or self._store.root != root:
            self._store, self._rows = RunStore(root), None
        store = self._store
        try:
            runs = store.list()
        except OSError as err:
            runs = []
            self.notify(f"Cannot read {store.root}: {err}", severity="error")
        runs.sort(key=lambda r: r.status != "running")  # stable: newest first within each group
        try:
            loaded = Queue(root).load()
            waiting = [e for e in loaded.entries if e.state in ("queued", "starting")]
        except QueueError as err:
            waiting = []
            self.notify(str(err), severity="error")
        self.runs = {str(r.path): r for r in runs}
        self.queued = {f"{QUEUED}{e.id}": e for e in waiting}
        keys = [*self.queued, *self.runs]
        rows = [*(queued_row(e) for e in waiting), *(row_of(r) for r in runs)]
        count = f"{len(runs)} run{'s' if len(runs) != 1 else ''}" if runs else "no runs yet"
        if waiting:
            count += f", {len(waiting)} queued"
        self.query_one("#runs-folder", Static).update(f"{count} in {store.root}")
        if rows == self._rows and not force:
            return
        self._rows = rows
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for key, row in zip(
            keys, rows, strict=True
        ):  # DataTable.add_rows takes no keys; add_row is what it calls anyway
            table.add_row(*cells(row), key=key)
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        entry = self.queued.get(event.row_key.value or "")
        if entry is not None:
            what = "is starting" if entry.state == "starting" else "waits for a free slot; x removes it"
            self.notify(f"Queue entry {entry.id} ({entry.preset}) {what}", timeout=4)
            return
        info = self.runs.get(event.row_key.value or "")
        if info is not None and info.status == "running":
            self.post_message(AttachRun(info.path))
        else:
            self._open(event.row_key.value)

    def _current(self) -> str | None:
        table = self.query_one(DataTable)
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None

    def action_open(self) -> None:
        self._open(self._current())

    def action_attach(self) -> None:
        info = self.runs.get(self._current() or "")
        if info is not None:  # a run that has ended shows its record, from the start to its end
            self.post_message(AttachRun(info.path))

    def action_remove_queued(self) -> None:
        entry = self.queued.get(self._current() or "")
        if entry is None:
            self.notify("Put the cursor on a queued entry to remove it", timeout=3)
            return
        try:
            Queue(paths.runs_dir(self.fmnist.runs_dir)).remove(entry.id)
        except QueueError as err:
            self.notify(str(err), severity="error", timeout=8)
        else:
            self.notify(f"Removed queue entry {entry.id} ({entry.preset})", timeout=3)
        self.reload(force=True)

    def _open(self, key: str | None) -> None:
        info = self.runs.get(key or "")
        if info is not None:
            self.app.push_screen(RunDetailScreen(info))
