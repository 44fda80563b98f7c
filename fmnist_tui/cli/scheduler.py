"""The scheduler's own process (started by fmnist_tui/scheduler.py when something is queued, never by hand).

Its output goes to .queue/scheduler.log in the runs folder. It ignores SIGHUP (it is in a
session of its own anyway) and ends when nothing is queued or running.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from fmnist_tui.scheduler import Scheduler


def main(runs_root: Path) -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return Scheduler(runs_root).serve()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
