"""The Insight tab: the confusion grid, recall bars, the gallery and the large picture (Pilot + snapshots)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmnist_tui import evaluation
from fmnist_tui.evaluation import CLASSES
from fmnist_tui.runs import RunStore
from fmnist_tui.tui.app import make_app
from fmnist_tui.tui.screens.detail import RunDetailScreen
from fmnist_tui.tui.screens.picture import PictureScreen
from fmnist_tui.tui.widgets.confusion import ConfusionGrid
from fmnist_tui.tui.widgets.gallery import Gallery, Slot
from fmnist_tui.tui.widgets.insight import InsightView
from tests.evaluations import write_evaluated_run

NAME = "20250101-120000-mlp"


@pytest.fixture
def insight_env(tmp_path, monkeypatch, no_builtin_presets):
    """A run with a known evaluation; relative folders, so no tmp path is drawn."""
    monkeypatch.chdir(tmp_path)
    write_evaluated_run(Path("runs") / NAME)
    return dict(device="CPU (2 cores)", data_dir="/data/fashion-mnist", runs_dir="runs")


def open_insight(keys: tuple[str, ...] = ()):
    """Open the run's detail, its Insight tab, wait for the evaluation, then press `keys`."""

    async def run_before(pilot) -> None:
        app = pilot.app
        app.push_screen(RunDetailScreen(RunStore(Path("runs")).info(Path("runs") / NAME)))
        await pilot.pause()
        app.screen.query_one("#detail-tabs").active = "tab-insight"
        for _ in range(100):
            if app.screen.query_one(InsightView).evaluation is not None:
                break
            await pilot.pause(0.02)
        await pilot.pause()
        app.screen.query_one(ConfusionGrid).focus()  # as tab does from the tabs
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.1)

    return run_before


# -- snapshots ------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_insight_tab(snap_compare, insight_env, size):
    assert snap_compare(make_app(**insight_env), terminal_size=size, run_before=open_insight())


def test_insight_cell_filters_the_gallery(snap_compare, insight_env):
    """Down to Pullover, right to Coat (two from Shirt→Top's cell), enter: only Pullover taken for Coat."""
    keys = ("up", "up", "up", "up", "right", "right", "right", "right", "enter")
    assert snap_compare(make_app(**insight_env), terminal_size=(120, 40), run_before=open_insight(keys))


def test_insight_large_picture(snap_compare, insight_env):
    keys = ("enter", "right", "enter")
    assert snap_compare(make_app(**insight_env), terminal_size=(80, 24), run_before=open_insight(keys))


# -- behaviour ------------------------------------------------------------------------------
async def test_cells_filter_pages_and_enlarge(insight_env):
    app = make_app(**insight_env)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_insight()(pilot)
        view, grid, gallery = (
            app.screen.query_one(InsightView),
            app.screen.query_one(ConfusionGrid),
            app.screen.query_one(Gallery),
        )
        assert grid.has_focus and grid.cursor == (6, 0)  # the most frequent confusion first
        await pilot.press("shift+tab", "right")  # the tabs keep the arrows: to Config, and back
        assert app.screen.query_one("#detail-tabs").active == "tab-config"
        await pilot.press("left", "tab")
        assert grid.has_focus
        assert len(gallery.positions) == 40 and gallery.per_page == 4  # all the mistakes, 2x2 at 120x40
        confidences = [view.evaluation.misclassified[p].confidence for p in gallery.positions]
        assert confidences == sorted(confidences, reverse=True)

        from fmnist_tui.tui.pictures import halfcell_strips

        renders = halfcell_strips.cache_info().misses
        await pilot.press("up", "down", "left", "right")  # the matrix redraws; no picture is rendered again
        assert halfcell_strips.cache_info().misses == renders and grid.cursor == (6, 0)
        await pilot.press("enter")  # Shirt taken for T-shirt/top
        assert gallery.has_focus and view.filter == (6, 0)
        shown = [view.evaluation.misclassified[p] for p in gallery.positions]
        assert len(shown) == 20 and all((m.true, m.predicted) == (6, 0) for m in shown)
        assert "Shirt taken for T-shirt/top" in str(app.screen.query_one("#insight-where").render())

        for _ in range(5):  # past the page's four: the next page
            await pilot.press("right")
        assert gallery.selected == 5 and "6/20" in gallery.where()
        await pilot.press("enter")
        assert isinstance(app.screen, PictureScreen)
        text = str(app.screen.query_one("#about-text").render())
        mistake = shown[5]
        assert f"test image {mistake.index}" in text and "Shirt taken for T-shirt/top" in text
        assert f"{mistake.top3[0][1]:6.1%}" in text and f"{mistake.top3[1][1]:6.1%}" in text
        await pilot.press("right")  # the next one, in the large view too
        assert f"test image {shown[6].index}" in str(app.screen.query_one("#about-text").render())
        await pilot.press("escape")
        assert isinstance(app.screen, RunDetailScreen)

        await pilot.press("escape")  # the filter goes first, then the screen
        assert view.filter is None and len(gallery.positions) == 40 and isinstance(app.screen, RunDetailScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, RunDetailScreen)


