"""The lr finder's plot, drawn the same by `fmnist-tui lr-find` (plotext) and the app (textual-plotext).

Takes plotext's API as an argument, so it imports neither plotext nor textual.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def lr_text(lr: float) -> str:
    """2 significant digits, a TOML literal: what `--set lr=` and the form take."""
    return f"{lr:.1e}"


def points(lrs: Sequence[float], losses: Sequence[float]) -> tuple[list[float], list[float]]:
    pairs = [
        (x, y)
        for x, y in zip(lrs, losses, strict=False)
        if x > 0 and math.isfinite(x) and math.isfinite(y) and abs(y) < 1e12
    ]
    return [x for x, _ in pairs], [y for _, y in pairs]


SKIP = 10  # Lightning's suggestion leaves out the first 10 points (engine/lrfind.py SKIP_BEGIN)


def draw(plt, lrs: Sequence[float], losses: Sequence[float], suggestion: float | None, width: int) -> None:
    """Loss against lr on a log axis, the suggestion as a vertical line and an x on the curve."""
    plt.clear_figure()
    # Lightning's bias correction of the smoothed loss is a step behind: its first points come out
    # low (half the loss at the first step) and climb for about ten steps, which reads as a loss
    # rising at the lowest lrs. They are the points its suggestion leaves out; the plot does too.
    skip = SKIP if len(lrs) > 2 * SKIP else 0
    xs, ys = points(lrs[skip:], losses[skip:])
    mark = f" · │ suggested {lr_text(suggestion)}" if suggestion is not None else ""
    plt.title(f"smoothed loss against lr{mark}")
    plt.xlabel("lr (log scale)")
    if not xs:
        return
    plt.plot(xs, ys, marker="braille", color="cyan")
    plt.xscale("log")
    low, high = math.floor(math.log10(xs[0])), math.ceil(math.log10(xs[-1]))
    # A label is 5 cells: at most one per 10 columns, every other decade when narrow.
    every = max(1, math.ceil((high - low + 1) / max(1, width // 10)))
    decades = [e for e in range(low, high + 1, every) if xs[0] <= 10.0**e <= xs[-1]]
    if len(decades) >= 2:
        plt.xticks([10.0**e for e in decades], [f"1e{e}" for e in decades])
    else:  # less than a decade swept: its two ends
        plt.xticks([xs[0], xs[-1]], [lr_text(xs[0]), lr_text(xs[-1])])
    # The blow-up at the end would squash the descent that matters into a line: the y axis stops
    # half the descent's depth above the highest loss before the lowest.
    lowest = min(range(len(ys)), key=ys.__getitem__)
    before = max(ys[: lowest + 1])
    top = before + 0.5 * (before - ys[lowest])
    if max(ys) > top > ys[lowest]:
        plt.ylim(ys[lowest], top)
    if suggestion is not None:
        plt.vline(suggestion, "red")
        nearest = min(range(len(xs)), key=lambda i: abs(math.log(xs[i] / suggestion)))
        plt.scatter([xs[nearest]], [ys[nearest]], marker="x", color="red")
