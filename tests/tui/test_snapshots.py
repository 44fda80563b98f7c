"""SVG snapshots of each screen at 80x24 and 120x40, the main ones at 60x20 and 40x15 too.

The run screens are driven by a scripted stand-in for the training thread that sends
fixed events through the real relay, so nothing depends on timing, dates, paths or
the device. Update with `pytest tests/tui --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fmnist_tui.engine.events import EpochEnd, LogLine, RunEnded, RunStarted, StepProgress
from fmnist_tui.tui.app import make_app

SIZES = [(80, 24), (120, 40)]
SMALL = [(60, 20), (40, 15)]  # below 80x24: Quit and the main action stay in the footer
RUN_DIR = "/home/me/runs/20250101-120000-demo"
EPOCHS, SPE = 5, 40


DATA_ERROR = (
    "DataError: Fashion-MNIST is not in /data/fashion-mnist/FashionMNIST/raw and /data/fashion-mnist, and "
    "downloading it failed (Error downloading train-images-idx3-ubyte.gz: <urlopen error [Errno -2] Name or "
    "service not known>). Copy the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, .gz or not) into /data/fashion-mnist, or point --data-dir "
    "or FMNIST_TUI_DATA_DIR at a folder holding them."
)


def scripted_events(finished: bool) -> list:
    events = [
        LogLine("INFO", "pytorch_lightning", "GPU available: False, used: False"),
        RunStarted(RUN_DIR, "CPU (2 cores)", EPOCHS, SPE, EPOCHS * SPE),
    ]
    last = EPOCHS * SPE if finished else 2 * SPE + 30
    for step in range(1, last + 1):
        epoch = (step - 1) // SPE
        loss = 0.35 + 1.9 * math.exp(-step / 30) + 0.06 * math.sin(step / 2.5)
        events.append(StepProgress(epoch, step, EPOCHS * SPE, (step - 1) % SPE + 1, SPE, loss, 5120.0,
                                   step * 0.05, (EPOCHS * SPE - step) * 0.05))  # fmt: skip
        if step % SPE == 0:
            e = epoch + 1
            events.append(EpochEnd(epoch, step, 0.4 + 0.9 / e, 0.45 + 0.5 / e, 0.92 - 0.12 / e, 1e-3, 2.0))
    events.append(LogLine("WARNING", "py.warnings", "UserWarning: an example warning, shown in the log pane"))
    if finished:
        events.append(LogLine("INFO", "pytorch_lightning", "`Trainer.fit` stopped: `max_epochs=5` reached."))
        events.append(RunEnded("finished", RUN_DIR, 10.2, best_val_acc=0.896, test_acc=0.8912, test_loss=0.3177,
                               checkpoint=f"{RUN_DIR}/checkpoints/best.ckpt"))  # fmt: skip
    return events


@pytest.fixture
def snap_env(tmp_path, monkeypatch, no_builtin_presets, make_preset):
    """Relative folders (the working directory is a tmp dir) so no absolute tmp path is drawn."""
    monkeypatch.chdir(tmp_path)
    presets = Path("presets")
    presets.mkdir()
    make_preset(presets, "demo", "A tiny synthetic MLP for demos", dataset="synthetic", synthetic_size=400,
                val_size=100, batch_size=32, epochs=EPOCHS, model="mlp", optimizer="adam")  # fmt: skip
    make_preset(presets, "tutorial", "The PyTorch quickstart MLP, exactly: SGD lr 1e-3, 10 epochs",
                model="tutorial_mlp", optimizer="sgd", lr=1e-3, batch_size=64, normalize=False)  # fmt: skip
    (presets / "broken.toml").write_text('name = "broken"\ndescription = "x"\nlr = -1\n')
    return dict(presets_dirs=[presets], device="CPU (2 cores)", data_dir="/data/fashion-mnist", runs_dir="runs")


def scripted_app(monkeypatch, env: dict, finished: bool, events: list | None = None):
    events = scripted_events(finished) if events is None else events

    def fake_run(host):  # runs in the worker thread, like RunHost.run
        for event in events:
            host.sink(event)
        if not finished:
            host.stop.wait(30)
        host.done.set()

    monkeypatch.setattr("fmnist_tui.host.RunHost.run", fake_run)
    return make_app(preset="demo", start=True, **env)


def settled(finished: bool):
    target = EPOCHS * SPE if finished else 2 * SPE + 30

    async def run_before(pilot) -> None:
        app = pilot.app
        for _ in range(200):
            done = app.state.progress is not None and app.state.progress.step == target and app.state.logs_total >= 2
            if done and (not finished or not app.run_in_progress):
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        app.screen.sync(force=True)
        app.clear_notifications()
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES + SMALL, ids=lambda s: f"{s[0]}x{s[1]}")
def test_setup_screen(snap_compare, snap_env, size):
    assert snap_compare(make_app(preset="demo", **snap_env), terminal_size=size)


def test_setup_screen_with_errors(snap_compare, snap_env):
    async def bad_values(pilot) -> None:
        pilot.app.screen.query_one("#field-epochs").value = "0"
        lr = pilot.app.screen.query_one("#field-lr")
        lr.value = "fast"
        lr.cursor_blink = False  # a blinking cursor is on or off depending on when the picture is taken
        lr.focus(scroll_visible=False)
        await pilot.pause()
        # Scrolled at once, not animated: an animation still running under load would change the picture.
        pilot.app.screen.query_one("#form").scroll_to_widget(pilot.app.screen.query_one("#row-lr"), animate=False)
        await pilot.pause(0.3)

    assert snap_compare(make_app(preset="demo", **snap_env), run_before=bad_values)


@pytest.mark.parametrize("size", SIZES + SMALL, ids=lambda s: f"{s[0]}x{s[1]}")
def test_run_in_progress(snap_compare, snap_env, monkeypatch, size):
    app = scripted_app(monkeypatch, snap_env, finished=False)
    assert snap_compare(app, terminal_size=size, run_before=settled(False))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_run_finished(snap_compare, snap_env, monkeypatch, size):
    app = scripted_app(monkeypatch, snap_env, finished=True)
    assert snap_compare(app, terminal_size=size, run_before=settled(True))


@pytest.mark.parametrize("size", [(80, 24), (60, 20)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_run_failed_shows_the_whole_message(snap_compare, snap_env, monkeypatch, size):
    events = [RunEnded("failed", "runs/20250101-120000-demo", 0.0, error=DATA_ERROR)]
    app = scripted_app(monkeypatch, snap_env, finished=True, events=events)

    async def ended(pilot) -> None:
        for _ in range(100):
            if pilot.app.state.ended is not None and not pilot.app.run_in_progress:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=ended)


def test_live_view_with_no_run(snap_compare, snap_env):
    assert snap_compare(make_app(preset="demo", **snap_env), press=["f3"])


def test_run_epochs_tab(snap_compare, snap_env, monkeypatch):
    app = scripted_app(monkeypatch, snap_env, finished=True)
    before = settled(True)

    async def epochs_tab(pilot) -> None:
        await before(pilot)
        pilot.app.screen.query_one("#run-tabs").active = "tab-epochs"
        await pilot.pause()

    assert snap_compare(app, run_before=epochs_tab)


def fake_run(root: Path, name: str, status: str, started: str, best: float | None, test: float | None) -> None:
    """A run folder as the engine leaves it, with fixed dates."""
    folder = root / name
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.toml").write_text('name = "demo"\nmodel = "mlp"\nlr = 0.001\nepochs = 3\n')
    summary = dict(status=status, started=started, best_val_acc=best, test_acc=test, duration_s=42.0,
                   error="RuntimeError: something broke" if status == "failed" else None)  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    rows = ["kind,epoch,step,train_loss,val_loss,val_acc,lr,seconds,test_loss,test_acc"]
    for step in range(1, 31):
        rows.append(f"step,{(step - 1) // 10},{step},{0.4 + 2 * math.exp(-step / 8):.4f},,,,,,")
        if step % 10 == 0:
            e = step // 10
            rows.append(f"epoch,{e - 1},{step},{0.5 + 1 / e:.4f},{0.6 + 0.5 / e:.4f},{0.9 - 0.1 / e:.4f},0.001,14,,")
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("open_first", [False, True], ids=["list", "detail"])
def test_runs_screen(snap_compare, snap_env, open_first):
    root = Path("runs")
    fake_run(root, "20250101-120000-demo", "finished", "2025-01-01T12:00:00", 0.874, 0.869)
    fake_run(root, "20250102-090000-demo", "stopped", "2025-01-02T09:00:00", 0.81, None)
    fake_run(root, "20250103-180000-demo", "failed", "2025-01-03T18:00:00", None, None)
    press = ["f4", "down", "down"] + (["enter"] if open_first else [])
    assert snap_compare(make_app(**snap_env), press=press)


def test_runs_screen_with_queued_entries(snap_compare, snap_env):
    """A sweep waiting its turn above the runs; its entries name their point of the grid."""
    import fcntl
    import os

    from fmnist_tui.runqueue import Queue
    from tests.conftest import TINY

    root = Path("runs")
    fake_run(root, "20250101-120000-demo-lr=0.01", "running", "2025-01-01T12:00:00", 0.874, None)
    queue = Queue(root)
    queue.add([({**TINY, "name": "demo", "lr": lr}, f"lr={lr}") for lr in (0.01, 0.003, 0.001)], "sweep-1")
    queue.update(1, state="running", run="20250101-120000-demo-lr=0.01")
    queue.update(2, state="starting")
    lock = os.open(queue.root / "scheduler.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        assert snap_compare(make_app(**snap_env), press=["f4"])
    finally:
        os.close(lock)


def test_attached_to_a_run_whose_process_was_killed(snap_compare, snap_env):
    """`fmnist-tui attach RUN` of a run killed mid-epoch: its history, replayed, then the verdict."""
    from fmnist_tui.engine.eventlog import encode

    folder = Path("runs") / "20250101-120000-demo"
    fake_run(Path("runs"), folder.name, "running", "2025-01-01T12:00:00", 0.874, None)
    events = [e for e in scripted_events(False) if not isinstance(e, RunStarted)]
    events.insert(1, RunStarted(str(folder), "CPU (2 cores)", EPOCHS, SPE, EPOCHS * SPE))
    (folder / "events.jsonl").write_text("".join(encode(e) for e in events))

    async def ended(pilot) -> None:
        for _ in range(100):
            if pilot.app.state.ended is not None:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        pilot.app.screen.sync(force=True)
        pilot.app.clear_notifications()
        await pilot.pause()

    app = make_app(attach=folder, **{k: v for k, v in snap_env.items() if k != "device"})
    assert snap_compare(app, run_before=ended)
