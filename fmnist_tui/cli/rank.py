"""One of a DDP run's other processes: started by the run's own process (engine/ranks.py, `main`), or
by torchrun or SLURM running `fmnist-tui run` on every node (`follow_launcher`).

It trains the config it was given in its environment, in step with the others, and writes
nothing of the run's. If it fails it says why in one JSON line on stdout (the first
process reports it as the run's error) and exits 1. Signals reach the run through the
processes' agreement (engine/steering.py).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading


def launcher_rank() -> int:
    """This process's rank when torchrun or SLURM started several (0 when it is the first, or alone).
    No torch: `fmnist-tui run` asks before anything loads."""
    for rank, size in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if os.environ.get(size, "1").isdigit() and int(os.environ.get(size, "1")) > 1:
            value = os.environ.get(rank, "")
            return int(value) if value.isdigit() else 0
    return 0


def train(config, resume_from: str | None, cpu_threads: int | None = None, spawned: bool = False) -> int:
    """Train as one of the other processes until the run ends; signals reach it through the agreement.
    A rank the run's own process `spawned` leaves Ctrl-C and hang-ups to that process (a terminal's
    reach both, a background run takes no hang-up); SIGTERM sent to it alone interrupts the run."""
    from fmnist_tui.engine.reporter import Diverged, StopRun
    from fmnist_tui.engine.runner import run_rank
    from fmnist_tui.engine.stop import StopRequest
    from fmnist_tui.format import failure_text

    stop = StopRequest()
    signal.signal(signal.SIGTERM, lambda number, frame: stop.request("interrupted"))
    if spawned:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, lambda number, frame: stop.request("stopped"))
        signal.signal(signal.SIGHUP, lambda number, frame: stop.request("interrupted"))
    outcome: dict = {}

    def target() -> None:
        try:
            run_rank(config, stop, resume_from, cpu_threads)
        except (StopRun, Diverged):
            pass  # every process stopped at the same step; the first says how the run ended
        except BaseException as err:  # noqa: BLE001 - said once, by whoever started this process
            outcome["error"] = failure_text(err)

    worker = threading.Thread(target=target, name="fmnist-rank")
    worker.start()
    while worker.is_alive():
        worker.join(0.2)  # the main thread stays free to take signals
    if "error" in outcome:
        try:
            print(json.dumps({"error": outcome["error"]}), flush=True)
        except OSError:  # whoever started this process has gone (kill -9): nobody to tell
            pass
        return 1
    return 0


def main() -> int:
    """A rank started by the run's own process: its job is in the environment."""
    from fmnist_tui.config import make_config
    from fmnist_tui.engine import ranks

    ranks.exit_with_parent()
    job = json.loads(os.environ.pop(ranks.JOB_ENV))
    return train(make_config(job["config"]), job.get("resume_from"), job.get("cpu_threads"), spawned=True)


def follow_launcher(args, config, overrides: dict) -> int:
    """`fmnist-tui run` on a process torchrun or SLURM started with a rank above 0: the same config
    as the first process (the same command line), or the same run's checkpoint for --resume.
    The runs folder must be the one the first process writes (shared storage across nodes)."""
    from fmnist_tui import paths
    from fmnist_tui.config import make_config, with_overrides
    from fmnist_tui.engine.segment import check_device, with_data_dir
    from fmnist_tui.runs import RunStore, read_config

    resume_from = None
    if args.resume:
        info = RunStore(paths.runs_dir(args.runs_dir)).find(args.resume)
        values, _ = read_config(info.path)
        config = with_overrides(make_config(values, f"{info.path}/config.toml"), overrides)
        resume_from = str(info.last_checkpoint)
    return train(check_device(with_data_dir(config, args.data_dir)), resume_from)


if __name__ == "__main__":
    code = main()
    try:
        sys.stdout.flush()
    except OSError:
        pass
    os._exit(code)  # nothing left to write: no teardown of torch (nor a closed pipe's complaint)
