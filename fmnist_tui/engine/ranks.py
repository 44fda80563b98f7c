"""A run on several devices: Lightning's DDP, its other processes started by the run's own process.

The run's process is rank 0: it alone writes the run folder, the event log and the
checkpoints, and serves the controls. For `devices = k` on one machine it starts ranks
1..k-1 itself (`python -m fmnist_tui.cli.rank`, the resolved config in the environment),
with the variables Lightning's own environment reads (MASTER_ADDR, MASTER_PORT,
WORLD_SIZE, NODE_RANK, LOCAL_RANK), so Lightning starts none. Lightning's own launcher is
not used: it runs the command line again (a background run's process reads its job from
a pipe that is gone by then) and, when a rank dies, SIGKILLs the first process before it
can write how the run ended. Under torchrun or SLURM (`num_nodes`, README) the launcher
starts every process and none is started here.

A rank that fails is reported by rank 0 as the run's error ("process 2 of 2 failed: ...").
The others do not hang: gloo fails a collective as soon as a peer's socket closes, NCCL
after TIMEOUT_S, and if rank 0 is still stuck HANG_S after a rank died, it writes the end
itself and exits. A rank whose parent dies exits too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta

JOB_ENV = "FMNIST_TUI_RANK_JOB"
TIMEOUT_S = 120.0  # a collective waiting longer than this fails (a process stuck without dying)
HANG_S = 10.0  # after a rank died, rank 0 ends the run itself if it has not begun to by then (gloo notices
# a dead peer within a second or two; nothing notices one that died before they all met)


def launched_externally() -> bool:
    """torchrun, SLURM or this module started the processes (each runs the command itself)."""
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    return "LOCAL_RANK" in os.environ or TorchElasticEnvironment.detect() or SLURMEnvironment.detect()


def global_rank() -> int:
    """This process's rank when a cluster launcher started it (0 otherwise)."""
    if not launched_externally():
        return 0
    for name in ("RANK", "SLURM_PROCID"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def strategy(on_gpu: bool):
    from pytorch_lightning.strategies import DDPStrategy

    return DDPStrategy(process_group_backend="nccl" if on_gpu else "gloo", timeout=timedelta(seconds=TIMEOUT_S))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # loopback only: the ranks of one machine talk over it
        return s.getsockname()[1]


def _how_it_ended(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class RankGroup:
    """Ranks 1..world-1 of this machine, watched: `failure` says which one failed and why."""

    def __init__(self, world: int, job: dict, on_hang: Callable[[str], None]):
        self.world, self.on_hang = world, on_hang
        self.failure: str | None = None
        self.failed = threading.Event()
        self.ended = threading.Event()  # rank 0 is done: no need to rescue it
        self._closing = False
        shared = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(world),
                  "NODE_RANK": "0"}  # fmt: skip
        os.environ.update(shared, LOCAL_RANK="0")  # this process's own: Lightning reads them when it sets up
        self.procs: list[subprocess.Popen] = []
        for rank in range(1, world):
            env = {**os.environ, **shared, "LOCAL_RANK": str(rank), JOB_ENV: json.dumps(job)}
            # A session of its own: Ctrl-C and a terminal's hang-up reach rank 0 alone, which stops every
            # process at the same step (even one still importing torch, which such a signal would kill).
            proc = subprocess.Popen([sys.executable, "-P", "-m", "fmnist_tui.cli.rank"], env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)  # fmt: skip
            self.procs.append(proc)
            threading.Thread(target=self._watch, args=(rank, proc), name=f"fmnist-rank-{rank}", daemon=True).start()

    def _watch(self, rank: int, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        error = ""
        for line in proc.stdout:  # a failing rank says why in one JSON line before it exits
            try:
                error = str(json.loads(line).get("error", "")) or error
            except (ValueError, AttributeError):
                pass
        code = proc.wait()
        if code == 0 or self._closing or self.failed.is_set():
            return
        self.failure = f"process {rank + 1} of {self.world} failed: {error or _how_it_ended(code)}"
        self.failed.set()
        if not self.ended.wait(HANG_S):
            self.on_hang(self.failure)

    def wait_failure(self, timeout_s: float) -> str | None:
        """After rank 0's own error: a rank's failure, if one caused it (its watcher may be a moment behind)."""
        deadline = time.monotonic() + timeout_s
        while not self.failed.is_set() and time.monotonic() < deadline:
            if all(p.poll() == 0 for p in self.procs):
                break
            self.failed.wait(0.1)
        return self.failure

    def close(self, wait_s: float) -> None:
        """Rank 0 is done: the others end with it (given `wait_s` to finish on their own)."""
        self.ended.set()
        deadline = time.monotonic() + wait_s
        for proc in self.procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self._closing = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def exit_with_parent() -> None:
    """A rank started by rank 0 ends when rank 0 does, however it ends (kill -9 included)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="fmnist-parent", daemon=True).start()