async def test_a_click_on_a_picture_selects_it_and_a_second_enlarges_it(insight_env):
    app = make_app(**insight_env)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_insight()(pilot)
        gallery = app.screen.query_one(Gallery)
        second = list(gallery.query(Slot))[1]
        await pilot.click(second, offset=(10, 5))
        assert gallery.selected == 1 and gallery.has_focus
        await pilot.click(second, offset=(10, 5))
        assert isinstance(app.screen, PictureScreen) and app.screen.at == 1


async def test_a_click_on_a_cell_filters(insight_env):
    app = make_app(**insight_env)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_insight()(pilot)
        grid = app.screen.query_one(ConfusionGrid)
        # Coat's row (4), Pullover's column (2): row 2 + 4 of the grid, column 8 + 2 * 4 + 2
        await pilot.click(ConfusionGrid, offset=(8 + 2 * 4 + 3, 2 + 4))
        assert grid.cursor == (4, 2)
        view = app.screen.query_one(InsightView)
        assert view.filter == (4, 2)
        assert {(view.evaluation.misclassified[p].true, view.evaluation.misclassified[p].predicted)
                for p in app.screen.query_one(Gallery).positions} == {(4, 2)}  # fmt: skip


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda run: (run / evaluation.FILE).unlink(), "no evaluation.json yet"),
        (lambda run: (run / evaluation.FILE).write_text("\x1b[2J{not json"), "evaluation.json is damaged"),
        (lambda run: (run / evaluation.FILE).write_text('{"version": 0, "accuracy": 1}'), "another version"),
        (lambda run: next(run.glob("evaluation-images-*")).write_bytes(b"\0" * 20), "does not hold the 40 images"),
    ],
    ids=["missing", "garbage", "old", "images"],
)
async def test_a_bad_evaluation_is_one_line_and_the_other_tabs_work(insight_env, damage, said):
    damage(Path("runs") / NAME)
    app = make_app(**insight_env)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_insight()(pilot)
        view = app.screen.query_one(InsightView)
        for _ in range(50):
            if view.query_one("#insight-message").display and said in str(view.query_one("#insight-message").render()):
                break
            await pilot.pause(0.02)
        message = str(view.query_one("#insight-message").render())
        assert said in message and "\x1b" not in message and "fmnist-tui eval" in message
        assert not view.query_one("#insight-body").display
        app.screen.query_one("#detail-tabs").active = "tab-config"
        await pilot.pause()
        assert app.screen.query_one("#detail-config").row_count >= 1


