"""The app under load, timed: keypresses under a flood of engine events, and a big runs folder.

    python bench/app_load.py [--rate 10000] [--seconds 10] [--runs 1000]

Prints:
  keypress_ms_median / keypress_ms_max   a tab switch answered while RATE step reports a second arrive
  max_queued / max_undrained             the app's message queue and the relay's loss backlog meanwhile
  lag_ms                                 how far behind the UI was when the flood stopped
  list_ms_first / list_ms_again          the runs screen drawing RUNS runs, first time and again

tests/tui/test_load.py checks the same situations for what must hold (nothing dropped,
every key answered, every run listed); the numbers are here, where a busy machine makes
them slower instead of making a test fail.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import tomli_w
from textual import events

from fmnist_tui.config import RunConfig, to_dict
from fmnist_tui.engine.events import EpochEnd, LogLine, RunStarted, StepProgress
from fmnist_tui.tui.app import make_app
from fmnist_tui.tui.relay import Relay
from fmnist_tui.tui.screens.run import RunScreen
from fmnist_tui.tui.screens.runs import RunsScreen
from fmnist_tui.tui.state import RunState

SPE = 1_000  # steps per "epoch"


def progress(step: int, rate: float) -> StepProgress:
    return StepProgress(step // SPE, step, 10**9, step % SPE, SPE, 1.0 + 1.0 / step, 6.4e5, step / rate, 99.0)


def flood(relay: Relay, stop: threading.Event, counts: dict, rate: float, seconds: float) -> None:
    """Time-paced: `rate` step reports a second, an EpochEnd every SPE steps, a log line every 100."""
    start, step = time.perf_counter(), 0
    while not stop.is_set():
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        while step < int(elapsed * rate):
            step += 1
            relay(progress(step, rate))
            if step % SPE == 0:
                relay(EpochEnd(step // SPE - 1, step, 1.0, 1.0, 0.5, 1e-3, 1.0))
                counts["epochs"] += 1
            if step % 100 == 0:
                relay(LogLine("INFO", "load", f"line {step}"))
                counts["logs"] += 1
        time.sleep(0.001)
    counts["steps"] = step


def write_runs(root: Path, count: int) -> None:
    """`count` finished runs, written with plain file writes (the engine's writer fsyncs: too slow for this)."""
    config = tomli_w.dumps(to_dict(RunConfig(description="load test", epochs=3)))  # every key, as the engine writes
    metrics = (
        "kind,epoch,step,train_loss,val_loss,val_acc,lr,seconds,test_loss,test_acc,weights\n"
        + "".join(f"step,0,{s},0.5,,,,,,,\n" for s in range(1, 200))
        + "epoch,0,200,0.5,0.4,0.85,0.001,1.0,,,\n"
    )
    for i in range(count):
        folder = root / f"2025{i // 1000 + 1:02d}{i % 28 + 1:02d}-{i // 28 % 24:02d}{i % 60:02d}00-run{i:04d}"
        folder.mkdir(parents=True)
        (folder / "config.toml").write_text(config.replace('name = "custom"', f'name = "p{i % 7}"'))
        summary = {"status": ("finished", "stopped", "failed")[i % 3], "started": "2025-01-02T03:04:05",
                   "duration_s": 12.5 + i, "best_val_acc": 0.85, "test_acc": 0.84, "pid": 1}  # fmt: skip
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / "metrics.csv").write_text(metrics)


async def until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(condition)
        await asyncio.sleep(0.001)


async def keypresses_under_flood(rate: float, seconds: float, presses: int = 10) -> dict:
    app = make_app(device="CPU")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await until(lambda: isinstance(app.screen, RunScreen), 5)
        app.run_id += 1  # what start_run would do, with a thread standing in for the engine
        app.state = RunState(config=RunConfig(name="load"))
        relay = app._relay = Relay(app, app.run_id)
        relay(RunStarted("/runs/load", "CPU", 10**6, SPE, 10**9))
        await until(lambda: app.state.started is not None, 5)
        tabs = app.screen.query_one("#run-tabs")
        counts = {"epochs": 0, "logs": 0, "steps": 0}
        stop = threading.Event()
        thread = threading.Thread(target=flood, args=(relay, stop, counts, rate, seconds), daemon=True)
        thread.start()
        latencies: list[float] = []
        queued: list[int] = []
        backlog: list[int] = []

        async def sample(for_s: float) -> None:
            for _ in range(int(for_s / 0.02)):
                queued.append(app._message_queue.qsize())
                backlog.append(len(relay.losses))
                await asyncio.sleep(0.02)

        try:
            await sample(0.5)
            for _ in range(presses):
                before = tabs.active
                key = events.Key("right", None)  # the tab bar has focus: next tab
                key.set_sender(app)
                started = time.perf_counter()
                app._driver.send_message(key)
                await until(lambda before=before: tabs.active != before, 30)
                latencies.append(time.perf_counter() - started)
                await sample(0.5)
            while thread.is_alive():
                await sample(0.1)
        finally:
            stop.set()
            thread.join(timeout=5)
        ended = time.perf_counter()
        await until(lambda: app.state.progress is not None and app.state.progress.step == counts["steps"], 30)
        lag = time.perf_counter() - ended
    return {"steps": counts["steps"], "keypress_ms_median": 1000 * statistics.median(latencies),
            "keypress_ms_max": 1000 * max(latencies), "max_queued": max(queued), "max_undrained": max(backlog),
            "lag_ms": 1000 * lag}  # fmt: skip


async def listing(count: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        write_runs(Path(tmp), count)
        gc.collect()
        app = make_app(device="CPU", runs_dir=tmp)
        times = []
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            for key in ("f4", "f2", "f4"):
                started = time.perf_counter()
                await pilot.press(key)
                if key == "f4":
                    await until(lambda: isinstance(app.screen, RunsScreen), 10)
                    table = app.screen.query_one("#runs-table")
                    await until(lambda table=table: table.row_count == count, 30)
                    times.append(time.perf_counter() - started)
    return {"list_ms_first": 1000 * times[0], "list_ms_again": 1000 * times[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000, help="step reports a second (the engine sends ~20)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=1_000)
    args = parser.parse_args()
    results = asyncio.run(keypresses_under_flood(args.rate, args.seconds))
    results.update(asyncio.run(listing(args.runs)))
    print(f"{results.pop('steps'):,} step events at {args.rate:,.0f}/s, {args.runs:,} runs, {sys.platform}")
    for key, value in results.items():
        print(f"{key}={value:.1f}" if isinstance(value, float) else f"{key}={value}")


if __name__ == "__main__":
    main()
