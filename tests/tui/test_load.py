"""The app under load: a flood of engine events, and a runs folder with 1,000 runs.

What must hold whatever the machine: every key is answered, no epoch, log line or loss
point is dropped, every run is listed. How fast, on this machine: bench/app_load.py.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import threading
from pathlib import Path

from textual import events
from textual.widgets import DataTable

from fmnist_tui.config import RunConfig
from fmnist_tui.engine.events import RunStarted
from fmnist_tui.tui.app import make_app
from fmnist_tui.tui.relay import Relay
from fmnist_tui.tui.screens.run import RunScreen
from fmnist_tui.tui.screens.runs import RunsScreen
from fmnist_tui.tui.state import RunState

_spec = importlib.util.spec_from_file_location("app_load", Path(__file__).parents[2] / "bench" / "app_load.py")
app_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(app_load)

RATE, SECONDS, PRESSES = 10_000, 3.0, 5  # ~500x what the engine sends at its default progress_hz


def collect_leftovers() -> None:
    """Earlier tests in this process leave their apps as garbage; a real app process has none of it."""
    gc.unfreeze()
    gc.collect()


async def test_keys_are_answered_and_nothing_is_dropped_under_10k_events_a_second(presets_dir, wait):
    collect_leftovers()
    app = make_app(device="CPU", presets_dirs=[presets_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await wait(pilot, lambda: isinstance(app.screen, RunScreen))
        app.run_id += 1  # what start_run would do, with this thread standing in for the engine
        app.state = RunState(config=RunConfig(name="load"))
        relay = app._relay = Relay(app, app.run_id)
        relay(RunStarted("/runs/load", "CPU", 10**6, app_load.SPE, 10**9))
        await wait(pilot, lambda: app.state.started is not None)
        assert gc.get_freeze_count() > 0  # the heap is frozen once the run has started (torch loaded)
        tabs = app.screen.query_one("#run-tabs")
        counts = {"epochs": 0, "logs": 0, "steps": 0}
        stop = threading.Event()
        thread = threading.Thread(target=app_load.flood, args=(relay, stop, counts, RATE, SECONDS), daemon=True)
        thread.start()
        try:
            for _ in range(PRESSES):
                before = tabs.active
                key = events.Key("right", None)  # the tab bar has focus: next tab
                key.set_sender(app)
                app._driver.send_message(key)
                await wait(pilot, lambda before=before: tabs.active != before, step=0.001)  # answered, however busy
                await asyncio.sleep(0.3)
            await wait(pilot, lambda: not thread.is_alive(), timeout=SECONDS + 30)
        finally:
            stop.set()
            thread.join(timeout=5)
        await wait(pilot, lambda: app.state.progress is not None and app.state.progress.step == counts["steps"])
        await pilot.pause(0.2)
        state = app.state
        assert counts["steps"] > RATE  # the flood really was a flood
        # collapsing dropped no epoch, log line or point of the loss curve's range
        assert len(state.epochs) == counts["epochs"] and state.logs_total == counts["logs"]
        assert state.losses[-1][0] == counts["steps"]


async def test_the_runs_screen_lists_1000_runs(presets_dir, tmp_path, wait):
    runs = tmp_path / "many-runs"
    app_load.write_runs(runs, 1_000)
    collect_leftovers()
    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(runs))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f4")
        await wait(pilot, lambda: isinstance(app.screen, RunsScreen))
        table = app.screen.query_one("#runs-table", DataTable)
        await wait(pilot, lambda: table.row_count == 1_000)
        assert "1000 runs" in str(app.screen.query_one("#runs-folder").render())
        assert {str(table.get_row_at(i)[2]) for i in range(3)} == {"finished", "stopped", "failed"}
