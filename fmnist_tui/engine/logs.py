"""Route Lightning's log lines, Python warnings and failing helper threads to the sink, off the terminal."""

from __future__ import annotations

import logging
import re
import threading
import warnings
from contextlib import contextmanager

from fmnist_tui.engine.events import LogLine, Sink
from fmnist_tui.format import failure_text

# Lightning attaches its own stderr handler at import; these loggers get ours instead.
# logger -> level. Lightning's own handlers are replaced, so import it before routing.
ROUTED = {
    "pytorch_lightning": logging.INFO, "lightning_fabric": logging.INFO, "lightning": logging.INFO,
    "fmnist_tui": logging.INFO, "py.warnings": logging.WARNING, "torch": logging.WARNING,
    "torchmetrics": logging.WARNING,
}  # fmt: skip
SILENCED = (
    r".*does not have many workers.*",  # advice for DataLoaders; we use device-resident batches
    r".*Trying to infer the `batch_size`.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # Lightning vs newer torch, not actionable
    r".*litlogger.*",
    r".*Checkpoint directory .* exists and is not empty.*",  # expected when resuming into the run folder
    r".*resuming from a checkpoint that ended before the epoch ended.*",  # our loader carries on at the batch
)


for _pattern in SILENCED:  # process-wide on purpose: catch_warnings is not thread-safe
    warnings.filterwarnings("ignore", message=_pattern)


class SinkHandler(logging.Handler):
    def __init__(self, sink: Sink):
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage().strip()
            if any(re.match(p, text, re.S) for p in SILENCED):
                return
            if record.name == "py.warnings":  # "path:line: Category: message\n  source line"
                text = text.splitlines()[0]
            self.sink(LogLine(record.levelname, record.name, text))
        except Exception:  # noqa: BLE001 - logging's own convention: a handler never raises
            self.handleError(record)


@contextmanager
def route_logs(sink: Sink):
    handler = SinkHandler(sink)
    saved = []
    for name, level in ROUTED.items():
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate, logger.level))
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(level)
    logging.captureWarnings(True)
    # A library's own thread (TensorBoard's event writer on a full disk, say) that dies would print
    # its traceback over the app's screen or into the headless output: one log line instead.
    thread_hook = threading.excepthook

    def thread_failed(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "?"
        sink(LogLine("WARNING", "threading", f"background thread {name} stopped: {failure_text(args.exc_value)}"))

    threading.excepthook = thread_failed
    try:
        yield
    finally:
        threading.excepthook = thread_hook
        logging.captureWarnings(False)
        for logger, handlers, propagate, level in saved:
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
