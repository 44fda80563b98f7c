"""The Insight tab: the confusion matrix, recall by class, and the misclassified images.

It reads the run's evaluation.json (and its images) in a thread once, when shown, and
draws from that: nothing here runs on a progress tick. What cannot be read is one line in
the tab; the run's other tabs go on working.
"""

from __future__ import annotations

from pathlib import Path

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from fmnist_tui.evaluation import CLASSES, Evaluation, EvaluationError, Images, outdated, read_with_images
from fmnist_tui.format import epoch_number, failure_text, pct, printable
from fmnist_tui.tui.screens.picture import PictureScreen
from fmnist_tui.tui.widgets.confusion import ConfusionGrid, RecallBars
from fmnist_tui.tui.widgets.gallery import Gallery


class Loaded(Message):
    def __init__(self, path: Path, evaluation: Evaluation | None, images: Images | None, problem: str,
                 note: str = "") -> None:  # fmt: skip
        super().__init__()
        self.path, self.evaluation, self.images, self.problem, self.note = path, evaluation, images, problem, note


def load(path: Path) -> Loaded:
    try:
        evaluation, images = read_with_images(path)
        return Loaded(path, evaluation, images, "", outdated(evaluation, path))
    except EvaluationError as err:
        return Loaded(path, None, None, str(err))
    except Exception as err:  # noqa: BLE001 - whatever the folder holds, the tab says so in one line
        return Loaded(path, None, None, f"the evaluation cannot be read: {failure_text(err)}")


class InsightView(Widget):
    BINDINGS = [Binding("escape", "show_all", "All mistakes")]
    DEFAULT_CSS = """
    InsightView { height: 1fr; }
    InsightView #insight-body { height: 1fr; }
    InsightView #insight-left { width: 50; height: 1fr; overflow-y: auto; }
    /* Below 80 columns the pictures go under the matrix, and the whole tab scrolls. */
    InsightView.-narrow #insight-body { layout: vertical; overflow: auto auto; }
    InsightView.-narrow #insight-left { height: auto; overflow-y: hidden; }
    InsightView.-narrow Gallery { height: 16; }
    InsightView #insight-where { height: 2; padding: 0 1 0 0; }
    InsightView #insight-message { height: auto; padding: 1 1; }
    InsightView #insight-note { height: auto; color: $warning; display: none; }
    InsightView RecallBars { width: 48; }
    """

    def __init__(self, placeholder: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.placeholder = placeholder
        self.path: Path | None = None
        self.evaluation: Evaluation | None = None
        self.images: Images | None = None
        self.filter: tuple[int, int] | None = None

    def compose(self) -> ComposeResult:
        yield Static(self.placeholder, id="insight-message", markup=False)
        yield Static("", id="insight-note", markup=False)
        with Horizontal(id="insight-body"):
            with Vertical(id="insight-left"):
                yield ConfusionGrid()
                yield Static("", id="insight-where", markup=False)
                yield RecallBars()
            yield Gallery()

    def on_mount(self) -> None:
        self.query_one("#insight-body").display = False

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < 78, "-narrow")

    def clear(self) -> None:
        """Back to the placeholder (a new run in the live view)."""
        self.path, self.evaluation, self.images, self.filter = None, None, None, None
        note = self.query_one("#insight-message", Static)
        note.update(self.placeholder)
        note.display = True
        self.query_one("#insight-body").display = False
        self.query_one("#insight-note").display = False

    def show_run(self, path: Path) -> None:
        """Read `path`'s evaluation (again, if it changed on disk) in a thread; draw it when read."""
        self.path = path
        self._read(path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="insight")
    def _read(self, path: Path) -> None:
        self.post_message(load(path))

    def on_loaded(self, message: Loaded) -> None:
        if message.path != self.path:
            return  # another run was asked for meanwhile
        self.evaluation, self.images = message.evaluation, message.images
        body, note = self.query_one("#insight-body"), self.query_one("#insight-message", Static)
        note.update(printable(message.problem))
        note.display = bool(message.problem)
        body.display = message.evaluation is not None
        outdated_note = self.query_one("#insight-note", Static)
        outdated_note.update(printable(message.note))
        outdated_note.display = bool(message.note) and message.evaluation is not None
        if message.evaluation is None:
            return
        e = message.evaluation
        epoch = epoch_number(e.epoch)
        title = f"{e.checkpoint.removesuffix('.ckpt')}{f' epoch {epoch}' if epoch else ''}: {pct(e.accuracy)}"
        self.query_one(ConfusionGrid).show(e, title)
        self.query_one(RecallBars).show(e)
        self._filter(None)

    def _filter(self, cell: tuple[int, int] | None) -> None:
        assert self.evaluation is not None
        self.filter = cell
        positions = self.evaluation.mistakes(*cell) if cell else self.evaluation.mistakes()
        self.query_one(Gallery).show(self.evaluation, self.images, positions)

    def on_confusion_grid_cell_chosen(self, event: ConfusionGrid.CellChosen) -> None:
        event.stop()
        if self.evaluation is None:
            return
        if event.true == event.predicted:  # right answers have no pictures kept: say so, show the mistakes
            self._filter(None)
            n = self.evaluation.confusion[event.true][event.true]
            self.query_one("#insight-where", Static).update(
                f"{CLASSES[event.true]}: {n:,} right (only mistakes are kept)\n{self.query_one(Gallery).where()} of all mistakes"
            )
        else:
            self._filter((event.true, event.predicted))
            if self.query_one(Gallery).positions:
                self.query_one(Gallery).focus()

    def on_gallery_moved(self, event: Gallery.Moved) -> None:
        event.stop()
        gallery = event.gallery
        if self.filter is None and not gallery.positions:
            what = "no mistakes: every image right"
        elif self.filter is None:
            what = f"all {len(gallery.positions):,} mistakes, most confident first"
        else:
            t, p = self.filter
            what = f"{CLASSES[t]} taken for {CLASSES[p]}"
        if not gallery.positions:
            keys = "esc: all" if self.filter else ""
        elif self.filter:
            keys = "enter: enlarge · esc: all"
        else:
            keys = "tab: to the matrix, enter on a cell: its images"
        self.query_one("#insight-where", Static).update(f"{what}\n{gallery.where()}{' · ' + keys if keys else ''}")

    def on_gallery_opened(self, event: Gallery.Opened) -> None:
        event.stop()
        if self.evaluation is not None and self.images is not None:
            gallery = self.query_one(Gallery)
            shown = gallery.positions

            def back(at: int | None) -> None:
                if at is not None and gallery.positions is shown:
                    gallery.go(at)  # where the large view was left: the gallery goes on from there

            self.app.push_screen(PictureScreen(self.evaluation, self.images, event.positions, event.at), back)

    def action_show_all(self) -> None:
        self._filter(None)
        self.query_one(ConfusionGrid).focus()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "show_all":
            return self.filter is not None  # otherwise escape goes on to the screen (back)
        return True
