"""The run record across processes: kill -9, signals, two writers, a closed pipe, a full disk.

Each test drives the real `fmnist-tui run` command. Runs use one torch thread, as the
in-process reference does, so their numbers can be compared bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmnist_tui.config import make_config
from fmnist_tui.metrics import read_rows, recorded_seconds
from fmnist_tui.runs import RunStore
from tests.test_cli import ROOT
from tests.test_record import RECORD, assert_same_record, go, load, rows, summary

pytestmark = pytest.mark.slow

# 2,900 training images in batches of 32: 91 steps an epoch, half a second or so on one thread.
LONG = {**RECORD, "synthetic_size": 3000, "epochs": 5}
PER_EPOCH = 91
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return go(make_config(LONG), tmp_path_factory.mktemp("reference"))


@pytest.fixture
def preset(tmp_path) -> Path:
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "long.toml").write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in {**LONG, "name": "long"}.items()))
    return folder


def fmnist(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fmnist_tui", *args], cwd=ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # fmt: skip


def start(tmp_path, preset, *extra: str) -> tuple[subprocess.Popen, Path]:
    proc = fmnist("run", "--preset", "long", "--presets-dir", str(preset), "--runs-dir", str(tmp_path / "runs"), *extra)
    deadline = time.monotonic() + 60
    while not (folders := run_folders(tmp_path / "runs")):
        assert proc.poll() is None and time.monotonic() < deadline, (
            proc.stderr.read() if proc.poll() else "no run folder"
        )
        time.sleep(0.02)
    (folder,) = folders
    return proc, folder


def run_folders(runs: Path) -> list[Path]:
    """Run folders only: the store's short-lived `.write-test-*` probe is not a run."""
    return [p for p in runs.iterdir() if not p.name.startswith(".")] if runs.is_dir() else []


def wait_for_step(proc, folder: Path, step: int) -> None:
    """Poll metrics.csv, as a reader would, until a step row at or past `step` is there."""
    deadline = time.monotonic() + 120
    while not any(r["kind"] == "step" and int(r["step"]) >= step for r in read_rows(folder / "metrics.csv")):
        assert proc.poll() is None, f"the run ended early: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "the run did not get there"
        time.sleep(0.01)


def resume(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmnist_tui", "run", "--resume", str(folder), *extra], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_kill_9_mid_epoch_then_resume_gives_the_uninterrupted_record(tmp_path, preset, reference):
    proc, folder = start(tmp_path, preset)
    wait_for_step(proc, folder, 2 * PER_EPOCH + 30)  # a third of the way into the third epoch
    proc.kill()
    proc.wait(timeout=10)
    assert RunStore(tmp_path / "runs").info(folder).status == "interrupted"
    saved = load(folder / "checkpoints/last.ckpt")["global_step"]
    assert saved % PER_EPOCH == 0 and max(int(r["step"]) for r in rows(folder, "step")) > saved  # steps the kill lost
    before_kill = [float(r["seconds"]) for r in rows(folder, "epoch")]

    done = resume(folder)
    assert done.returncode == 0, done.stderr
    assert_same_record(reference.run_dir, str(folder))
    s = summary(folder)
    assert s["status"] == "finished" and s["resumed"] == 1
    assert s["duration_s"] == pytest.approx(recorded_seconds(read_rows(folder / "metrics.csv")), abs=2e-3)
    assert (
        s["duration_s"]
        > sum(before_kill) + sum(float(r["seconds"]) for r in rows(folder, "epoch")[len(before_kill) :]) - 1e-3
    )


@pytest.mark.parametrize(
    "sig, status, code", [(signal.SIGTERM, "interrupted", 143)]
)  # SIGINT, SIGHUP: below, test_faults
def test_a_signal_keeps_every_step_and_the_resume_matches(tmp_path, preset, reference, sig, status, code):
    proc, folder = start(tmp_path, preset)
    wait_for_step(proc, folder, PER_EPOCH + 30)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == code
    saved = load(folder / "checkpoints/last.ckpt")["global_step"]
    assert saved % PER_EPOCH != 0, "stopped mid-epoch, within a step"
    assert int(rows(folder, "step")[-1]["step"]) == saved, "the steps since the last tick are recorded"
    assert summary(folder)["status"] == status
    done = resume(folder)
    assert done.returncode == 0, done.stderr
    assert_same_record(reference.run_dir, str(folder))


def test_a_run_being_written_cannot_be_resumed_by_another_process(tmp_path, preset):
    proc, folder = start(tmp_path, preset, "--set", "epochs=100")  # still running when the others start
    wait_for_step(proc, folder, 10)
    assert RunStore(tmp_path / "runs").info(folder).status == "running"
    second = resume(folder, "--set", "epochs=9")
    assert second.returncode == 2 and second.stdout == ""
    assert second.stderr.startswith("fmnist-tui: error: run ") and "being written by another process" in second.stderr
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert proc.poll() is None and summary(folder)["status"] == "running"  # the writer was not disturbed

    (folder / "writer.lock").unlink()  # "a stale pid file"
    deadline = time.monotonic() + 10
    while not (folder / "writer.lock").exists():  # the writer notices at its next progress tick
        assert time.monotonic() < deadline
        time.sleep(0.01)
    third = resume(folder)
    assert third.returncode == 2 and "being written by another process" in third.stderr

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130 and summary(folder)["status"] == "stopped"
    steps = [int(r["step"]) for r in rows(folder, "step")]
    assert steps == list(range(1, len(steps) + 1)) and "epochs = 100" in (folder / "config.toml").read_text()


def test_running_is_the_lock_not_the_pid(tmp_path):
    config = make_config(RECORD)
    store = RunStore(tmp_path)
    run = store.create(config)
    run.unlock()
    run.write_summary(status="running", pid=1)  # pid 1 is always alive
    assert store.info(run.path).status == "interrupted"
    run.write_summary(status="finished", pid=os.getpid())
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(run.path / "writer.lock")], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert store.info(run.path).status == "running"  # e.g. a resume that has not yet rewritten the summary
    finally:
        holder.kill()
        holder.wait()
    assert store.info(run.path).status == "finished"


