"""The lr finder from the setup form: ctrl+l, the search in a worker, enter puts the lr into the form."""

from __future__ import annotations

import math
from pathlib import Path

from textual.widgets import Input

from fmnist_tui.config import make_config
from fmnist_tui.engine.lrfind import HOW, LrFind
from fmnist_tui.lrplot import lr_text
from fmnist_tui.tui.app import make_app
from fmnist_tui.tui.screens.lrfind import LrFindScreen
from fmnist_tui.tui.screens.setup import SetupScreen
from tests.tui.test_setup import choose_preset


def lr_field(app) -> Input:
    return app.screen.query_one("#field-lr", Input)


async def test_find_then_use_the_lr(presets_dir, private_folders, wait):
    app = make_app(device="CPU (2 cores)", presets_dirs=[presets_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await choose_preset(pilot, "tiny")
        await pilot.press("ctrl+l")
        await wait(pilot, lambda: isinstance(app.screen, LrFindScreen))
        screen = app.screen
        await wait(pilot, lambda: screen.result is not None, timeout=60)
        assert screen.result.rounded is not None and math.isfinite(screen.result.rounded)
        status = str(screen.query_one("#lr-status").render())
        assert f"suggested lr {lr_text(screen.result.rounded)}" in status
        assert screen.query_one("#lr-plot").display
        await pilot.press("enter")
        await wait(pilot, lambda: isinstance(app.screen, SetupScreen))
        assert lr_field(app).value == lr_text(screen.result.rounded)
        assert app.screen.query_one("#form").config.lr == screen.result.rounded
        assert not any((private_folders / "runs").iterdir())  # the finder writes no run


async def test_escape_stops_the_search_and_leaves_the_form(presets_dir, wait):
    app = make_app(device="CPU (2 cores)", presets_dirs=[presets_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await choose_preset(pilot, "tiny")
        before = lr_field(app).value
        await pilot.press("ctrl+l")
        await wait(pilot, lambda: isinstance(app.screen, LrFindScreen))
        screen = app.screen
        await pilot.press("escape")
        await wait(pilot, lambda: isinstance(app.screen, SetupScreen))
        assert screen.stop.is_set()
        # the thread ends within a step (or at once, if it had not reached the first one)
        await wait(pilot, lambda: not any(w.group == "lr-find" and w.is_running for w in app.workers), timeout=30)
        assert lr_field(app).value == before


async def test_a_config_that_diverges_says_so_in_one_line(presets_dir, make_preset, wait):
    make_preset(presets_dir, "broken", "NaN at once", dataset="synthetic", synthetic_size=400, val_size=100,
                norm_std=1e-300, accelerator="cpu")  # fmt: skip
    app = make_app(device="CPU (2 cores)", presets_dirs=[presets_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await choose_preset(pilot, "broken")
        await pilot.press("ctrl+l")
        await wait(pilot, lambda: isinstance(app.screen, LrFindScreen))
        status = app.screen.query_one("#lr-status")
        await wait(pilot, lambda: "✖" in str(status.render()), timeout=60)
        assert "at the first step" in str(status.render()) and "Traceback" not in str(status.render())
        await pilot.press("enter")  # nothing to use: the screen stays
        assert isinstance(app.screen, LrFindScreen)


def fixed_result() -> LrFind:
    lrs = [1e-6 * 10 ** (7 * i / 99) for i in range(90)]
    losses = [2.3 - 0.9 / (1 + math.exp(-2.5 * (math.log10(lr) + 3))) + (4 * lr if lr > 0.3 else 0) for lr in lrs]
    config = make_config({"name": "demo", "model": "mlp", "optimizer": "adamw", "dataset": "synthetic"})
    return LrFind(lrs, losses, 1.1e-3, HOW, 6.2, 8.0, 100, config)


def test_result_screen(snap_compare, tmp_path, monkeypatch, no_builtin_presets, make_preset):
    monkeypatch.chdir(tmp_path)
    presets = Path("presets")
    presets.mkdir()
    make_preset(presets, "demo", "A tiny synthetic MLP", dataset="synthetic", model="mlp", optimizer="adamw")
    app = make_app(preset="demo", presets_dirs=[presets], device="CPU (2 cores)", data_dir="/data")

    async def show(pilot) -> None:
        result = fixed_result()
        app.push_screen(LrFindScreen(result.config, result=result))
        for _ in range(100):
            if isinstance(app.screen, LrFindScreen) and app.screen.result is not None:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=show)
