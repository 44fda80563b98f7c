"""Queued entries, then runs from the run store; Enter opens a run (attaches to a running one).

Space marks runs (up to 6, lettered A-F in marking order) and c compares them; s changes the
order, / filters (see runlist.py), n sets a note, d moves a run to the trash, x removes a
queued entry. Shown every time the screen comes back and every REFRESH_S while shown, so a
reload must be cheap: the store caches what it parsed (keyed on file times), and the table is
only rebuilt when a row changed.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import DataTable, Header, Input, Static

from fmnist_tui import paths
from fmnist_tui.compare import LABELS, MOST
from fmnist_tui.format import clock, number, pct, printable
from fmnist_tui.notes import read_note, write_note
from fmnist_tui.runlist import SORTS, Filter, sort_runs
from fmnist_tui.runqueue import Entry, Queue, QueueError
from fmnist_tui.runs import RunInfo, RunStore, RunStoreError
from fmnist_tui.trash import FOLDER, move_to_trash
from fmnist_tui.tui.screens.base import AppScreen, AttachRun
from fmnist_tui.tui.screens.compare import CompareScreen
from fmnist_tui.tui.screens.detail import RunDetailScreen
from fmnist_tui.tui.screens.modals import ConfirmScreen, NoteScreen
from fmnist_tui.tui.widgets.compare_plot import LOOKS
from fmnist_tui.tui.widgets.footer import AppFooter

STATUS_STYLE = {
    "finished": "green", "stopped": "yellow", "running": "cyan", "failed": "red",
    "diverged": "red", "interrupted": "yellow", "incomplete": "dim", "queued": "magenta", "starting": "magenta",
}  # fmt: skip
REFRESH_S = 2.0  # runs start and end, entries leave the queue: the list follows
QUEUED = "queue:"  # the row key of a queued entry: "queue:7"
FILTER_DELAY_S = 0.15


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def row_of(r: RunInfo, mark: str = "") -> tuple:
    # The folder's name is the run's name: what `run --resume` takes, and it carries date and preset.
    return (
        mark, printable(r.path.name), r.status, pct(number(r.get("best_val_acc"))),
        pct(number(r.get("test_acc"))), clock(number(r.get("duration_s"))),
    )  # fmt: skip


def queued_row(e: Entry) -> tuple:
    return ("", f"#{e.id} {e.preset}{' ' + printable(e.label) if e.label else ''}", e.state, "", "", "")


def mark_text(mark: str) -> Text:
    """A marked run's letter with its marker and colour in the compare view ('●A')."""
    if not mark:
        return Text("")
    marker, _, colour = LOOKS[LABELS.index(mark)]
    return Text(f"{marker}{mark}", style=f"bold {colour}")


def cells(row: tuple) -> tuple:
    mark, name, status, best, test, took = row
    right = [Text(v, justify="right") for v in (best, test, took)]
    return (mark_text(mark), Text(name), status_text(status), *right)


class RunsTable(DataTable):
    """Home and End go to the first and the last run (DataTable's own scroll sideways)."""

    BINDINGS = [Binding("home", "first", show=False), Binding("end", "last", show=False)]

    def action_first(self) -> None:
        self.move_cursor(row=0)

    def action_last(self) -> None:
        self.move_cursor(row=self.row_count - 1)


