"""One metric of several runs in one plot: a colour and a marker each, so that the curves are
told apart without colour too (NO_COLOR, a monochrome terminal)."""

from __future__ import annotations

from rich.text import Text
from textual_plotext import PlotextPlot

from fmnist_tui.compare import Side
from fmnist_tui.tui.widgets.charts import MAX_POINTS, plottable, thin

# (marker, plotext colour, rich colour) per run, in LABELS order
LOOKS = (("●", "cyan", "cyan"), ("x", "orange", "dark_orange"), ("+", "green", "green"),
         ("▲", "magenta", "magenta"), ("■", "yellow", "yellow"), ("◆", "red", "red"))  # fmt: skip

# tab id -> (title, x label, what to plot)
METRICS = {
    "val_acc": ("val accuracy % by epoch", "epoch"),
    "val_loss": ("val loss by epoch", "epoch"),
    "train_loss": ("train loss by step", "step"),
}


def points(side: Side, metric: str) -> tuple[list[int], list[float]]:
    if metric == "train_loss":
        return thin(side.steps, MAX_POINTS)
    scale = 100 if metric == "val_acc" else 1
    pairs = [(int(e["epoch"]) + 1, scale * e[metric]) for e in side.epochs
             if "epoch" in e and metric in e and plottable(e["epoch"], scale * e[metric])]  # fmt: skip
    return [x for x, _ in pairs], [y for _, y in pairs]


def legend(sides: list[Side], width: int) -> Text:
    """'● A name   x B name ...', a new line where the next entry would not fit (never inside one)."""
    text, used = Text(), 0
    for n, side in enumerate(sides):
        marker, _, colour = LOOKS[n]
        name = side.info.name + ("" if side.has_metrics else " (no metrics)")
        size = len(name) + 4
        if used and used + 3 + size > width:
            text.append("\n")
            used = 0
        elif used:
            text.append("   ")
            used += 3
        text.append(f"{marker} {side.label} ", style=f"bold {colour}")
        text.append(name)
        used += size
    return text


class ComparePlot(PlotextPlot):
    def __init__(self, metric: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.metric = metric

    def show(self, sides: list[Side]) -> None:
        title, xlabel = METRICS[self.metric]
        plt = self.plt
        plt.clear_figure()
        plt.title(title)
        plt.xlabel(xlabel)
        epochs: set[int] = set()
        steps: list[int] = []
        for n, side in enumerate(sides):
            xs, ys = points(side, self.metric)
            if not xs:
                continue
            marker, colour, _ = LOOKS[n]
            plt.plot(xs, ys, marker="braille", color=colour)
            # The run's own marker on its points (on a step curve, a dozen of them): told apart without colour.
            every = max(1, len(xs) // 12) if self.metric == "train_loss" else 1
            plt.scatter(xs[every // 2 :: every], ys[every // 2 :: every], marker=marker, color=colour)
            if self.metric != "train_loss":
                epochs.update(xs)
            steps += xs
        if epochs and len(epochs) <= 12:
            plt.xticks(sorted(epochs))
        elif steps and self.metric == "train_loss":  # whole steps (plotext's own ticks read 1077.2)
            low, high = min(steps), max(steps)
            plt.xticks(sorted({round(low + (high - low) * k / 4) for k in range(5)}))
        self.refresh()
