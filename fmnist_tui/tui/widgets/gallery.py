"""Misclassified test images as a page of pictures, each captioned `true → predicted (confidence)`.

The page has as many slots as fit; moving past its edge turns the page. Only the slots whose
image changes are redrawn, and each picture's half blocks are rendered once (pictures.py).
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from fmnist_tui.evaluation import CLASSES, SIDE, Evaluation, Images, Mistake
from fmnist_tui.tui.pictures import Picture

SLOT_W, SLOT_H = SIDE + 2, SIDE // 2 + 1  # a picture, its caption, a gap


def caption(mistake: Mistake) -> str:
    text = f"{CLASSES[mistake.true]} → {CLASSES[mistake.predicted]} ({mistake.confidence:.0%})"
    return text if len(text) <= SIDE else text[: SIDE - 1] + "…"


class Slot(Vertical):
    DEFAULT_CSS = f"""
    Slot {{ width: {SLOT_W}; height: {SLOT_H}; padding: 0 1 0 1; }}
    Slot .caption {{ width: {SIDE}; height: 1; }}
    Slot.-selected .caption {{ text-style: bold underline; }}
    """

    def __init__(self, rows: int = SIDE // 2) -> None:
        super().__init__()
        self.rows = rows
        self.shown: tuple[bytes | None, str] = (None, "")
        self.at = 0  # its place in the gallery's list

    def compose(self) -> ComposeResult:
        picture = Picture(self.shown[0])
        if self.rows != SIDE // 2:
            picture.styles.width, picture.styles.height = 2 * self.rows, self.rows
            self.styles.height = self.rows + 1
        yield picture
        yield Static(self.shown[1], classes="caption", markup=False)

    def show(self, pixels: bytes | None, text: str) -> None:
        """Kept, and drawn once the slot has its widgets (a resize may be mounting it, or removing it)."""
        self.shown = (pixels, text)
        for picture in self.query(Picture):
            picture.show(pixels)
        for caption in self.query(".caption").results(Static):
            caption.update(text)


class Gallery(Widget, can_focus=True):
    DEFAULT_CSS = """
    Gallery { layout: grid; grid-size: 1; grid-gutter: 0; height: 1fr; width: 1fr; }
    Gallery:focus Slot.-selected .caption { background: $accent; color: $text; }
    """
    BINDINGS = [
        Binding("left", "move(-1)", "Previous", show=False),
        Binding("right", "move(1)", "Next", show=False),
        Binding("up", "move_row(-1)", "Up", show=False),
        Binding("down", "move_row(1)", "Down", show=False),
        Binding("pageup", "move_page(-1)", "Page up", show=False),
        Binding("pagedown", "move_page(1)", "Page down", show=False),
        Binding("home", "go(0)", "First", show=False),
        Binding("end", "go(-1)", "Last", show=False),
        Binding("enter", "open", "Enlarge"),
    ]

    class Opened(Message):
        """Enter on a picture: show it large (position in the evaluation's list of mistakes)."""

        def __init__(self, positions: list[int], at: int) -> None:
            super().__init__()
            self.positions, self.at = positions, at

    class Moved(Message):
        def __init__(self, gallery: Gallery) -> None:
            super().__init__()
            self.gallery = gallery

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.evaluation: Evaluation | None = None
        self.images: Images | None = None
        self.positions: list[int] = []  # the mistakes shown, as places in evaluation.misclassified
        self.selected = 0
        self.columns, self.rows, self.side = 1, 1, SIDE // 2  # side: picture rows

    @property
    def per_page(self) -> int:
        return self.columns * self.rows

    def show(self, evaluation: Evaluation | None, images: Images | None, positions: list[int]) -> None:
        self.evaluation, self.images, self.positions, self.selected = evaluation, images, positions, 0
        self._draw()

    def on_mount(self) -> None:
        # Slots for the size the gallery will likely have (the screen's, less the matrix beside it and
        # the rows above), made now, while hidden: showing the tab then costs no second layout.
        width, height = self.app.size
        self._fit(width - 50, height - 9)

    def on_resize(self) -> None:
        if self.size.width and self.size.height:
            self._fit(self.size.width, self.size.height)

    def _fit(self, width: int, height: int) -> None:
        columns, rows = max(1, (width + 1) // SLOT_W), max(1, height // SLOT_H)
        # Shorter than one slot: a smaller picture (twice as wide as high), its caption still in view.
        side = SIDE // 2 if rows > 1 or height >= SLOT_H else max(4, height - 1)
        if (columns, rows, side) != (self.columns, self.rows, self.side) or not self.children:
            self.columns, self.rows, self.side = columns, rows, side
            self.styles.grid_size_columns = columns
            self.remove_children()
            self.mount_all(Slot(side) for _ in range(self.per_page))
            self.call_after_refresh(self._draw)

    def _draw(self) -> None:
        slots = list(self.query(Slot))
        first = self.selected - self.selected % max(1, len(slots))
        for n, slot in enumerate(slots):
            at = first + n
            if self.evaluation is not None and self.images is not None and at < len(self.positions):
                position = self.positions[at]
                slot.show(self.images.pixels(position), caption(self.evaluation.misclassified[position]))
                slot.display = True
            else:
                slot.show(None, "")
                slot.display = at < len(self.positions) or n == 0
            slot.set_class(at == self.selected and at < len(self.positions), "-selected")
            slot.at = at
        self.post_message(self.Moved(self))

    def on_click(self, event: events.Click) -> None:
        """A click on a picture selects it; on the one selected, it shows it large (as enter does)."""
        slot = next(
            (w for w in (event.widget, *(event.widget.ancestors if event.widget else ())) if isinstance(w, Slot)), None
        )
        if slot is None or slot.at >= len(self.positions):
            return
        self.focus()
        if slot.at == self.selected:
            self.action_open()
        else:
            self.go(slot.at)

    def go(self, to: int) -> None:
        if self.positions:
            self.selected = max(0, min(len(self.positions) - 1, to))
            self._draw()

    def action_go(self, at: int) -> None:
        self.go(at if at >= 0 else len(self.positions) - 1)

    def action_move(self, step: int) -> None:
        self.go(self.selected + step)

    def action_move_row(self, step: int) -> None:
        self.go(self.selected + step * self.columns)

    def action_move_page(self, step: int) -> None:
        self.go(self.selected + step * self.per_page)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return bool(self.positions) if action == "open" else True  # nothing to enlarge: no key in the footer

    def action_open(self) -> None:
        if self.positions:
            self.post_message(self.Opened(self.positions, self.selected))

    def where(self) -> str:
        if not self.positions:
            return "no images"
        return f"{self.selected + 1:,}/{len(self.positions):,}"