def test_halfcell_picture_is_pixel_for_pixel():
    """A 28x28 pattern in 28 columns by 14 rows: '▀', the upper pixel as colour, the lower as background."""
    from fmnist_tui.tui.pictures import halfcell_strips

    pixels = bytes(
        (x * 9 + y * 5) % 256 if (x // 4 + y // 4) % 2 else 255 - (x + y) for y in range(28) for x in range(28)
    )
    strips = halfcell_strips(pixels, 28, 14)
    assert len(strips) == 14
    for row, strip in enumerate(strips):
        segments = [s for s in strip if s.text]
        assert "".join(s.text for s in segments) == "▀" * 28
        for x, segment in enumerate(segments):
            top, bottom = pixels[2 * row * 28 + x], pixels[(2 * row + 1) * 28 + x]
            assert segment.style.color.triplet == (top, top, top)
            assert segment.style.bgcolor.triplet == (bottom, bottom, bottom)


def test_grid_reads_without_colour():
    """NO_COLOR keeps every count, '·' for zero, bold diagonal and the cursor reversed or underlined."""
    grid = ConfusionGrid()
    grid.show(evaluation.read(write_evaluated_run(Path(__import__("tempfile").mkdtemp()) / NAME)))
    text = grid.render()
    lines = text.plain.splitlines()
    assert lines[3].split() == ["1", "Trous", "·", "100", "·", "·", "·", "·", "·", "·", "·", "·"]
    assert lines[8].split()[2] == "20" and CLASSES[6].startswith(lines[8].split()[1])
    styles = [span.style for span in text.spans]
    assert any(getattr(s, "bold", False) for s in styles) and any(getattr(s, "underline", False) for s in styles)


@pytest.mark.parametrize("mode", ["sixel", "kitty"])
async def test_graphics_terminals_get_textual_image_widgets(insight_env, monkeypatch, mode):
    """Where the terminal draws pictures itself, each picture is textual-image's widget for it."""
    from textual_image.widget import SixelImage, TGPImage

    from fmnist_tui.tui import pictures

    monkeypatch.setattr(pictures, "_mode", mode)
    app = make_app(**insight_env)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_insight(("enter", "right", "enter"))(pilot)
        assert isinstance(app.screen, PictureScreen)
        big = app.screen.query_one("#big", pictures.Picture)
        kind = SixelImage if mode == "sixel" else TGPImage
        assert isinstance(big._graphic, kind) and big._graphic.image is not None
        await pilot.press("right")  # the next image replaces the picture, no new widget
        assert big.query(kind).first() is big._graphic
        assert "<svg" in app.export_screenshot()  # drawn without an error


async def test_resizing_while_open_keeps_the_app_and_the_place(insight_env):
    """Quick resizes remount the gallery's slots while it draws; the large view tells the gallery where it was left."""
    app = make_app(**insight_env)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_insight(("enter",))(pilot)
        gallery = app.screen.query_one(Gallery)
        for width, height in [(100, 30), (60, 20), (120, 40), (40, 15), (79, 24), (80, 24)] * 2:
            await pilot.resize_terminal(width, height)
            await pilot.pause(0.01)
        await pilot.pause(0.2)
        assert app.is_running and gallery.positions and len(gallery.query(Slot)) == gallery.per_page
        await pilot.press("enter", "right", "right")  # the third of the cell's images, large
        await pilot.resize_terminal(40, 15)
        await pilot.resize_terminal(80, 24)
        await pilot.press("escape")
        assert gallery.selected == 2 and gallery.where().startswith("3/")


def test_an_evaluation_of_weights_that_changed_says_so(tmp_path):
    """A resume found a new best after the evaluation: the tab says which weights its figures are of."""
    run = write_evaluated_run(tmp_path / NAME)  # evaluated at step 4300, best.ckpt's then
    header = "kind,epoch,step,train_loss,val_loss,val_acc,lr,seconds,test_loss,test_acc,weights\n"
    rows = "epoch,4,4300,0.3,0.3,0.90,0.001,1,,,\n"
    (run / "metrics.csv").write_text(header + rows)
    assert evaluation.outdated(evaluation.read(run), run) == ""
    (run / "metrics.csv").write_text(header + rows + "epoch,5,5160,0.2,0.2,0.91,0.001,1,,,\n")
    note = evaluation.outdated(evaluation.read(run), run)
    assert "best.ckpt has changed since this evaluation (step 4300, now 5160)" in note and "fmnist-tui eval" in note


async def test_home_and_end_reach_the_ends_of_the_gallery(insight_env):
    app = make_app(**insight_env)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_insight(("enter",))(pilot)  # Shirt taken for a T-shirt: 20 images, one a page here
        gallery = app.screen.query_one(Gallery)
        await pilot.press("end")
        assert gallery.selected == 19 and gallery.where() == "20/20"
        await pilot.press("home")
        assert gallery.selected == 0
