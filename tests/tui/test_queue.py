"""The queue in the app: ctrl+t queues the form, the runs screen lists queued entries and x removes one.

The test holds the runs folder's scheduler lock, as a running scheduler would: no process starts.
"""

from __future__ import annotations

import os

from fmnist_tui.runqueue import Queue
from fmnist_tui.tui.app import make_app
from fmnist_tui.tui.screens.runs import RunsScreen
from tests.conftest import TINY


def said(app, text: str) -> bool:
    return any(text in n.message for n in app._notifications)


async def test_ctrl_t_queues_the_form_and_the_runs_screen_lists_and_removes_it(runs, presets_dir, wait, screen_text):
    app = make_app(preset="tiny", presets_dirs=[presets_dir], runs_dir=str(runs), device="CPU (2 cores)")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+t")
        await wait(pilot, lambda: len(Queue(runs).load().entries) == 1, timeout=10)
        (entry,) = Queue(runs).load().entries
        assert entry.config["name"] == "tiny" and entry.config["epochs"] == 3 and entry.state == "queued"
        await wait(pilot, lambda: said(app, "is entry 1: it starts when a slot is free"), timeout=5)
        Queue(runs).add([({**TINY, "name": "second"}, "lr=0.01")])
        await pilot.press("f4")
        await wait(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.queued) == 2, timeout=5)
        text = screen_text(app)
        assert "#1 tiny" in text and "#2 second lr=0.01" in text and "queued" in text
        assert "0 runs" not in text and "no runs yet, 2 queued" in text
        await pilot.press("down", "x")  # the second entry
        await wait(pilot, lambda: [e.id for e in Queue(runs).load().entries] == [1], timeout=5)
        await wait(pilot, lambda: "#2 second" not in screen_text(app), timeout=5)
        Queue(runs).update(1, state="running", run="x")
        await pilot.press("up", "x")  # started since the list was drawn: refused, said so
        await wait(pilot, lambda: said(app, "entry 1 is running, not queued"), timeout=5)
        await wait(pilot, lambda: not app.screen.queued, timeout=5)  # and the list follows
        assert len(Queue(runs).load().entries) == 1


async def test_a_config_this_machine_cannot_run_is_not_queued(runs, presets_dir, wait, make_preset):
    values = {k: v for k, v in TINY.items() if k not in ("name", "description")}
    make_preset(presets_dir, "wide", "more devices than cores", devices=os.cpu_count() + 1, **values)
    app = make_app(preset="wide", presets_dirs=[presets_dir], runs_dir=str(runs), device="CPU (2 cores)")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+t")
        await wait(pilot, lambda: said(app, f"devices: {os.cpu_count() + 1} asked for"), timeout=10)
        assert Queue(runs).load().entries == []


async def test_a_run_on_several_devices_starts_in_a_background_process(presets_dir, make_preset, wait):
    """DDP cannot run inside the app's thread: Start hands such a config to a process of its own."""
    values = {k: v for k, v in TINY.items() if k not in ("name", "description")}
    make_preset(presets_dir, "ddp", "two processes", devices=2, **values)
    app = make_app(preset="ddp", presets_dirs=[presets_dir], device="CPU (2 cores)")
    started = []
    app.start_background = started.append  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+r")
        await wait(pilot, lambda: started, timeout=5)
        assert started[0].devices == 2 and not app.run_in_progress
        assert said(app, "devices = 2: the run trains in a background process of its own")
