"""Runs on several processes and runs from the queue, for real: DDP over gloo, torchrun on loopback,
the scheduler's process. Tiny synthetic configs; each test starts real processes (seconds)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmnist_tui import evaluation
from fmnist_tui.engine.checkpoint import read_point
from fmnist_tui.runqueue import Queue
from fmnist_tui.runs import lock_held
from tests.test_cli import ROOT

pytestmark = pytest.mark.slow

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
SMALL = ["--set", "dataset=synthetic", "--set", "synthetic_size=2000", "--set", "val_size=400",
         "--set", "batch_size=32", "--set", "accelerator=cpu"]  # fmt: skip


def fmnist(*args: str, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmnist_tui", *args], cwd=ROOT, env=env or ENV,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def wait_for(predicate, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def only_run(runs: Path) -> Path:
    folders = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 1, folders
    return folders[0]


# -- DDP ------------------------------------------------------------------------------------
def test_a_two_process_ddp_run_writes_one_run_folder(tmp_path):
    runs = tmp_path / "runs"
    done = fmnist("run", "--preset", "mlp", *SMALL, "--set", "epochs=2", "--set", "devices=2",
                  "--runs-dir", str(runs), "--progress-every", "0")  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = only_run(runs)
    s = summary(folder)
    assert s["status"] == "finished" and s["world_size"] == 2
    assert "2 epochs x 25 steps" in done.stdout  # 1,600 images / (32 x 2) a step
    assert 0.5 < s["test_acc"] <= 1.0 and (folder / "checkpoints" / "best.ckpt").is_file()
    tested = evaluation.read(folder)  # both processes' shares of the test images, added up
    assert tested.accuracy == s["test_acc"] and tested.images == 2000 // 6
    assert sorted({m.index for m in tested.misclassified}) == sorted(m.index for m in tested.misclassified)
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert [e["world_size"] for e in events if e["event"] == "RunStarted"] == [2]
    assert not list(tmp_path.glob("runs/*/.rank*")) and not (runs / "lightning_logs").exists()


def test_ddp_stop_reaches_every_process_and_a_dead_rank_fails_the_run(tmp_path):
    runs = tmp_path / "runs"
    args = ["--preset", "mlp", *SMALL, "--set", "epochs=400", "--set", "devices=2", "--runs-dir", str(runs)]
    started = fmnist("run", "--detach", "--json", *args)
    assert started.returncode == 0, started.stderr
    reply = json.loads(started.stdout)
    folder, pid = Path(reply["run_dir"]), reply["pid"]
    wait_for(lambda: (folder / "checkpoints" / "last.ckpt").exists(), "an epoch is saved")
    (rank1,) = children(pid)
    os.kill(rank1, signal.SIGHUP)  # a background run's processes take no hang-up
    os.kill(pid, signal.SIGHUP)
    time.sleep(1.0)
    assert alive(pid) and alive(rank1)
    saved = fmnist("control", str(folder), "checkpoint")
    assert saved.returncode == 0 and "saved last.ckpt at step" in saved.stdout, saved.stderr
    changed = fmnist("control", str(folder), "lr=0.0005")
    assert changed.returncode == 0 and "lr 0.0005 from step" in changed.stdout, changed.stderr
    stopped = fmnist("control", str(folder), "stop-after-epoch")
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: not lock_held(folder), "the run stops after its epoch", 30)
    wait_for(lambda: not alive(rank1), "the other process ends too", 15)
    assert summary(folder)["status"] == "stopped"
    assert evaluation.read(folder).checkpoint == "best.ckpt"  # every process stopped, then tested best.ckpt together
    point = read_point(folder / "checkpoints" / "last.ckpt")
    assert point.step > 0 and point.step % 25 == 0, "stopped at an epoch's end (25 steps an epoch)"
    rows = (folder / "metrics.csv").read_text().splitlines()
    assert any(r.startswith("lr,") and ",0.0005," in r for r in rows)

    # Resumed, then one process killed: the run fails naming it, nothing hangs, checkpoints intact.
    resumed = fmnist("run", "--detach", "--json", "--resume", str(folder), "--runs-dir", str(runs))
    assert resumed.returncode == 0, resumed.stderr
    pid = json.loads(resumed.stdout)["pid"]
    wait_for(lambda: len(children(pid)) == 1, "the resume starts its other process")
    wait_for(lambda: read_point(folder / "checkpoints" / "last.ckpt").step > point.step, "it trains on", 60)
    (rank1,) = children(pid)
    os.kill(rank1, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: not lock_held(folder), "the run ends instead of hanging", 60)
    s = summary(folder)
    assert s["status"] == "failed" and s["error"] == "process 2 of 2 failed: killed by SIGKILL", s
    assert time.monotonic() - killed < 45
    assert read_point(folder / "checkpoints" / "last.ckpt").step > point.step  # loads: intact
    wait_for(lambda: not alive(pid), "the first process exits", 15)


def test_devices_beyond_the_machine_are_refused_before_anything_starts(tmp_path):
    done = fmnist("run", "--preset", "mlp", *SMALL, "--set", f"devices={os.cpu_count() + 1}",
                  "--runs-dir", str(tmp_path / "runs"))  # fmt: skip
    assert done.returncode == 2
    assert f"devices: {os.cpu_count() + 1} asked for, and this machine has {os.cpu_count()} CPU cores" in done.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_nodes_on_loopback_train_one_run(tmp_path):
    """The README's torchrun script, twice (node ranks 0 and 1, one process each) over 127.0.0.1."""
    runs = tmp_path / "runs"
    env = {**ENV, "NNODES": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "TORCHRUN": f"{sys.executable} -m torch.distributed.run", "FMNIST_TUI": f"{sys.executable} -m fmnist_tui"}  # fmt: skip
    nodes = [
        subprocess.Popen(
            [
                "bash",
                "examples/torchrun_node.sh",
                "--preset",
                "mlp",
                *SMALL,
                "--set",
                "epochs=2",
                "--runs-dir",
                str(runs),
                "--progress-every",
                "0",
            ],
            cwd=ROOT,
            env={**env, "NODE_RANK": str(node)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for node in (0, 1)
    ]
    outputs = [n.communicate(timeout=240) for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], [o[1][-2000:] for o in outputs]
    folder = only_run(runs)  # written by global rank 0 alone
    s = summary(folder)
    assert s["status"] == "finished" and s["world_size"] == 2
    assert "2 epochs x 25 steps" in outputs[0][0] and "finished: test_acc" in outputs[0][0]
    assert outputs[1][0] == ""  # the other node prints nothing of the run


def test_the_slurm_script_under_a_stand_in_srun(tmp_path):
    """The README's sbatch script with an `srun` that starts its two tasks here, with the variables
    SLURM gives them: Lightning's SLURM environment, one run folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(
        "#!/usr/bin/env bash\n"
        'for ((i = 0; i < SLURM_NTASKS; i++)); do SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NODEID=0 "$@" & done\n'
        "wait\n"
    )
    (bin_dir / "srun").chmod(0o755)
    runs = tmp_path / "runs"
    env = {**ENV, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FMNIST_TUI": f"{sys.executable} -m fmnist_tui",
           "RUNS_DIR": str(runs), "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "fmnist", "SLURM_NNODES": "1",
           "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NODELIST": "127.0.0.1",
           "MASTER_PORT": str(free_port())}  # fmt: skip
    done = subprocess.run(["bash", "examples/slurm.sbatch", "--preset", "mlp", *SMALL, "--set", "epochs=2",
                           "--progress-every", "0"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    folder = only_run(runs)
    s = summary(folder)
    assert s["status"] == "finished" and s["world_size"] == 2
    assert done.stdout.count("finished: test_acc") == 1  # one task reports the run


# -- the queue's scheduler ----------------------------------------------------------------------
def entries(runs: Path) -> dict[int, dict]:
    return {e.id: e.__dict__ for e in Queue(runs).load().entries}


def scheduler_pid(runs: Path) -> int | None:
    text = (runs / ".queue" / "scheduler.lock").read_text() if (runs / ".queue" / "scheduler.lock").exists() else ""
    from fmnist_tui.scheduler import running

    return int(text.split()[1]) if running(runs) and text.startswith("pid ") else None


def test_two_slots_run_two_at_once_and_the_scheduler_exits_when_empty(tmp_path):
    runs = tmp_path / "runs"
    added = fmnist("sweep", "--preset", "mlp", *SMALL, "--set", "epochs=3", "--grid", "lr=0.01,0.003",
                   "--slots", "2", "--runs-dir", str(runs))  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "scheduler started" in added.stdout
    both = []

    def two_running() -> bool:
        now = entries(runs)
        folders = [runs / e["run"] for e in now.values() if e["run"]]
        both.append(sum(lock_held(f) for f in folders))
        return both[-1] == 2 or all(e["state"] == "done" for e in now.values())

    wait_for(two_running, "both entries start", 120)
    assert max(both) == 2, "the two entries ran at the same time"
    wait_for(lambda: scheduler_pid(runs) is None, "the scheduler exits once the queue is empty", 120)
    final = entries(runs)
    assert [e["state"] for e in final.values()] == ["done", "done"]
    names = [e["run"] for e in final.values()]
    assert sorted(n.split("-", 2)[2] for n in names) == ["mlp-lr=0.003", "mlp-lr=0.01"]
    assert all(summary(runs / n)["status"] == "finished" for n in names)
    listing = fmnist("queue", "--runs-dir", str(runs))
    assert "scheduler not running" in listing.stdout and listing.stdout.count(" done ") == 2


def test_a_killed_scheduler_is_restarted_and_accounts_for_its_run(tmp_path):
    runs = tmp_path / "runs"
    first = fmnist("queue", "add", "--preset", "mlp", *SMALL, "--set", "epochs=400", "--runs-dir", str(runs))
    assert first.returncode == 0, first.stderr
    wait_for(lambda: entries(runs)[1]["state"] == "running", "the first entry runs")
    old = scheduler_pid(runs)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: scheduler_pid(runs) is None, "the scheduler is gone")
    run = runs / entries(runs)[1]["run"]
    assert lock_held(run), "its run goes on without it"
    second = fmnist("queue", "add", "--preset", "mlp", *SMALL, "--set", "epochs=1", "--runs-dir", str(runs))
    assert "scheduler started" in second.stdout
    wait_for(lambda: scheduler_pid(runs) not in (None, old), "a new scheduler serves the folder")
    time.sleep(2.0)
    now = entries(runs)
    assert now[1]["state"] == "running" and now[2]["state"] == "queued", "one slot: the second waits for the first"
    assert fmnist("control", str(run), "stop").returncode == 0
    wait_for(lambda: entries(runs)[2]["state"] == "done", "the second runs once the first ends", 120)
    assert entries(runs)[1]["state"] == "stopped"
    wait_for(lambda: scheduler_pid(runs) is None, "then the scheduler exits", 30)
