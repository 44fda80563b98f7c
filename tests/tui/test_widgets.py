"""The live view's widgets: what they draw, and that they draw no more often than needed."""

from __future__ import annotations

from rich.style import Style
from textual.app import App

from fmnist_tui.engine.events import RunStarted, StepProgress
from fmnist_tui.tui.epochs import EpochRow
from fmnist_tui.tui.widgets.charts import MetricsChart
from fmnist_tui.tui.widgets.progress import RunProgress, bar

DONE, BACK = Style(color="green"), Style(color="grey23")


def test_bar_fills_in_half_cells():
    assert bar(0.0, 10, DONE, BACK).plain == "━" * 10
    half = bar(0.5, 10, DONE, BACK)
    assert half.plain == "━" * 5 + "╺" + "━" * 4
    assert [span.style for span in half.spans] == [DONE, BACK] and half.spans[0].end == 5
    assert bar(0.55, 10, DONE, BACK).plain == "━" * 5 + "╸" + "━" * 4
    assert bar(1.0, 10, DONE, BACK).plain == "━" * 10 and len(bar(1.0, 10, DONE, BACK).spans) == 1
    assert bar(7.0, 10, DONE, BACK).cell_len == 10  # never wider than asked


class One(App):
    def __init__(self, widget) -> None:
        super().__init__()
        self.widget = widget

    def compose(self):
        yield self.widget


async def test_progress_shows_both_lines_and_repaints_only_on_change(monkeypatch):
    repaints = []
    widget = RunProgress()
    async with One(widget).run_test(size=(80, 4)) as pilot:
        started = RunStarted("/runs/x", "cpu", 2, 100, 200, 0, 0)
        step = StepProgress(epoch=0, step=50, total_steps=200, epoch_step=50, steps_per_epoch=100, loss=0.5,
                            samples_per_s=12_000.0, elapsed_s=5.0, eta_s=15.0)  # fmt: skip
        monkeypatch.setattr(widget, "refresh", lambda *a, **k: repaints.append(1))
        widget.show(started, step)
        widget.show(started, step)  # the same again: nothing to repaint
        assert len(repaints) == 1
        epoch_line, run_line = widget.render().plain.split("\n")
        assert epoch_line.startswith("Epoch 1/2") and "50%" in epoch_line and "50/100  loss 0.5" in epoch_line
        assert "25%" in run_line and "50/200" in run_line and "ETA 0:15" in run_line
        assert len(epoch_line) <= 78 and epoch_line.index("%") == run_line.index("%")  # bars line up
        widget.show(started, step, done=True)  # stopped half way: no ETA
        assert widget.render().plain.split("\n")[1].endswith("ETA -")
        await pilot.pause()


async def test_chart_rebuilds_only_the_plot_whose_data_changed(monkeypatch):
    rebuilt = []
    original = MetricsChart._start
    monkeypatch.setattr(MetricsChart, "_start", lambda self, sel, *a: (rebuilt.append(sel), original(self, sel, *a))[1])
    chart = MetricsChart()
    async with One(chart).run_test(size=(80, 20)) as pilot:
        epoch = EpochRow(epoch=0, step=10, train_loss=1.0, val_loss=0.9, val_acc=0.7, lr=0.1, seconds=1.0)
        rebuilt.clear()
        chart.draw([(i, 1.0 / i) for i in range(1, 11)], [epoch])
        assert rebuilt == ["#loss-plot", "#acc-plot"]
        chart.draw([(i, 1.0 / i) for i in range(1, 21)], [epoch])  # new steps, same epochs
        assert rebuilt[2:] == ["#loss-plot"]
        chart.draw([(i, 1.0 / i) for i in range(1, 21)], [epoch])  # nothing new
        assert rebuilt[3:] == []
        chart.draw([(i, 1.0 / i) for i in range(1, 21)], [epoch, EpochRow(1, 20, 0.8, 0.7, 0.8, 0.1, 1.0)])
        assert rebuilt[3:] == ["#loss-plot", "#acc-plot"]  # a val loss dot and an accuracy point
        await pilot.pause()


async def test_accuracy_axis_stays_within_0_to_100_with_one_epoch():
    chart = MetricsChart()
    async with One(chart).run_test(size=(80, 20)) as pilot:
        chart.draw(
            [(1, 1.0)], [EpochRow(epoch=0, step=1, train_loss=1.0, val_loss=0.9, val_acc=0.995, lr=0.1, seconds=1.0)]
        )
        await pilot.pause()
        drawn = chart.query_one("#acc-plot").render().plain
        ticks = [float(line.split("┤")[0]) for line in drawn.splitlines() if "┤" in line]
        assert ticks and max(ticks) <= 100.0 and min(ticks) >= 98.0, ticks