class RunsScreen(AppScreen):
    TITLE = "fmnist-tui"
    SUB_TITLE = "runs"
    # Main action, then Quit: what stays in view when a narrow terminal cuts the footer. Enter opens too.
    BINDINGS = [
        Binding("o", "open", "Open"),
        Binding("q", "app.quit", "Quit"),
        Binding("space", "mark", "Mark", tooltip="Mark the run to compare it (up to 6); again to unmark"),
        Binding("c", "compare", "Compare", tooltip="Compare the marked runs: curves, figures, config"),
        Binding("slash", "filter", "Filter", tooltip="Words, status:X, preset:X or key=value"),
        Binding("s", "sort", "Sort", tooltip="Order by date, best val, test acc or time"),
        Binding("d,delete", "delete", "Delete", tooltip="Move the run to the trash folder (asks first)"),
        Binding("n", "note", "Note", tooltip="A note on the run (shown below the list, found by the filter)"),
        Binding("a", "attach", "Attach", tooltip="Follow the run live (its history, then as it goes)"),
        Binding("r", "reload", "Refresh"),
        Binding("x", "remove_queued", "Unqueue", tooltip="Remove the queued entry under the cursor"),
        Binding("escape", "clear", "Clear", show=False),
    ]
    DEFAULT_CSS = """
    #runs-state { height: 1; padding: 0 1; }
    #runs-filter { display: none; dock: bottom; margin-bottom: 1; }
    #runs-filter.-shown { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, RunInfo] = {}  # the rows shown, by row key (the folder's path)
        self.queued: dict[str, Entry] = {}
        self.marked: list[str] = []  # row keys, in marking order: A, B, ...
        self.sort_by = "date"
        self.filter = Filter()
        self.total = 0
        self._store: RunStore | None = None
        self._rows: list[tuple] | None = None  # what the table shows, to skip rebuilding it
        self._reload_queued = False
        self._filter_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="runs-folder", markup=False)
        yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-state")
        yield Input(id="runs-filter", placeholder="filter: words, status:finished, preset:mlp, lr=0.01 (esc clears)")
        yield AppFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column(" ", key="mark")
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

    @property
    def root(self) -> Path:
        return paths.runs_dir(self.fmnist.runs_dir)

    def reload(self, force: bool = False) -> None:
        self._reload_queued = False
        if self._store is None or self._store.root != self.root:
            self._store, self._rows = RunStore(self.root), None
        store = self._store
        try:
            runs = store.list()
        except OSError as err:
            runs = []
            self.notify(f"Cannot read {store.root}: {err}", severity="error")
        self.total = len(runs)
        self.marked = [k for k in self.marked if Path(k).is_dir()]  # deleted or moved meanwhile
        runs = sort_runs([r for r in runs if not self.filter or self.filter.matches(r)], self.sort_by)
        try:
            loaded = Queue(self.root).load()
            waiting = [e for e in loaded.entries if e.state in ("queued", "starting")]
        except QueueError as err:
            waiting = []
            self.notify(str(err), severity="error")
        self.runs = {str(r.path): r for r in runs}
        self.queued = {f"{QUEUED}{e.id}": e for e in waiting}
        keys = [*self.queued, *self.runs]
        rows = [*(queued_row(e) for e in waiting), *(row_of(r, self._mark(str(r.path))) for r in runs)]
        count = f"{self.total} run{'s' if self.total != 1 else ''}" if self.total else "no runs yet"
        if waiting:
            count += f", {len(waiting)} queued"
        self.query_one("#runs-folder", Static).update(f"{count} in {store.root}")
        if rows != self._rows or force:
            self._rows = rows
            table = self.query_one(DataTable)
            keep, at = self._current(), table.cursor_row
            table.clear()
            for key, row in zip(keys, rows, strict=True):  # add_rows takes no keys; add_row is what it calls
                table.add_row(*cells(row), key=key)
            if rows:  # the same run under the cursor, wherever the list moved it (d and n act on it)
                table.move_cursor(row=keys.index(keep) if keep in keys else min(at, len(rows) - 1))
        self._show_state()

    def _mark(self, key: str) -> str:
        return LABELS[self.marked.index(key)] if key in self.marked else ""

    def _show_state(self) -> None:
        """The line under the list: order, filter, marks, and the note of the run under the cursor."""
        text = Text(f"sorted by {self.sort_by}", style="dim")
        if self.filter:
            text.append(f" · filter {self.filter.text.strip()!r}: {len(self.runs)} of {self.total}", style="bold")
        if self.marked:
            text.append(f" · {len(self.marked)} marked", style="bold")
            text.append(" (c compares)" if len(self.marked) > 1 else " (mark another)", style="dim")
        info = self.runs.get(self._current() or "")
        note = read_note(info.path) if info is not None else ""
        if note:
            text.append(f" · ✎ {note}")
        elif self.runs and not self.marked and not self.filter:
            text.append(" · enter opens a run, space marks runs to compare", style="dim")
        self.query_one("#runs-state", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_state()

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

    def _current_run(self, doing: str) -> RunInfo | None:
        info = self.runs.get(self._current() or "")
        if info is None:
            self.notify(f"Put the cursor on a run to {doing}", timeout=3)
        return info

    def action_open(self) -> None:
        self._open(self._current())

    def action_attach(self) -> None:
        info = self.runs.get(self._current() or "")
        if info is not None:  # a run that has ended shows its record, from the start to its end
            self.post_message(AttachRun(info.path))

    # -- compare -----------------------------------------------------------------------------
    def action_mark(self) -> None:
        info = self._current_run("mark it")
        if info is None:
            return
        key = str(info.path)
        if key in self.marked:
            self.marked.remove(key)
        elif len(self.marked) >= MOST:
            self.notify(f"At most {MOST} runs can be compared: unmark one first (space)", severity="warning")
            return
        else:
            self.marked.append(key)
        self.reload()
        table = self.query_one(DataTable)
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)  # marking a few in a row is space, space, space

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("Mark 2 to 6 runs with space, then c compares them", timeout=4)
            return
        store = self._store or RunStore(self.root)
        self.app.push_screen(CompareScreen([store.info(Path(k)) for k in self.marked]))

    # -- order and filter --------------------------------------------------------------------
    def action_sort(self) -> None:
        order = list(SORTS)
        self.sort_by = order[(order.index(self.sort_by) + 1) % len(order)]
        self.reload()

    def action_filter(self) -> None:
        box = self.query_one("#runs-filter", Input)
        box.add_class("-shown")
        self.call_after_refresh(box.focus)  # a widget is focusable once it is displayed

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        # Applied once typing pauses: with thousands of runs each reload takes a while.
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY_S, lambda: self._apply_filter(event.value))

    def _apply_filter(self, text: str) -> None:
        self._filter_timer = None
        if Filter(text) != self.filter:
            self.filter = Filter(text)
            self.reload()

    @on(Input.Submitted, "#runs-filter")
    def _filter_done(self) -> None:
        box = self.query_one("#runs-filter", Input)
        if self._filter_timer is not None:  # enter: now, not after the pause
            self._filter_timer.stop()
            self._apply_filter(box.value)
        box.set_class(bool(self.filter), "-shown")
        self.query_one(DataTable).focus()

    def action_clear(self) -> None:
        """Escape: leave the filter box, then clear the filter, then the marks."""
        box = self.query_one("#runs-filter", Input)
        if box.has_focus and self.filter:
            self.query_one(DataTable).focus()
        elif self.filter or box.has_focus:
            box.value = ""  # Input.Changed reloads
            self.filter = Filter()
            box.remove_class("-shown")
            self.query_one(DataTable).focus()
            self.reload()
        elif self.marked:
            self.marked = []
            self.reload()

    # -- note and delete ---------------------------------------------------------------------
    def action_note(self) -> None:
        info = self._current_run("write a note on it")
        if info is None:
            return

        def save(text: str | None) -> None:
            if text is None:
                return
            try:
                kept = write_note(info.path, text)
            except OSError as err:
                self.notify(f"Cannot write the note: {printable(err)}", severity="error", timeout=8)
                return
            self.notify(f"Note on {info.name} {'saved' if kept else 'removed'}", timeout=3)
            self._show_state()

        self.app.push_screen(NoteScreen(info.name, read_note(info.path)), save)

    def action_delete(self) -> None:
        if self.queued.get(self._current() or ""):
            self.notify("A queued entry is removed with x", timeout=3)
            return
        info = self._current_run("delete it")
        if info is None:
            return
        if info.status == "running":
            self.notify(f"Run {info.name} is running: stop it before deleting it", severity="warning")
            return

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            try:
                where = move_to_trash(self.root, info.path)
            except RunStoreError as err:
                self.notify(str(err), severity="error", timeout=8)
                return
            self.marked = [k for k in self.marked if k != str(info.path)]
            self.notify(f"Moved {info.name} to {FOLDER}/ (move it back to undo: {printable(where)})", timeout=8)
            self.reload(force=True)

        question = (f"Delete run {info.name}?\n\nIts folder is moved to {FOLDER}/ in the runs folder "
                    f"({info.status}, best val {pct(number(info.get('best_val_acc')))}).")  # fmt: skip
        self.app.push_screen(ConfirmScreen(question, yes="Delete"), answer)

    def action_remove_queued(self) -> None:
        entry = self.queued.get(self._current() or "")
        if entry is None:
            self.notify("Put the cursor on a queued entry to remove it", timeout=3)
            return
        try:
            Queue(self.root).remove(entry.id)
        except QueueError as err:
            self.notify(str(err), severity="error", timeout=8)
        else:
            self.notify(f"Removed queue entry {entry.id} ({entry.preset})", timeout=3)
        self.reload(force=True)

    def _open(self, key: str | None) -> None:
        info = self.runs.get(key or "")
        if info is not None:
            self.app.push_screen(RunDetailScreen(info))
