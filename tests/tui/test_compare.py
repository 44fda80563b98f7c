"""The runs screen's marks, order, filter, notes and trash, and the compare view (Pilot + snapshots),
on fake run folders with fixed curves."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from fmnist_tui.notes import read_note
from fmnist_tui.tui.app import make_app
from fmnist_tui.tui.screens.compare import CompareScreen
from fmnist_tui.tui.screens.modals import ConfirmScreen, NoteScreen
from fmnist_tui.tui.screens.runs import RunsScreen
from fmnist_tui.tui.widgets.compare_plot import ComparePlot
from tests.fake_runs import fake_run, three_runs


@pytest.fixture
def env(tmp_path, monkeypatch, no_builtin_presets):
    """Three runs in a relative runs folder (no tmp path is drawn)."""
    monkeypatch.chdir(tmp_path)
    three_runs(Path("runs"))
    return dict(device="CPU (2 cores)", data_dir="/data/fashion-mnist", runs_dir="runs")


def names(screen: RunsScreen) -> list[str]:
    table = screen.query_one(DataTable)
    return [str(table.get_row_at(n)[1])[:8] for n in range(table.row_count)]


def marks(screen: RunsScreen) -> list[str]:
    table = screen.query_one(DataTable)
    return [str(table.get_row_at(n)[0]) for n in range(table.row_count)]


async def compared(pilot) -> CompareScreen:
    """Mark the three runs, compare them, wait for their curves."""
    await pilot.press("f4")
    pilot.app.screen.query_one(DataTable).move_cursor(row=0)
    await pilot.press("space", "space", "space", "c")
    screen = pilot.app.screen
    assert isinstance(screen, CompareScreen)
    for _ in range(200):
        if screen.sides:
            break
        await pilot.pause(0.02)
    await pilot.pause()
    return screen


async def test_marking_three_runs_and_comparing_them(env):
    async with make_app(**env).run_test(size=(100, 30)) as pilot:
        await pilot.press("f4", "space", "space")
        runs = pilot.app.screen
        assert marks(runs) == ["●A", "xB", ""]  # newest first: A and B are the two newest
        await pilot.press("up", "space")  # unmark B
        assert marks(runs) == ["●A", "", ""]
        await pilot.press("c")
        assert isinstance(pilot.app.screen, RunsScreen)  # one marked: nothing to compare yet
        await pilot.press("escape")  # escape clears the marks
        assert marks(runs) == ["", "", ""]
        screen = await compared(pilot)
        assert [s.info.path.name[:8] for s in screen.sides] == ["20250103", "20250102", "20250101"]
        table = screen.query_one("#compare-table", DataTable)
        rows = {str(table.get_row_at(n)[0]): [str(c) for c in table.get_row_at(n)[1:]] for n in range(table.row_count)}
        assert rows["best val"] == ["86.00%", "89.00%", "84.00%"] and rows["epochs"] == ["3/5", "5/5", "5/5"]
        diff = screen.query_one("#compare-diff", DataTable)
        keys = [str(diff.get_row_at(n)[0]) for n in range(diff.row_count)]
        assert keys == ["optimizer", "lr", "batch_size"]
        plot = screen.query_one("#plot-val_acc", ComparePlot)
        assert "●" in str(plot.render_lines(plot.region.reset_offset)[5:][0:20])  # the markers are drawn
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, RunsScreen)


async def test_at_most_six_runs_are_marked(env):
    for n in range(4):
        fake_run(Path("runs"), f"20250201-00000{n}-more")
    async with make_app(**env).run_test(size=(100, 30)) as pilot:
        await pilot.press("f4", *["space"] * 7)
        assert marks(pilot.app.screen) == ["●A", "xB", "+C", "▲D", "■E", "◆F", ""]
        assert any("At most 6" in n.message for n in pilot.app._notifications)


async def test_sorting_and_filtering(env):
    async with make_app(**env).run_test(size=(100, 30)) as pilot:
        await pilot.press("f4")
        runs = pilot.app.screen
        assert names(runs) == ["20250103", "20250102", "20250101"]
        table = runs.query_one(DataTable)
        await pilot.press("end")
        assert table.cursor_row == 2
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("s")
        assert names(runs) == ["20250102", "20250103", "20250101"] and runs.sort_by == "best val"
        await pilot.press("slash")
        await pilot.pause()
        assert runs.query_one("#runs-filter", Input).has_focus
        await pilot.press(*"lr=0.01")
        await pilot.pause(0.3)  # applied once typing pauses
        assert names(runs) == ["20250102"]
        await pilot.press("enter")  # back to the list, the filter kept
        assert runs.query_one(DataTable).has_focus and names(runs) == ["20250102"]
        await pilot.press("escape")
        assert names(runs) == ["20250102", "20250103", "20250101"]
        await pilot.press("slash", *"status:stopped", "enter")  # enter applies it at once
        assert names(runs) == ["20250103"]


async def test_a_note_and_a_delete(env):
    async with make_app(**env).run_test(size=(100, 30)) as pilot:
        await pilot.press("f4", "n")
        assert isinstance(pilot.app.screen, NoteScreen)
        await pilot.press(*"first try", "enter")
        folder = Path("runs/20250103-180000-demo")
        assert read_note(folder) == "first try"
        assert "✎ first try" in str(pilot.app.screen.query_one("#runs-state").render())
        await pilot.press("d")
        assert isinstance(pilot.app.screen, ConfirmScreen)
        await pilot.press("n")  # no: nothing moves
        assert folder.is_dir()
        await pilot.press("d", "y")
        await pilot.pause()
        assert not folder.exists() and Path("runs/.trash/20250103-180000-demo/note.txt").is_file()
        assert names(pilot.app.screen) == ["20250102", "20250101"]


@pytest.mark.parametrize("tab", ["tab-val_acc", "tab-train_loss", "tab-table"])
def test_compare_view(snap_compare, env, tab):
    async def run_before(pilot) -> None:
        screen = await compared(pilot)
        screen.query_one("#compare-tabs").active = tab
        await pilot.pause()

    assert snap_compare(make_app(**env), terminal_size=(80, 24), run_before=run_before)


def test_runs_screen_with_marks_and_a_note(snap_compare, env):
    async def run_before(pilot) -> None:
        await pilot.press("f4", "space", "down", "space", "up", "n", *"baseline", "enter")
        pilot.app.clear_notifications()  # the toast would cover the line with the note
        await pilot.pause()

    assert snap_compare(make_app(**env), terminal_size=(80, 24), run_before=run_before)
