"""Live runs with the real engine on a few hundred synthetic images."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Static

from fmnist_tui.tui.app import make_app
from fmnist_tui.tui.screens.detail import RunDetailScreen
from fmnist_tui.tui.screens.modals import QuitRunScreen
from fmnist_tui.tui.screens.run import RunScreen
from fmnist_tui.tui.screens.runs import RunsScreen
from fmnist_tui.tui.screens.setup import SetupScreen
from fmnist_tui.tui.widgets.confusion import ConfusionGrid
from fmnist_tui.tui.widgets.epoch_table import EpochTable
from fmnist_tui.tui.widgets.insight import InsightView


def result(app) -> str:
    return str(app.screen.query_one("#result", Static).render())


async def test_run_updates_live_then_finishes_and_is_listed(presets_dir, tmp_path, wait):
    runs = tmp_path / "runs-here"
    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(runs), preset="tiny",
                   start=True, overrides={"epochs": 4})  # fmt: skip
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot, lambda: isinstance(app.screen, RunScreen) and len(app.screen.query(EpochTable)) == 1)
        table = app.screen.query_one(EpochTable)
        rows_while_running = set()

        def progressed() -> bool:
            if app.run_in_progress:
                rows_while_running.add(table.row_count)
            return not app.run_in_progress

        await wait(pilot, progressed, timeout=60, step=0.02)
        await pilot.pause(0.3)
        state = app.state
        assert state.ended.status == "finished", state.ended
        assert max(rows_while_running) >= 1  # the epoch table filled in while training
        assert table.row_count == 4 and len(state.epochs) == 4
        assert len(state.losses) >= 4  # per-step losses reached the chart
        assert state.progress.step == state.progress.total_steps
        text = result(app)
        assert "finished" in text and "test acc" in text and str(runs) in text
        assert not app.screen.query_one("#stop", Button).display  # nothing to stop: no button, no footer key
        insight = app.screen.query_one(InsightView)  # read once, at the end: what the test images got
        await wait(pilot, lambda: insight.evaluation is not None)
        assert insight.evaluation.accuracy == state.ended.test_acc and insight.path == Path(state.ended.run_dir)
        app.screen.query_one("#run-tabs").active = "tab-insight"
        await pilot.pause()
        app.screen.query_one(ConfusionGrid).focus()  # as tab does from the tabs
        await pilot.press("enter")
        assert insight.filter is not None or not insight.evaluation.misclassified
        assert "stop" not in {b.binding.action for b in app.screen.active_bindings.values()}

        # the runs screen lists it; opening it shows config, curves and epochs
        await pilot.press("f4")
        await wait(pilot, lambda: isinstance(app.screen, RunsScreen))
        listing = app.screen.query_one("#runs-table")
        assert listing.row_count == 1
        assert "finished" in str(listing.get_row_at(0)[2])
        assert str(listing.get_row_at(0)[1]) == next(runs.iterdir()).name  # the name --resume takes
        await pilot.press("enter")
        await wait(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        detail = app.screen
        assert detail.query_one(EpochTable).row_count == 4
        assert detail.query_one("#detail-config").row_count >= 20
        assert "test acc" in str(detail.query_one("#detail-summary", Static).render())
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_responsive_while_training_then_stop_keeps_checkpoint(presets_dir, tmp_path, wait, keys):
    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(tmp_path / "r"), preset="long", start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot, lambda: app.state.progress is not None, timeout=60)
        tabs = app.screen.query_one("#run-tabs")
        await keys(pilot, "right", "right")  # the tab bar has focus: Chart -> Epochs -> Log
        assert tabs.active == "tab-log"
        await wait(pilot, lambda: len(app.screen.query_one("#log").lines) > 0)
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.2)
        await pilot.resize_terminal(80, 24)
        step = app.state.progress.step
        await wait(pilot, lambda: app.state.progress.step > step)  # still training, still drawn
        assert app.run_in_progress
        await keys(pilot, "s")
        await wait(pilot, lambda: not app.run_in_progress, timeout=20)
        await pilot.pause(0.2)
        end = app.state.ended
        assert end.status == "stopped"
        assert end.checkpoint and Path(end.checkpoint).is_file()
        assert "stopped" in result(app) and "checkpoint" in result(app)


async def test_failures_are_shown_and_the_app_keeps_working(presets_dir, tmp_path, wait, keys, monkeypatch):
    runs = tmp_path / "r"
    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(runs), preset="nan", start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        # 1. NaN loss: the engine reports the run as diverged
        await wait(pilot, lambda: app.state.config is not None and not app.run_in_progress, timeout=60)
        await pilot.pause(0.2)
        assert app.state.ended.status == "diverged"
        assert "nan" in result(app).lower()

        # 2. an exception inside the run (here: building the model)
        def broken(*args, **kwargs):
            raise RuntimeError("model builder exploded")

        monkeypatch.setattr("fmnist_tui.engine.module.Classifier", broken)
        await pilot.press("f2")
        await wait(pilot, lambda: isinstance(app.screen, SetupScreen))
        await keys(pilot, "ctrl+r")
        await wait(pilot, lambda: app.state.ended is not None and not app.run_in_progress, timeout=30)
        await pilot.pause(0.2)
        assert app.state.ended.status == "failed"
        assert "model builder exploded" in result(app)
        assert any("exploded" in line.text for line in app.state.logs)  # traceback in the log pane

        # 3. the runs folder cannot be used: RunStoreError raised by run() is shown too
        monkeypatch.undo()
        app.runs_dir = str(tmp_path / "a-file")
        (tmp_path / "a-file").write_text("not a folder")
        await pilot.press("f2")
        await keys(pilot, "ctrl+r")
        await wait(pilot, lambda: app.state.ended is not None and not app.run_in_progress, timeout=30)
        await pilot.pause(0.2)
        assert app.state.ended.status == "failed" and "not writable" in result(app)

        # 4. fix the form, start again: it works
        app.runs_dir = str(runs)
        await pilot.press("f2")
        await wait(pilot, lambda: isinstance(app.screen, SetupScreen))
        lr = app.screen.query_one("#field-lr")
        lr.value = "0.01"
        await pilot.pause()
        await keys(pilot, "ctrl+r")
        await wait(pilot, lambda: app.state.ended is not None and not app.run_in_progress, timeout=60)
        assert app.state.ended.status == "finished"


async def test_quit_during_a_run_asks_then_stops_and_exits(presets_dir, tmp_path, wait, keys):
    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(tmp_path / "r"), preset="long", start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot, lambda: app.state.progress is not None, timeout=60)
        await keys(pilot, "q")
        await wait(pilot, lambda: isinstance(app.screen, QuitRunScreen))
        await keys(pilot, "f4", "f2", "f3")  # no other screen while the question is open
        assert isinstance(app.screen, QuitRunScreen) and app.current_mode == "run"
        await keys(pilot, "n")  # keep running
        assert app.run_in_progress and not isinstance(app.screen, QuitRunScreen)
        await keys(pilot, "f4")  # asked from the runs screen: one dialog, none left on the live view
        await wait(pilot, lambda: isinstance(app.screen, RunsScreen))
        await keys(pilot, "q")
        await wait(pilot, lambda: isinstance(app.screen, QuitRunScreen))
        assert len([s for s in app.screen_stack if isinstance(s, QuitRunScreen)]) == 1
        await keys(pilot, "n")
        await keys(pilot, "f3")
        await wait(pilot, lambda: isinstance(app.screen, RunScreen))
        await keys(pilot, "q")
        await wait(pilot, lambda: isinstance(app.screen, QuitRunScreen))
        await keys(pilot, "s")  # stop the run (b would keep it going in a background process)
        await wait(pilot, lambda: not app.is_running, timeout=20)
    assert app.state.ended is not None and app.state.ended.status == "stopped"
    assert app.return_code in (0, None)


async def test_quit_when_idle_needs_no_question(presets_dir, wait):
    app = make_app(device="CPU", presets_dirs=[presets_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")  # the live screen with no run yet
        await pilot.press("q")
        await wait(pilot, lambda: not app.is_running, timeout=5)


async def test_text_from_run_files_is_escaped_in_the_runs_table_and_detail(presets_dir, tmp_path, wait):
    import json

    runs = tmp_path / "hostile-runs"
    folder = runs / "20260101-000000-x\x1b[2J"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.toml").write_text('name = "evil\\u001b[2J"\nlr = "\\u001b[31mred"\n')
    (folder / "summary.json").write_text(json.dumps({
        "status": "finished", "started": "\x1b]0;title\x07", "error": "boom \x1b[2J", "test_acc": 0.5,
        "test_checkpoint": "best\x1b[2J.ckpt", "test_epoch": 2, "best_val_acc": 10**400, "duration_s": 1e308,
        "test_loss": "abc", "last_test_acc": 1e308, "last_test_epoch": -5,
    }))  # fmt: skip
    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(runs))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        await wait(
            pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one("#runs-table").row_count == 1
        )
        cells = [str(c) for c in app.screen.query_one("#runs-table").get_row_at(0)]
        assert "20260101-000000-x\\x1b[2J" in cells and not any("\x1b" in c or "\x07" in c for c in cells)
        await pilot.press("enter")
        await wait(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        text = str(app.screen.query_one("#detail-summary", Static).render())
        assert (
            "evil\\x1b[2J" in text
            and "boom \\x1b[2J" in text
            and "(best\\x1b[2J.ckpt, epoch 3)" in text
            and "\x1b" not in text
        )
        assert "test loss -" in text and "last weights: test acc -" in text  # not numbers: shown as "-"
        config = app.screen.query_one("#detail-config")
        values = [str(v) for i in range(config.row_count) for v in config.get_row_at(i)]
        assert values and not any("\x1b" in v for v in values)


async def test_the_live_view_with_no_run_offers_nothing_to_stop(presets_dir, wait, screen_text):
    app = make_app(device="CPU", presets_dirs=[presets_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await wait(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.pause()
        assert not app.screen.query_one("#stop", Button).display
        assert "stop" not in {b.binding.action for b in app.screen.active_bindings.values()}
        screen = screen_text(app)
        assert "No run yet" in screen and "waiting for the first step" not in screen and "Stop" not in screen


async def test_a_long_failure_is_readable_whole_at_80x24(presets_dir, tmp_path, wait, monkeypatch, screen_text):
    from fmnist_tui.engine.idx import DataError

    words = " ".join(f"word{i}" for i in range(60))
    message = f"Fashion-MNIST is not here ({words}). Copy the four IDX files into the folder: the how-to-fix sentence."

    def missing(self):
        raise DataError(message)

    monkeypatch.setattr("fmnist_tui.engine.data.FashionData.load", missing)
    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(tmp_path / "r"), preset="tiny", start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot, lambda: app.state.ended is not None and not app.run_in_progress, timeout=30)
        await pilot.pause(0.3)
        app.clear_notifications()
        await pilot.pause()
        box = app.screen.query_one("#result-box")
        assert box.max_scroll_y == 0, "the whole message fits on the screen"
        assert "the how-to-fix sentence" in result(app) and "how-to-fix" in screen_text(app)
        assert any("how-to-fix sentence" in line.text for line in app.state.logs)  # and in the Log tab
