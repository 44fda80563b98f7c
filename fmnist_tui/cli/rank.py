"""One of a DDP run's other processes, started by the run's own process (engine/ranks.py), never by hand.

It trains the config it was given in its environment, in step with the others, and writes
nothing of the run's. If it fails it says why in one JSON line on stdout (the first
process reports it as the run's error) and exits 1. SIGTERM and Ctrl-C reach the run
through the processes' agreement (engine/steering.py); a hang-up is ignored, as by the
background run it belongs to.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading


def main() -> int:
    from fmnist_tui.config import make_config
    from fmnist_tui.engine import ranks
    from fmnist_tui.engine.reporter import Diverged, StopRun
    from fmnist_tui.engine.runner import run_rank
    from fmnist_tui.engine.stop import StopRequest
    from fmnist_tui.format import failure_text

    ranks.exit_with_parent()
    job = json.loads(os.environ.pop(ranks.JOB_ENV))
    stop = StopRequest()
    for sig, why in ((signal.SIGTERM, "interrupted"), (signal.SIGINT, "stopped")):
        signal.signal(sig, lambda number, frame, why=why: stop.request(why))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    outcome: dict = {}

    def train() -> None:
        try:
            run_rank(make_config(job["config"]), stop, job.get("resume_from"), job.get("cpu_threads"))
        except (StopRun, Diverged):
            pass  # every process stopped at the same step; the first says how the run ended
        except BaseException as err:  # noqa: BLE001 - said once, to the first process
            outcome["error"] = failure_text(err)

    worker = threading.Thread(target=train, name="fmnist-rank")
    worker.start()
    while worker.is_alive():
        worker.join(0.2)  # the main thread stays free to take signals
    if "error" in outcome:
        print(json.dumps({"error": outcome["error"]}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
