"""One past run: its result, curves, epoch table and config."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static, TabbedContent, TabPane

from fmnist_tui.cards import card_lines, read_cards
from fmnist_tui.format import clock, date, epoch_number, num, pct, printable, value_text
from fmnist_tui.metrics import read_metrics
from fmnist_tui.notes import read_note
from fmnist_tui.runs import RunInfo
from fmnist_tui.tui.epochs import EpochRow
from fmnist_tui.tui.widgets.charts import MetricsChart
from fmnist_tui.tui.widgets.epoch_table import EpochTable
from fmnist_tui.tui.widgets.footer import AppFooter
from fmnist_tui.tui.widgets.insight import InsightView


def weights_label(info: RunInfo, prefix: str = "") -> str:
    """' (best.ckpt, epoch 3)': which weights a summary's test figure is of (epochs from 1)."""
    parts = [info.text(f"{prefix}test_checkpoint")]
    epoch = epoch_number(info.get(f"{prefix}test_epoch"))
    if epoch is not None:
        parts.append(f"epoch {epoch}")
    shown = ", ".join(p for p in parts if p)
    return f" ({shown})" if shown else ""


def summary_text(info: RunInfo) -> Text:
    text = Text(f"{info.preset}  ", style="bold")
    text.append(f"{info.status} ", style="bold green" if info.status == "finished" else "bold yellow")
    text.append(f"  {date(info.started)}  {clock(info.get('duration_s'))}")
    text.append(f"\nbest val {pct(info.get('best_val_acc'))}  test acc {pct(info.get('test_acc'))}")
    text.append(f"{weights_label(info)}  test loss {num(info.get('test_loss'))}")
    if info.get("last_test_acc") is not None:
        text.append(f"\nlast weights{weights_label(info, 'last_')}: test acc {pct(info.get('last_test_acc'))}")
    if info.get("error"):
        text.append(f"\n{info.text('error')}", style="red")
    note = read_note(info.path)
    if note:
        text.append(f"\n✎ {note}", style="italic")
    for problem in info.problems:
        text.append(f"\n{problem}", style="red")
    text.append(f"\n{printable(info.path)}", style="dim")
    return text


class RunDetailScreen(Screen):
    TITLE = "fmnist-tui"
    BINDINGS = [Binding("escape,backspace", "app.pop_screen", "Back"), Binding("q", "app.quit", "Quit")]

    def __init__(self, info: RunInfo, tab: str = "tab-curves") -> None:
        super().__init__()
        self.info, self.tab = info, tab
        self.sub_title = info.name

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(summary_text(self.info), id="detail-summary")
        with TabbedContent(id="detail-tabs", initial=self.tab):
            with TabPane("Curves", id="tab-curves"):
                yield MetricsChart(id="detail-chart")
            with TabPane("Epochs", id="tab-detail-epochs"):
                yield EpochTable(id="detail-epochs")
            with TabPane("Insight", id="tab-insight"):
                yield InsightView(id="detail-insight")
            with TabPane("Config", id="tab-config"):
                yield DataTable(id="detail-config", cursor_type="row", zebra_stripes=True)
        yield AppFooter()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # The Insight tab needs 20 rows; the matrix says which weights and how many right, so below
        # 30 rows the summary above the tabs makes way for it.
        insight = event.pane.id == "tab-insight"
        self.query_one("#detail-summary").set_class(insight, "-insight")

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.height < 30, "-short")

    def on_mount(self) -> None:
        steps, epochs = read_metrics(self.info.path)
        rows = [EpochRow.of(e) for e in epochs]
        self.query_one(MetricsChart).draw(steps, rows)
        self.query_one(EpochTable).set_epochs(rows)
        self.query_one(InsightView).show_run(self.info.path)  # in a thread, drawn while the tab is hidden
        config = self.query_one("#detail-config", DataTable)
        config.add_columns("Key", "Value")
        for key, value in self.info.config.items():
            config.add_row(printable(key), value_text(value))
        for n, entry in enumerate(self.info.history, 1):  # each resume: when, from which step, what it changed
            config.add_row(f"resume {n}", printable(entry))
        for n, card in enumerate(read_cards(self.info.path)):  # how each start was made (card.json)
            for what, value in card_lines(card):
                config.add_row(f"{'made' if n == 0 else f'resume {n}'}: {what}", value)
