"""The thread -> UI path: progress collapses, nothing else is dropped, redraws are throttled."""

from __future__ import annotations

import threading
import time

from textual.filter import Monochrome

from fmnist_tui.engine.events import EpochEnd, LogLine, RunEnded, StepProgress
from fmnist_tui.tui.app import make_app
from fmnist_tui.tui.relay import EngineMessage, Relay
from fmnist_tui.tui.widgets.charts import MetricsChart, thin


def progress(step: int) -> StepProgress:
    return StepProgress(0, step, 10_000, step, 10_000, 1.0 / step, 1000.0, 1.0, 1.0)


def test_only_progress_messages_collapse():
    older, newer = EngineMessage(progress(1), 1), EngineMessage(progress(2), 1)
    epoch = EngineMessage(EpochEnd(0, 2, 1.0, 1.0, 0.5, 1e-3, 1.0), 1)
    log = EngineMessage(LogLine("INFO", "x", "hello"), 1)
    assert older.can_replace(newer)
    assert not older.can_replace(epoch) and not older.can_replace(log)
    assert not epoch.can_replace(newer) and not log.can_replace(newer)


def test_thin_keeps_short_series_and_averages_long_ones():
    assert thin([(1, 1.0), (2, float("nan")), (3, 3.0)]) == ([1, 3], [1.0, 3.0])
    xs, ys = thin([(i, float(i)) for i in range(10_000)], limit=100)
    assert len(xs) == 100 and xs[-1] == 9_999


async def test_a_flood_from_the_thread_loses_no_epoch_log_or_loss_point(monkeypatch, presets_dir, wait):
    draws = []
    original = MetricsChart._apply
    monkeypatch.setattr(MetricsChart, "_apply", lambda self: (draws.append(time.monotonic()), original(self)))
    app = make_app(device="CPU", presets_dirs=[presets_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        relay = Relay(app, app.run_id)
        app._relay = relay  # as start_run would
        steps, epochs, logs = 3_000, 12, 60

        def flood() -> None:  # like the engine with no throttle at all: far worse than 20/s
            for step in range(1, steps + 1):
                relay(progress(step))
                if step % (steps // epochs) == 0:
                    relay(EpochEnd(step // (steps // epochs) - 1, step, 1.0, 1.0, 0.5, 1e-3, 1.0))
                if step % (steps // logs) == 0:
                    relay(LogLine("INFO", "test", f"line {step}"))
                if step % 100 == 0:
                    time.sleep(0.04)  # spread over ~1.2 s

        draws.clear()
        started = time.monotonic()
        thread = threading.Thread(target=flood)
        thread.start()
        await wait(pilot, lambda: not thread.is_alive(), timeout=30)
        relay(RunEnded("finished", "/runs/x", 1.0))
        await wait(pilot, lambda: app.state.ended is not None)
        await pilot.pause(0.3)
        elapsed = time.monotonic() - started

        state = app.state
        assert len(state.epochs) == epochs and [e.epoch for e in state.epochs] == list(range(epochs))
        assert state.logs_total == logs
        assert [s for s, _ in state.losses] == list(range(1, steps + 1))  # every point, in order
        assert state.progress.step == steps
        # the charts redraw at most ~4 times a second, however fast events come
        assert len(draws) <= 4 * elapsed + 3, (len(draws), elapsed)


def test_no_color_is_respected(monkeypatch, presets_dir):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(device="CPU", presets_dirs=[presets_dir])
    assert app.no_color and any(isinstance(f, Monochrome) for f in app._filters)


def test_the_app_module_imports_no_torch():
    """The first frame must not wait for torch (seconds): only workers import it."""
    import subprocess
    import sys

    code = "import sys, fmnist_tui.tui.app; print('torch' in sys.modules, 'pytorch_lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
