"""Loss and accuracy curves (textual-plotext), shared by the live view and the run detail."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static
from textual_plotext import PlotextPlot

from fmnist_tui.tui.epochs import EpochRow

MAX_POINTS = 400  # the plot is at most a few hundred cells wide; more points only cost time
POINTS_PER_CELL = 4  # two per braille dot column: the line keeps its shape, plotext draws it in half the time


def plottable(*values: float) -> bool:
    """Finite and of a sane size: a hand-edited metrics.csv may hold 1e308, which overflows the axes."""
    return all(math.isfinite(v) and abs(v) < 1e12 for v in values)


def thin(points: Sequence[tuple[int, float]], limit: int = MAX_POINTS) -> tuple[list[int], list[float]]:
    """Average runs of neighbouring points so long runs stay cheap to draw."""
    finite = [(x, y) for x, y in points if plottable(x, y)]
    if len(finite) <= limit:
        return [x for x, _ in finite], [y for _, y in finite]
    size = math.ceil(len(finite) / limit)
    xs, ys = [], []
    for i in range(0, len(finite), size):
        chunk = finite[i : i + size]
        xs.append(chunk[-1][0])
        ys.append(sum(y for _, y in chunk) / len(chunk))
    return xs, ys


class MetricsChart(Horizontal):
    """Left: training loss per step and validation loss per epoch. Right: validation accuracy.

    Each plot is rebuilt only when its own data changed: plotext builds and parses a whole
    canvas each time (several ms), and the accuracy plot changes once an epoch, not once a
    second like the loss plot."""

    DEFAULT_CSS = """
    MetricsChart > #chart-too-small { display: none; width: 1fr; color: $text-muted; padding: 0 1; }
    MetricsChart.-too-small > PlotextPlot { display: none; }
    MetricsChart.-too-small > #chart-too-small { display: block; }
    """
    MIN_HEIGHT = 7  # title, 4 rows of plot, ticks, label: less draws only axis labels over each other

    def compose(self) -> ComposeResult:
        yield PlotextPlot(id="loss-plot")
        yield PlotextPlot(id="acc-plot")
        yield Static("Too small for the charts: a taller terminal shows them.", id="chart-too-small")

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.height < self.MIN_HEIGHT, "-too-small")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._data: tuple[Sequence[tuple[int, float]], list[EpochRow]] = ([], [])
        self._drawn: dict[str, object] = {}  # plot id -> the data it shows

    def on_mount(self) -> None:
        self._apply()

    def draw(self, losses: Sequence[tuple[int, float]], epochs: Iterable[EpochRow]) -> None:
        self._data = (losses, list(epochs))
        if len(self.query(PlotextPlot)) == 2:  # composed already
            self._apply()

    def _apply(self) -> None:
        losses, epochs = self._data
        val = [(e.step, e.val_loss) for e in epochs if plottable(e.step, e.val_loss)]
        loss_key = (len(losses), losses[-1] if losses else None, tuple(val))
        if self._changed("loss-plot", loss_key):
            # No legends: at 80x24 they cover the first points. The titles name the markers instead.
            plt = self._start("#loss-plot", "loss: ⠤ train  • val", "step")
            width = self.query_one("#loss-plot", PlotextPlot).size.width
            xs, ys = thin(losses, min(MAX_POINTS, POINTS_PER_CELL * width) if width else MAX_POINTS)
            if xs:
                plt.plot(xs, ys, marker="braille", color="cyan")
            if val:
                # Whole-cell dots: told apart from the train line without colour too (NO_COLOR).
                plt.scatter([s for s, _ in val], [v for _, v in val], marker="dot", color="orange")
            self.query_one("#loss-plot", PlotextPlot).refresh()

        acc = [(e.epoch + 1, 100 * e.val_acc) for e in epochs if plottable(e.epoch, 100 * e.val_acc)]
        if self._changed("acc-plot", tuple(acc)):
            plt = self._start("#acc-plot", "val accuracy %", "epoch")
            if acc:
                values = [v for _, v in acc]
                plt.plot([a for a, _ in acc], values, marker="braille", color="green")
                if max(values) - min(values) < 1:  # one point: plotext's own range runs past 100%
                    plt.ylim(max(0.0, min(values) - 1), min(100.0, max(values) + 1))
                if len(acc) <= 10:
                    plt.xticks([a for a, _ in acc])
            self.query_one("#acc-plot", PlotextPlot).refresh()

    def _changed(self, plot_id: str, key: object) -> bool:
        if plot_id in self._drawn and self._drawn[plot_id] == key:
            return False
        self._drawn[plot_id] = key
        return True

    def _start(self, selector: str, title: str, xlabel: str):
        plt = self.query_one(selector, PlotextPlot).plt
        plt.clear_figure()
        plt.title(title)
        plt.xlabel(xlabel)
        return plt
