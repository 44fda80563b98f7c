"""One misclassified test image, large, with the model's three most likely classes."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from fmnist_tui.evaluation import CLASSES, SIDE, Evaluation, Images, Mistake
from fmnist_tui.tui.pictures import Picture
from fmnist_tui.tui.widgets.footer import AppFooter

BAR = 16
ABOUT = 36  # columns for the text beside the picture


def pair(mistake: Mistake, joiner: str) -> Text:
    """'Shirt taken for T-shirt/top': the true class green, the predicted one red."""
    text = Text()
    text.append(CLASSES[mistake.true], style="bold green")
    text.append(joiner)
    text.append(CLASSES[mistake.predicted], style="bold red")
    return text


def top3_text(evaluation: Evaluation, position: int, where: str) -> Text:
    mistake = evaluation.misclassified[position]
    text = pair(mistake, " taken for ")
    text.append(f"\ntest image {mistake.index} · {where}\n\nthe model's top 3:\n", style="dim")
    for k, p in mistake.top3:
        filled = round(p * BAR)
        style = "green" if k == mistake.true else "red" if k == mistake.predicted else ""
        text.append(f"\n{CLASSES[k]:<12}", style=style)
        text.append("█" * filled + "░" * (BAR - filled), style=style)
        text.append(f" {p:6.1%}")
    if all(k != mistake.true for k, _ in mistake.top3):
        text.append(f"\n\n{CLASSES[mistake.true]} is not among them", style="dim")
    text.append("\n\n← → the others · esc back", style="dim")
    return text


def short_text(evaluation: Evaluation, position: int, where: str) -> Text:
    """The same in three lines, under the picture in a small terminal."""
    mistake = evaluation.misclassified[position]
    text = pair(mistake, " as ")
    text.append(f" · {where}\n")
    text.append(" · ".join(f"{CLASSES[k]} {p:.1%}" for k, p in mistake.top3))
    text.append("\n← → the others · esc back", style="dim")
    return text


class PictureScreen(ModalScreen[int]):
    """Dismissed with the place in the list it was left at."""

    DEFAULT_CSS = """
    PictureScreen { align: center middle; }
    PictureScreen > Horizontal { width: auto; height: auto; max-width: 100%; max-height: 100%;
                                 background: $panel; border: round $accent; padding: 0 1; }
    PictureScreen #big { margin-right: 2; }
    PictureScreen #about { width: 36; height: auto; }  /* ABOUT */
    PictureScreen.-narrow > Horizontal { layout: vertical; }
    PictureScreen.-narrow #big { margin-right: 0; }
    PictureScreen.-narrow #about { width: 100%; }
    """
    BINDINGS = [
        Binding("escape,enter", "back", "Back"),
        Binding("left", "step(-1)", "Previous"),
        Binding("right", "step(1)", "Next"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, evaluation: Evaluation, images: Images, positions: list[int], at: int) -> None:
        super().__init__()
        self.evaluation, self.images, self.positions, self.at = evaluation, images, positions, at
        self.compact = False  # a small terminal: the caption under the picture, in three lines

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Picture(id="big")
            with Vertical(id="about"):
                yield Static("", id="about-text")
        yield AppFooter()  # this view's keys, not those of the screen under it

    def on_mount(self) -> None:
        self._fit(self.app.size.width, self.app.size.height)
        self._show()

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        """As large as fits, twice as many columns as rows: beside the full text when that leaves it
        14 rows or more (the gallery's size), else above a three-line caption."""
        rows = min(28, height - 4, (width - ABOUT - 8) // 2)
        self.compact = rows < SIDE // 2
        self.set_class(self.compact, "-narrow")
        if self.compact:
            rows = max(4, min(28, height - 8, (width - 6) // 2))
            box_width = min(width, max(2 * rows, 40) + 4)
        else:
            box_width = 2 * rows + 2 + ABOUT + 4  # margin, border and padding
        picture = self.query_one("#big", Picture)
        picture.styles.width, picture.styles.height = 2 * rows, rows
        self.query_one(Horizontal).styles.width = box_width
        if self.is_mounted:
            self._show()

    def _show(self) -> None:
        position = self.positions[self.at]
        self.query_one("#big", Picture).show(self.images.pixels(position))
        where = f"{self.at + 1:,} of {len(self.positions):,}"
        text = short_text if self.compact else top3_text
        self.query_one("#about-text", Static).update(text(self.evaluation, position, where))

    def action_back(self) -> None:
        self.dismiss(self.at)

    def action_step(self, step: int) -> None:
        self.at = (self.at + step) % len(self.positions)
        self._show()
