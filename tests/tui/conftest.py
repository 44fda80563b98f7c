"""Fixtures for the app tests: tiny presets, private folders, a patient poll."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pytest

TINY = dict(dataset="synthetic", synthetic_size=400, val_size=100, batch_size=32, model="mlp",
            optimizer="adam", accelerator="cpu")  # fmt: skip


def write_preset(folder: Path, name: str, description: str, **values) -> Path:
    lines = [f'name = "{name}"', f'description = "{description}"']
    for key, value in values.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        else:
            lines.append(f"{key} = {value!r}")
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def unfreeze_heap():
    """The app freezes the heap (gc.freeze, see tui/app.py); let each test's leftovers be collected."""
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def private_folders(tmp_path, monkeypatch):
    """Never read or write the user's real preset, runs or data folders."""
    for var, sub in (("FMNIST_TUI_PRESETS_DIR", "user-presets"), ("FMNIST_TUI_RUNS_DIR", "runs"),
                     ("FMNIST_TUI_DATA_DIR", "data")):  # fmt: skip
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    return tmp_path


@pytest.fixture
def presets_dir(tmp_path) -> Path:
    folder = tmp_path / "presets"
    folder.mkdir()
    write_preset(folder, "tiny", "Tiny synthetic MLP, 3 epochs", epochs=3, **TINY)
    write_preset(folder, "long", "Tiny synthetic MLP, many epochs (for stop tests)", epochs=500, **TINY)
    write_preset(folder, "nan", "Diverges at once: tutorial MLP, SGD lr 10", epochs=3,
                 **{**TINY, "model": "tutorial_mlp", "final_relu": False, "optimizer": "sgd", "lr": 10.0})  # fmt: skip
    return folder


@pytest.fixture
def no_builtin_presets(tmp_path, monkeypatch):
    """Only the test's presets are listed (the shipped ones change as they are tuned)."""
    empty = tmp_path / "builtin"
    empty.mkdir()
    monkeypatch.setattr("fmnist_tui.paths.builtin_presets_dir", lambda: empty)


async def wait_for(pilot, condition, timeout: float = 30.0, step: float = 0.05) -> None:
    """Let the app run until condition() is true; fail with a clear message after timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}")
        await pilot.pause(step)
    await asyncio.sleep(0)


async def send_keys(pilot, *keys: str) -> None:
    """Like pilot.press, through the driver too, but without its wait for an idle CPU:
    while a run trains the CPU is never idle, and each press would take ~2 s."""
    from textual import events

    for key in keys:
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(pilot.app)
        pilot.app._driver.send_message(event)
        await pilot.pause(0.05)


@pytest.fixture
def keys():
    """`await keys(pilot, "s")` for key presses while training."""
    return send_keys


@pytest.fixture
def wait():
    """`await wait(pilot, condition, timeout)` (a fixture: tests/ is not a package)."""
    return wait_for


@pytest.fixture
def make_preset():
    return write_preset


def _screen_text(app) -> str:
    """What the terminal shows now, as plain text: one line per row."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.fixture
def screen_text():
    return _screen_text
