"""The training thread: run the engine, and turn every way it can fail into a RunEnded."""

from __future__ import annotations

import os
import threading
import traceback

from fmnist_tui.config import ConfigError, RunConfig
from fmnist_tui.engine.events import LogLine
from fmnist_tui.runs import RunStoreError
from fmnist_tui.tui.relay import Relay


def train(config: RunConfig, relay: Relay, stop: threading.Event, runs_dir: str | None, data_dir: str | None) -> None:
    """Thread target. Reports only through `relay`; never raises, so the worker never errors."""
    try:
        from fmnist_tui.engine.runner import run  # imports torch: keep it off the UI thread

        # Leave a core to the UI: torch's CPU threads stall whenever the UI thread takes
        # one of their cores (bench/throughput.py: 14.0k against 10.5k samples/s on 2 cores).
        cpu_threads = max(1, (os.cpu_count() or 2) - 1)
        run(config, relay, stop, runs_dir=runs_dir, data_dir=data_dir, cpu_threads=cpu_threads)
    except (RunStoreError, ConfigError) as err:  # raised before the run starts
        relay.failed(str(err))
    except Exception as err:  # a bug outside the engine's own reporting: keep the app alive
        for line in traceback.format_exception(err)[-12:]:
            relay(LogLine("ERROR", "fmnist_tui.tui", line.rstrip()))
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        relay.failed(f"{type(err).__name__}: {message}" if message else type(err).__name__)
