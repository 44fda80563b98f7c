"""Attaching the app to a run in its own process: replayed history, live updates, controls,
detach, the run's end (kill -9 included), and starting or handing a run over to the background."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from fmnist_tui.background import Job, start
from fmnist_tui.config import make_config
from fmnist_tui.engine.control import send
from fmnist_tui.runs import lock_held
from fmnist_tui.tui.app import make_app
from fmnist_tui.tui.screens.run import RunScreen
from fmnist_tui.tui.screens.runs import RunsScreen
from tests.conftest import TINY

pytestmark = pytest.mark.slow


@pytest.fixture
def background_run(tmp_path):
    """A run training in its own process for a minute at most; stopped at the end of the test."""
    runs = tmp_path / "runs"
    started = start(Job(config=make_config({**TINY, "name": "bg", "epochs": 300}).model_dump(), runs_dir=str(runs)))
    yield started
    try:
        os.kill(started.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_steps(folder, n: int) -> None:
    from fmnist_tui.metrics import read_rows

    deadline = time.monotonic() + 60
    while sum(r["kind"] == "epoch" for r in read_rows(folder / "metrics.csv")) < n:
        assert time.monotonic() < deadline
        time.sleep(0.05)


async def test_attach_replays_the_history_then_follows_live_and_detach_leaves_it_running(
    background_run, tmp_path, wait, keys, screen_text
):
    folder = background_run.run_path
    wait_steps(folder, 2)  # history to replay
    app = make_app(attach=folder, runs_dir=str(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot, lambda: len(app.state.epochs) >= 2 and app.state.losses, timeout=20)
        assert app.state.losses[0][0] < 20, "the loss chart starts at the first steps"
        seen = len(app.state.epochs)
        await wait(pilot, lambda: len(app.state.epochs) > seen + 1, timeout=30)  # and then live
        assert isinstance(app.screen, RunScreen)
        text = screen_text(app)
        assert "own process" in text and "Detach: run goes on" in text and "Stop after epoch" in text

        await keys(pilot, "l")  # the lr, through the run's control channel
        app.screen.query_one("#lr-value").value = "0.0007"
        await keys(pilot, "enter")
        await wait(pilot, lambda: any("lr 0.0007" in line.text for line in app.state.logs), timeout=20)

        await keys(pilot, "d")
        await wait(pilot, lambda: app.attached is None)
        assert lock_held(folder), "the run goes on"
        await keys(pilot, "q")
    assert lock_held(folder) and app.alerts_sent == []
    send(folder, "stop")


async def test_a_second_app_attached_sees_the_stop_the_first_sends_and_alerts_once(
    background_run, tmp_path, wait, keys
):
    folder = background_run.run_path
    first, second = make_app(attach=folder), make_app(attach=folder)
    async with first.run_test(size=(80, 24)) as one, second.run_test(size=(60, 20)) as two:
        await wait(one, lambda: first.state.started is not None, timeout=20)
        await wait(two, lambda: second.state.started is not None, timeout=20)
        await keys(one, "e")  # stop after this epoch
        await wait(two, lambda: second.state.ended is not None, timeout=30)
        await wait(one, lambda: first.state.ended is not None, timeout=10)
        assert first.state.ended.status == second.state.ended.status == "stopped"
        await one.pause(1)
    assert first.alerts_sent == second.alerts_sent == ["fmnist-tui: bg stopped"]


async def test_kill_9_of_the_run_shows_interrupted_within_two_seconds(background_run, wait, screen_text):
    folder = background_run.run_path
    app = make_app(attach=folder)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot, lambda: app.state.progress is not None, timeout=30)
        os.kill(background_run.pid, signal.SIGKILL)
        killed = time.monotonic()
        await wait(pilot, lambda: app.state.ended is not None, timeout=5)
        assert time.monotonic() - killed < 2
        assert app.state.ended.status == "interrupted"
        await pilot.pause(0.5)
        assert "interrupted" in screen_text(app) and "--resume" in screen_text(app)


async def test_the_runs_screen_lists_running_runs_first_and_a_attaches(background_run, tmp_path, wait, keys):
    folder = background_run.run_path
    older = tmp_path / "runs" / "29990101-000000-later-but-done"  # sorts first by name, but is not running
    older.mkdir()
    (older / "config.toml").write_text('name = "done"\n')
    (older / "summary.json").write_text('{"status": "finished"}')
    app = make_app(runs_dir=str(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "f4")
        await wait(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        table = app.screen.query_one("DataTable")
        assert table.coordinate_to_cell_key((0, 0)).row_key.value == str(folder)
        await keys(pilot, "a")
        await wait(pilot, lambda: app.attached == folder and isinstance(app.screen, RunScreen))
        await wait(pilot, lambda: app.state.started is not None, timeout=20)
        await keys(pilot, "s")  # stop, through the control channel
        await wait(pilot, lambda: app.state.ended is not None, timeout=30)
        assert app.state.ended.status == "stopped"


async def test_start_in_background_then_quit_leaves_it_running(presets_dir, tmp_path, wait, keys):
    runs = tmp_path / "runs"
    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(runs), preset="long")
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "ctrl+g")
        await wait(pilot, lambda: app.attached is not None and app.state.progress is not None, timeout=60)
        folder = app.attached
        assert not app.run_in_progress, "not this app's run: it has its own process"
        await keys(pilot, "q")  # no question: the run is not in this process
        await wait(pilot, lambda: not app.is_running, timeout=10)
    assert "keeps running" in app.exit_note and lock_held(folder)
    send(folder, "stop")


async def test_quit_and_keep_running_hands_the_run_over_without_a_lost_or_repeated_step(
    presets_dir, tmp_path, wait, keys
):
    from fmnist_tui.follow import Follower
    from fmnist_tui.metrics import read_rows
    from fmnist_tui.runs import read_config

    runs = tmp_path / "runs"
    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(runs), preset="long", start=True,
                   overrides={"epochs": 150})  # fmt: skip
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot, lambda: app.state.progress is not None and app.state.epochs, timeout=60)
        folder = app.run_path
        ends: list = []  # what a reader (`wait`, an attached app) that follows the run throughout sees

        def follow() -> None:
            follower = Follower(folder)
            while not follower.over:
                follower.poll()
                time.sleep(0.1)
            ends.append(follower.ended)

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        await keys(pilot, "q")
        await keys(pilot, "b")  # keep it running in the background
        await wait(pilot, lambda: not app.is_running, timeout=60)
    assert app.alerts_sent == [], "a hand-over is not the run's end"
    assert "goes on in the background" in app.exit_note
    reader.join(120)
    assert [e.status for e in ends] == ["finished"], "the reader saw the run go on through the hand-over"
    steps = [int(r["step"]) for r in read_rows(folder / "metrics.csv") if r["kind"] == "step"]
    assert steps == list(range(1, len(steps) + 1))
    assert [h["status_before"] for h in read_config(folder)[1]] == ["interrupted"]


async def test_an_in_app_run_takes_the_same_controls_and_its_end_alerts_once(presets_dir, tmp_path, wait, keys):
    app = make_app(device="CPU", presets_dirs=[presets_dir], runs_dir=str(tmp_path / "runs"), preset="long",
                   start=True)  # fmt: skip
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot, lambda: app.state.started is not None and app.state.progress is not None, timeout=60)
        await keys(pilot, "c")  # through the run's own control channel, as for a background run
        await wait(pilot, lambda: any("saved checkpoints/last.ckpt" in x.text for x in app.state.logs), timeout=20)
        await keys(pilot, "e")
        await wait(pilot, lambda: app.state.ended is not None, timeout=30)
        assert app.state.ended.status == "stopped"
        await pilot.pause(0.5)
    assert app.alerts_sent == ["fmnist-tui: long stopped"]


def test_alerts_are_escaped_wrapped_for_tmux_and_can_be_turned_off(tmp_path, monkeypatch):
    from fmnist_tui.tui.alerts import osc9

    assert osc9("run \x1b]0;x\x07 done", tmux=False) == "\x1b]9;run ]0;x done\x07"
    assert osc9("done", tmux=True) == "\x1bPtmux;\x1b\x1b]9;done\x07\x1b\\"
    assert make_app().alerts and not make_app(alerts=False).alerts
    settings = tmp_path / "settings.toml"
    monkeypatch.setenv("FMNIST_TUI_SETTINGS", str(settings))
    settings.write_text("alerts = false\n")
    assert not make_app().alerts
    settings.write_text("alerts = 'no'\nbogus = 1\n")
    app = make_app()
    assert app.alerts and "settings.toml" in app.settings_problem