def test_a_closed_stdout_does_not_end_the_run(tmp_path, preset):
    proc = fmnist("run", "--preset", "long", "--presets-dir", str(preset), "--runs-dir", str(tmp_path / "runs"),
                  "--set", "epochs=2")  # fmt: skip
    assert proc.stdout.readline().startswith("run ")  # `| head -1`
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    assert summary(folder)["status"] == "finished"
    assert "Traceback" not in proc.stderr.read()


def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def test_a_full_disk_is_one_line_and_a_failed_run_with_its_checkpoint_intact(tmp_path, preset):
    disk = tmp_path / "small-disk"
    if not mount_tmpfs(disk, "1200k"):  # room for one checkpoint of 680 KB, not for the next one beside it
        pytest.skip("mounting a small tmpfs needs root (test_faults.py fills a disk without it)")
    try:
        proc = subprocess.run([sys.executable, "-m", "fmnist_tui", "run", "--preset", "long", "--presets-dir", str(preset),
                               "--runs-dir", str(disk), "--set", "hidden=64"],
                              cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        (error,) = [line for line in proc.stdout.splitlines() if line.startswith("error: ")]
        assert error.startswith("error: disk full: no space left to write ") and "--resume" in error
        (folder,) = disk.iterdir()
        s = summary(folder)
        assert s["status"] == "failed" and s["error"].startswith("disk full")
        assert not [p.name for p in folder.rglob(".*.tmp")], "no temporary file left"
        assert load(folder / "checkpoints/last.ckpt")["global_step"] % PER_EPOCH == 0  # the previous one, whole
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_writer_whose_lock_another_process_took_stops_writing(tmp_path):
    import fcntl

    from fmnist_tui.runs import LockLost

    run = RunStore(tmp_path).create(make_config(RECORD))
    (run.path / "writer.lock").unlink()
    other = open(run.path / "writer.lock", "a")  # a second writer's new lock file
    fcntl.flock(other, fcntl.LOCK_EX)
    with pytest.raises(LockLost, match="another process took over run"):
        run.check_lock()
    assert run.lost
    other.close()


def test_a_kill_leaves_the_figures_so_far_in_the_summary(tmp_path, preset):
    proc, folder = start(tmp_path, preset)
    wait_for_step(proc, folder, PER_EPOCH + 5)
    proc.kill()
    proc.wait(timeout=10)
    s = summary(folder)
    assert s["best_val_acc"] == pytest.approx(float(rows(folder, "epoch")[0]["val_acc"])) and s["duration_s"] > 0
    listing = subprocess.run([sys.executable, "-m", "fmnist_tui", "runs", "--runs-dir", str(tmp_path / "runs")], cwd=ROOT,
                             env=ENV, capture_output=True, text=True)  # fmt: skip
    line = listing.stdout.splitlines()[1]
    assert "interrupted" in line and "%" in line


def test_a_closed_stdout_from_the_start_does_not_stop_the_run(tmp_path, preset):
    proc = subprocess.run(f"{sys.executable} -m fmnist_tui run --preset long --presets-dir {preset} "
                          f"--runs-dir {tmp_path / 'runs'} --set epochs=1 >&-", shell=True, cwd=ROOT, env=ENV,
                          capture_output=False, stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert summary(folder)["status"] == "finished"


def test_listing_into_a_closed_pipe_or_a_full_disk_is_quiet(tmp_path):
    runs = tmp_path / "runs"
    for i in range(3000):  # more than a pipe holds
        (runs / f"20260101-{i:06d}-x").mkdir(parents=True)
    closed = subprocess.run(f"{sys.executable} -m fmnist_tui runs --runs-dir {runs} | head -1", shell=True, cwd=ROOT,
                            env=ENV, capture_output=True, text=True)  # fmt: skip
    assert closed.stdout.startswith("RUN") and closed.stderr == ""
    full = subprocess.run([sys.executable, "-m", "fmnist_tui", "runs", "--runs-dir", str(runs)], cwd=ROOT, env=ENV,
                          stdout=open("/dev/full", "w"), stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert (
        full.returncode == 1 and full.stderr == "fmnist-tui: error: cannot write the output: No space left on device\n"
    )
