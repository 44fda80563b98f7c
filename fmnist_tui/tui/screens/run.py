"""The live view of the current run.

It never receives engine messages itself: the app folds them into a RunState, and a
timer here redraws from that state at most 8 times a second (charts at most 4), so a
fast run cannot flood the screen or a slow SSH link.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Header, RichLog, Static, TabbedContent, TabPane

from fmnist_tui.engine.events import LogLine, RunEnded
from fmnist_tui.format import clock, num, pct, printable
from fmnist_tui.tui.epochs import EpochRow
from fmnist_tui.tui.screens.base import AppScreen, ControlRun, Detach, StopRun
from fmnist_tui.tui.screens.modals import LrScreen
from fmnist_tui.tui.state import RunState
from fmnist_tui.tui.widgets.charts import MetricsChart
from fmnist_tui.tui.widgets.epoch_table import EpochTable
from fmnist_tui.tui.widgets.footer import AppFooter
from fmnist_tui.tui.widgets.insight import InsightView
from fmnist_tui.tui.widgets.progress import RunProgress

REFRESH_S = 1 / 4  # progress text: 4 times a second is smooth enough, and cheap on a slow link
LOG_PANE_LINES = 1_000
CHART_EVERY_S = 1.0  # plotext redraws cost the training thread GIL time (measured in bench/throughput.py)
LEVEL_STYLE = {"WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}
ICON = {"finished": "✔", "stopped": "■", "failed": "✖", "diverged": "✖", "interrupted": "■"}


def log_text(line: LogLine) -> Text:
    style = LEVEL_STYLE.get(line.level, "dim")
    return Text.assemble((f"{line.level[:4]:<5}", style), (printable(line.text), "" if line.level == "INFO" else style))


def result_text(end: RunEnded) -> Text:
    good = end.status == "finished"
    kept = end.status in ("stopped", "interrupted")  # ended on request or by a signal, checkpoint kept
    head = Text(f"{ICON.get(end.status, '?')} {end.status}", style="bold green" if good else "bold red")
    if kept:
        head.stylize("bold yellow")
    parts = [f" in {clock(end.duration_s)}"] if end.run_dir else []
    if end.test_acc is not None:
        epoch = f", epoch {end.test_epoch + 1}" if end.test_epoch is not None else ""
        weights = f" ({end.test_checkpoint}{epoch})" if end.test_checkpoint else ""
        parts.append(f"  test acc {pct(end.test_acc)}{weights}  test loss {num(end.test_loss)}")
    if end.best_val_acc is not None:
        parts.append(f"  best val {pct(end.best_val_acc)}")
    head.append("".join(parts))
    if end.last_test_acc is not None:
        epoch = f" (epoch {end.last_test_epoch + 1})" if end.last_test_epoch is not None else ""
        head.append(f"\nlast weights{epoch}: test acc {pct(end.last_test_acc)}", style="dim")
    if end.error:
        head.append(f"\n{printable(end.error)}", style="red")
    if kept and end.checkpoint:
        head.append(f"\ncheckpoint: {printable(end.checkpoint)}", style="dim")
    elif end.run_dir:
        head.append(f"\nfolder: {printable(end.run_dir)}", style="dim")
    return head


class RunScreen(AppScreen):
    TITLE = "fmnist-tui"
    SUB_TITLE = "live run"
    BINDINGS = [
        Binding("s", "control('stop')", "Stop"),
        Binding("q", "app.quit", "Quit"),
        Binding("d", "detach", "Detach: run goes on"),
        Binding("e", "control('stop-after-epoch')", "Stop after epoch"),
        Binding("c", "control('checkpoint')", "Checkpoint"),
        Binding("l", "set_lr", "Set lr"),
    ]
    AUTO_FOCUS = "Tabs"  # left/right switch tabs at once; the keys above are free here

    def __init__(self) -> None:
        super().__init__()
        self._state: RunState | None = None
        self._version = -1
        self._epochs_shown = 0
        self._logs_seen = 0
        self._chart_dirty = False
        self._chart_drawn_at = 0.0
        self._keys: tuple | None = None  # what the footer's keys depend on, as last shown
        self._shown: dict[str, object] = {}  # selector -> text last given to that Static
        self._insight_of: str | None = None  # the run folder the Insight tab shows

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="run-head"):
            yield Static("", id="run-title", markup=False)
            yield Button("Stop (s)", id="stop", variant="error", compact=True)
        yield RunProgress(id="progress")
        with TabbedContent(id="run-tabs"):
            with TabPane("Chart", id="tab-chart"):
                yield MetricsChart(id="chart")
            with TabPane("Epochs", id="tab-epochs"):
                yield EpochTable(id="epochs")
            with TabPane("Log", id="tab-log"):
                # 1,000 lines: each is ~20 objects (Textual strips and their caches) that every full
                # garbage collection walks; 5,000 made those pauses 150 ms under a flood of log lines.
                yield RichLog(id="log", wrap=True, max_lines=LOG_PANE_LINES)
            with TabPane("Insight", id="tab-insight"):
                yield InsightView("What the model gets wrong shows here when the run has ended: "
                                  "its best checkpoint on the test images.", id="insight")  # fmt: skip
        with VerticalScroll(id="result-box"):  # focusable: the keys scroll a message too long for the screen
            yield Static("", id="result")
        yield AppFooter()

    def on_mount(self) -> None:
        self.set_interval(REFRESH_S, self.sync)
        self.sync()

    def on_screen_resume(self) -> None:
        self.sync(force=True)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-chart":
            self.sync(force=True)  # charts are not drawn while hidden
        self._make_room()

    def _make_room(self) -> None:
        """An ended run's progress bars make way for the Insight tab (it needs 16 rows at 80x24)."""
        insight = self.query_one("#run-tabs", TabbedContent).active == "tab-insight"
        self.query_one(RunProgress).display = not (insight and self.fmnist.state.ended is not None)

    def action_control(self, action: str) -> None:
        self.post_message(StopRun() if action == "stop" else ControlRun(action))

    def action_set_lr(self) -> None:
        state = self.fmnist.state
        current = state.epochs[-1].lr if state.epochs else state.config.lr if state.config else None

        def answered(value: float | None) -> None:
            if value is not None:
                self.post_message(ControlRun("lr", value))

        self.app.push_screen(LrScreen(current), answered)

    def action_detach(self) -> None:
        self.post_message(Detach())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop":
            self.post_message(StopRun())

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        # Keys that cannot act now are not in the footer at all (no run, a run that has ended).
        app = self.fmnist
        if action == "control" and parameters == ("stop",):
            return app.run_in_progress or app.following
        if action in ("control", "set_lr"):  # through the run's control channel: once it has a folder
            return app.following or (app.run_in_progress and app.state.started is not None)
        if action == "detach":
            return app.following  # a run that has ended has nothing to leave going
        return True

    def sync(self, force: bool = False) -> None:
        """Bring the widgets up to date with the app's RunState (cheap when nothing changed)."""
        if not self.is_current:
            return  # another screen is shown: catch up on resume, spend nothing meanwhile
        state: RunState = self.fmnist.state
        if state is not self._state:  # a new run: start from empty widgets
            self._state, self._version = state, -1
            self._epochs_shown = self._logs_seen = 0
            self.query_one(EpochTable).clear()
            self.query_one(RichLog).clear()
            self._chart_dirty = True
            if self._insight_of is not None:
                self._insight_of = None
                self.query_one(InsightView).clear()
        if state.version != self._version:
            self._version = state.version
            self._show(state)
        now = time.monotonic()
        if self.query_one("#run-tabs", TabbedContent).active != "tab-chart":
            return  # drawing hidden charts would only cost the training thread GIL time
        if force or (self._chart_dirty and (now - self._chart_drawn_at >= CHART_EVERY_S or state.ended)):
            self.query_one(MetricsChart).draw(state.losses, (EpochRow.of(e) for e in state.epochs))
            self._chart_dirty, self._chart_drawn_at = False, now

    def _show(self, state: RunState) -> None:
        running = self.fmnist.run_in_progress or self.fmnist.following
        keys = (running, state.started is not None, state.attached is not None, state.ended is not None)
        if keys != self._keys:  # the footer recomposes on every refresh: only on change
            self._keys = keys
            self.query_one("#stop", Button).display = running
            self.refresh_bindings()
        # Static.update asks for a layout pass of the screen: only when the text changes.
        self._update_if_changed("#run-title", self._title(state))
        self.query_one(RunProgress).show(
            state.started, state.progress, done=state.ended is not None or state.config is None
        )
        table = self.query_one(EpochTable)
        for event in state.epochs[self._epochs_shown :]:
            table.add_epoch(EpochRow.of(event))
        self._chart_dirty |= self._epochs_shown != len(state.epochs) or bool(state.losses)
        self._epochs_shown = len(state.epochs)
        log = self.query_one(RichLog)
        for line in state.new_logs(self._logs_seen):
            log.write(log_text(line))
        self._logs_seen = state.logs_total
        # Once, when it ends; an attached run's folder is where the app found it (events.jsonl says
        # where it was written, which a copied or moved folder no longer is).
        ended = state.ended
        folder = str(state.attached) if state.attached is not None else ended.run_dir if ended else ""
        if ended is not None and folder and folder != self._insight_of:
            self._insight_of = folder
            self.query_one(InsightView).show_run(Path(folder))
        self._make_room()
        box = self.query_one("#result-box")
        self._update_if_changed("#result", result_text(state.ended) if state.ended else "")
        box.set_class(state.ended is not None, "-shown")
        box.set_class(state.ended is not None and state.ended.status != "finished", "-bad")

    def _update_if_changed(self, selector: str, text) -> None:
        if self._shown.get(selector) != text:
            self._shown[selector] = text
            self.query_one(selector, Static).update(text)

    def _title(self, state: RunState) -> str:
        if state.config is None and state.attached is None:
            return "No run yet: pick a preset on the setup screen (f2) and start it."
        device = state.started.device if state.started else "" if state.attached else self.fmnist.device or ""
        if state.config is not None:
            name = f"{state.config.name} · {state.config.model}/{state.config.optimizer}"
        else:
            name = printable(state.attached.name if state.attached else "")
        if state.attached is not None and not state.ended:
            name = f"{name} · own process"  # attached: d detaches, the run goes on
        if state.ended:
            return f"{name} · {device}".rstrip(" ·")
        if state.started is None:
            return f"● reading {name}…" if state.attached else f"● starting {name} (loading data)…"
        return f"● training {name} · {device}"
