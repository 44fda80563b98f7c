"""Below 80x24: each screen keeps Quit and its main action in view; the rest is shortened."""

from __future__ import annotations

import pytest
from textual.widgets._footer import FooterKey

from fmnist_tui.engine.events import RunEnded, RunStarted, StepProgress
from fmnist_tui.tui.app import make_app
from fmnist_tui.tui.screens.runs import RunsScreen

# screen key -> its main action
MAIN = {"f2": "start", "f3": "control('stop')", "f4": "open"}


@pytest.fixture
def pretend_run(monkeypatch):
    """A run in progress without training: what is drawn is all these tests look at."""

    def run(host):  # in the worker thread, like RunHost.run
        host.sink(RunStarted("runs/x", "CPU (2 cores)", 5, 40, 200))
        host.sink(StepProgress(0, 10, 200, 10, 40, 1.5, 5000.0, 1.0, 19.0))
        host.stop.wait(60)
        host.sink(RunEnded("stopped", "runs/x", 1.0))
        host.done.set()

    monkeypatch.setattr("fmnist_tui.host.RunHost.run", run)


def visible_actions(app) -> set[str]:
    width = app.size.width
    keys = app.screen.query(FooterKey)
    return {k.action.removeprefix("app.") for k in keys if k.region.width and k.region.right <= width}


@pytest.mark.parametrize("size", [(80, 24), (60, 20), (40, 15)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_quit_and_the_main_action_stay_in_the_footer(presets_dir, tmp_path, wait, pretend_run, size):
    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(tmp_path / "r"), preset="long", start=True)
    async with app.run_test(size=size) as pilot:
        await wait(pilot, lambda: app.state.progress is not None, timeout=10)
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
async def test_the_quit_question_fits_a_small_terminal(presets_dir, tmp_path, wait, keys, pretend_run, size):
    from fmnist_tui.tui.screens.modals import QuitRunScreen

    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(tmp_path / "r"), preset="long", start=True)
    async with app.run_test(size=size) as pilot:
        await wait(pilot, lambda: app.state.progress is not None, timeout=10)
        await keys(pilot, "q")
        await wait(pilot, lambda: isinstance(app.screen, QuitRunScreen))
        await pilot.pause(0.2)
        screen = app.screen.region
        for button in app.screen.query("Button"):
            assert screen.contains_region(button.region), (str(button.label), button.region)
            assert button.region.width >= len(str(button.label)), str(button.label)  # the whole label
        await keys(pilot, "n")
        app.stop_run()
        await wait(pilot, lambda: not app.run_in_progress, timeout=30)
