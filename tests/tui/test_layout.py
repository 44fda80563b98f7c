"""Below 80x24: each screen keeps Quit and its main action in view; the rest is shortened."""

from __future__ import annotations

import pytest
from textual.widgets._footer import FooterKey

from fmnist_tui.tui.app import make_app
from fmnist_tui.tui.screens.runs import RunsScreen

# screen key -> its main action
MAIN = {"f2": "start", "f3": "stop", "f4": "open"}


def visible_actions(app) -> set[str]:
    width = app.size.width
    keys = app.screen.query(FooterKey)
    return {k.action.removeprefix("app.") for k in keys if k.region.width and k.region.right <= width}


@pytest.mark.parametrize("size", [(80, 24), (60, 20), (40, 15)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_quit_and_the_main_action_stay_in_the_footer(presets_dir, tmp_path, wait, size):
    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(tmp_path / "r"), preset="long", start=True)
    async with app.run_test(size=size) as pilot:
        await wait(pilot, lambda: app.state.progress is not None, timeout=60)
        for key, main in MAIN.items():
            await pilot.press(key)
            await pilot.pause(0.2)
            shown = visible_actions(app)
            assert {"quit", main} <= shown, (key, shown)
            if key == "f2":
                start = app.screen.query_one("#start")
                assert str(start.label) == "Start ▶" and start.region.right <= size[0]
        assert isinstance(app.screen, RunsScreen)
        app.stop_run()
        await wait(pilot, lambda: not app.run_in_progress, timeout=30)


@pytest.mark.parametrize("size", [(60, 20), (40, 15), (30, 10)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_quit_question_fits_a_small_terminal(presets_dir, tmp_path, wait, keys, size):
    from fmnist_tui.tui.screens.modals import ConfirmScreen

    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(tmp_path / "r"), preset="long", start=True)
    async with app.run_test(size=size) as pilot:
        await wait(pilot, lambda: app.state.progress is not None, timeout=60)
        await keys(pilot, "q")
        await wait(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.2)
        screen = app.screen.region
        for button in app.screen.query("Button"):
            assert screen.contains_region(button.region), (str(button.label), button.region)
            assert button.region.width >= len(str(button.label)), str(button.label)  # the whole label
        await keys(pilot, "n")
        app.stop_run()
        await wait(pilot, lambda: not app.run_in_progress, timeout=30)
