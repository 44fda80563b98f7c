"""The confusion matrix as a grid of counts one can move through, and per-class recall as bars.

Readable without colour (NO_COLOR): every count is written, zeros are "·", the diagonal is
bold and the cursor is reversed; colour only adds the shading (each cell by its share of
its row: the true class's images).
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.widget import Widget

from fmnist_tui.evaluation import CLASSES, SHORT, Evaluation

LABEL = 8  # "6 Shirt "
CELL = 4  # three characters and a space: counts from 1,000 are written "1k" (the status line has them exact)
HEAD = 2  # title and column numbers
BLOCKS = " ▏▎▍▌▋▊▉█"


def count_text(n: int) -> str:
    return "·" if n == 0 else str(n) if n < 1000 else f"{n // 1000}k" if n < 100_000 else "++"


def shade(share: float, diagonal: bool) -> Style:
    """Green for the right answers, red for the mistakes, stronger with the share of the row."""
    level = max(0.0, min(1.0, share)) ** 0.5  # small confusions still show
    if diagonal:
        return Style(bold=True, bgcolor=f"rgb({int(20 + 20 * level)},{int(60 + 110 * level)},{int(30 + 40 * level)})")
    if share <= 0:
        return Style(dim=True)
    return Style(bgcolor=f"rgb({int(60 + 160 * level)},{int(30 + 20 * level)},{int(30 + 20 * level)})")


class ConfusionGrid(Widget, can_focus=True):
    """Rows are the true classes, columns the predicted ones. Enter (or a click) on a cell posts CellChosen."""

    DEFAULT_CSS = (
        f"ConfusionGrid {{ width: {LABEL + 10 * CELL}; height: {HEAD + 10}; text-wrap: nowrap; text-overflow: clip; }}"
    )
    BINDINGS = [
        Binding("up", "move(-1, 0)", "Up", show=False),
        Binding("down", "move(1, 0)", "Down", show=False),
        Binding("left", "move(0, -1)", "Left", show=False),
        Binding("right", "move(0, 1)", "Right", show=False),
        Binding("enter", "choose", "Show these images"),
    ]

    class CellChosen(Message):
        def __init__(self, true: int, predicted: int) -> None:
            super().__init__()
            self.true, self.predicted = true, predicted

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.evaluation: Evaluation | None = None
        self.title = ""  # after "true ↓  predicted →": which weights, how many right
        self.cursor = (6, 0)  # Shirt taken for a T-shirt: Fashion-MNIST's classic confusion

    def show(self, evaluation: Evaluation | None, title: str = "") -> None:
        self.evaluation, self.title = evaluation, title
        if evaluation is not None and evaluation.top_confusions:
            top = evaluation.top_confusions[0]
            self.cursor = (top.true, top.predicted)
        self.refresh()

    def action_move(self, rows: int, columns: int) -> None:
        t, p = self.cursor
        self.cursor = ((t + rows) % len(CLASSES), (p + columns) % len(CLASSES))
        self.refresh()
        self._reveal()

    def _reveal(self) -> None:
        """In a terminal too small for the matrix, scroll its container to the cursor's cell."""
        container = next((a for a in self.ancestors if isinstance(a, Widget)
                          and (a.allow_horizontal_scroll or a.allow_vertical_scroll)), None)  # fmt: skip
        if container is None or not self.region:
            return
        t, p = self.cursor
        x = self.region.x - container.content_region.x + int(container.scroll_x) + LABEL + p * CELL
        y = self.region.y - container.content_region.y + int(container.scroll_y) + HEAD + t
        container.scroll_to_region(Region(x, y, CELL, 1), animate=False, immediate=True)

    def action_choose(self) -> None:
        if self.evaluation is not None:
            self.post_message(self.CellChosen(*self.cursor))

    def on_click(self, event: events.Click) -> None:
        row, column = event.y - HEAD, (event.x - LABEL) // CELL
        if 0 <= row < len(CLASSES) and 0 <= column < len(CLASSES) and event.x >= LABEL:
            self.cursor = (row, column)
            self.refresh()
            self.action_choose()

    def render(self) -> Text:
        e = self.evaluation
        if e is None:
            return Text("")
        text = Text()
        text.append("true ↓  predicted →", style="bold")
        text.append(f"  {self.title}"[: LABEL + 10 * CELL - 19], style="")
        text.append("\n" + " " * LABEL + "".join(f"{k:>{CELL}}" for k in range(len(CLASSES))), style="dim")
        for t, row in enumerate(e.confusion):
            total = sum(row) or 1
            text.append(f"\n{t} {SHORT[t]:<{LABEL - 2}}", style="bold" if t == self.cursor[0] else "")
            for p, n in enumerate(row):
                style = shade(n / total, t == p)
                if (t, p) == self.cursor and self.has_focus:
                    style += Style(reverse=True, bold=True)
                elif (t, p) == self.cursor:
                    style += Style(underline=True)
                text.append(f"{count_text(n):>{CELL}}", style=style)
        return text

    def describe_cursor(self) -> str:
        t, p = self.cursor
        if self.evaluation is None:
            return ""
        n = self.evaluation.confusion[t][p]
        if t == p:
            return f"{CLASSES[t]}: {n} classified right"
        return f"{CLASSES[t]} taken for {CLASSES[p]}: {n} image{'s' * (n != 1)}"


class RecallBars(Widget):
    """Per-class recall (the share of each class's test images classified right) as bars, in two
    columns of five: it fits under the matrix in an 80x24 terminal."""

    DEFAULT_CSS = "RecallBars { width: 1fr; height: 6; min-width: 40; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.evaluation: Evaluation | None = None

    def show(self, evaluation: Evaluation | None) -> None:
        self.evaluation = evaluation
        self.refresh()

    def render(self) -> Text:
        e = self.evaluation
        if e is None:
            return Text("")
        half = len(CLASSES) // 2
        column = max(20, self.size.width // 2)
        bar_width = column - 13  # label 6, percentage 6, a space between the columns
        text = Text()
        text.append("recall by class", style="bold")
        worst = min(range(len(CLASSES)), key=lambda k: e.per_class[k].recall)
        for row in range(half):
            text.append("\n")
            for k in (row, row + half):
                recall = e.per_class[k].recall
                filled = recall * bar_width
                bar = "█" * int(filled) + (BLOCKS[int((filled % 1) * 8)] if filled < bar_width else "")
                text.append(f"{SHORT[k]:<6}")
                text.append(f"{bar:<{bar_width}}", style="bold red" if k == worst else "green")
                text.append(f"{recall:>6.1%}{'◂' if k == worst else ' '}")  # the worst marked without colour too
        return text
