"""Background runs from the shell: `run --detach`, `control`, `wait`, kill -9, a full disk.

Real processes on synthetic data (one torch thread, so records compare bit for bit).
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
from fmnist_tui.engine.checkpoint import read_point
from fmnist_tui.engine.eventlog import EventLog, EventReader
from fmnist_tui.engine.events import Control, EpochEnd, StepProgress
from fmnist_tui.follow import Follower
from fmnist_tui.metrics import read_rows
from fmnist_tui.runs import lock_held
from tests.test_cli import ROOT
from tests.test_record import RECORD, assert_same_record, go, summary
from tests.test_record_processes import ENV, PER_EPOCH, preset, reference, resume  # noqa: F401 - fixtures by name

pytestmark = pytest.mark.slow


def fmnist(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmnist_tui", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def detach(tmp_path, preset_dir, *extra: str) -> tuple[Path, int]:
    started = time.monotonic()
    done = fmnist("run", "--detach", "--json", "--preset", "long", "--presets-dir", str(preset_dir),
                  "--runs-dir", str(tmp_path / "runs"), *extra)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 20, "detaching returns within seconds"
    reply = json.loads(done.stdout)
    return Path(reply["run_dir"]), reply["pid"]


def wait_for(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def steps_done(folder: Path) -> int:
    return max((int(r["step"]) for r in read_rows(folder / "metrics.csv") if r["kind"] == "step"), default=0)


def control(folder: Path, action: str) -> subprocess.CompletedProcess:
    return fmnist("control", str(folder), action)


def test_a_detached_run_outlives_a_hang_up_obeys_its_controls_and_is_waited_for(tmp_path, preset):
    folder, pid = detach(tmp_path, preset, "--set", "epochs=100")
    assert lock_held(folder)
    listed = json.loads(fmnist("runs", "--json", "--runs-dir", str(tmp_path / "runs")).stdout)
    assert [r["status"] for r in listed] == ["running"]
    os.kill(pid, signal.SIGHUP)  # the terminal it came from is gone: it does not care
    wait_for(lambda: steps_done(folder) > 20, "the run trains")

    lr = control(folder, "lr=0.0005")
    assert lr.returncode == 0 and "lr 0.0005 from step" in lr.stdout, lr.stderr
    saved = control(folder, "checkpoint")
    assert saved.returncode == 0, saved.stderr
    step = int(saved.stdout.split("at step ")[1].split(";")[0])
    assert read_point(folder / "checkpoints/last.ckpt").step >= step  # (an epoch end may have come since)
    after = control(folder, "stop-after-epoch")
    assert after.returncode == 0 and "end of this epoch" in after.stdout

    waited = fmnist("wait", str(folder))
    assert waited.returncode == 130 and waited.stdout.startswith("stopped"), waited.stderr
    s = summary(folder)
    epochs = [r for r in read_rows(folder / "metrics.csv") if r["kind"] == "epoch"]
    assert s["status"] == "stopped" and epochs
    assert read_point(folder / "checkpoints/last.ckpt").step == len(epochs) * PER_EPOCH  # stopped at an epoch's end
    assert [r["lr"] for r in read_rows(folder / "metrics.csv") if r["kind"] == "lr"] == ["0.0005"]
    controls = [e.action for e in EventReader(folder / "events.jsonl").read_all() if isinstance(e, Control)]
    assert controls == ["lr", "checkpoint", "stop-after-epoch"]
    log = (folder / "run.log").read_text()
    assert "epoch 1/100" in log and "control: lr 0.0005" in log and "stopped" in log
    assert not list((tmp_path / "runs").glob(".background-*")), "the start-up log went into run.log"

    late = control(folder, "stop")
    assert late.returncode == 2 and late.stderr.count("\n") == 1 and "is not running (stopped)" in late.stderr
    unknown = fmnist("control", "no-such-run", "stop", "--runs-dir", str(tmp_path / "runs"))
    assert unknown.returncode == 2 and "no run 'no-such-run'" in unknown.stderr


def test_a_checkpoint_taken_mid_epoch_then_kill_9_resumes_to_the_uninterrupted_record(tmp_path, preset, reference):
    folder, pid = detach(tmp_path, preset)
    from fmnist_tui.engine.control import send

    wait_for(lambda: steps_done(folder) > PER_EPOCH + 8, "the second epoch starts")
    # In this process, not through a `control` process: starting Python on a busy machine took long
    # enough (80 steps) for the epoch to end, and its last.ckpt to replace the mid-epoch one.
    saved = send(folder, "checkpoint")
    os.kill(pid, signal.SIGKILL)
    step = int(saved.split("at step ")[1].split(";")[0])
    assert step % PER_EPOCH and read_point(folder / "checkpoints/last.ckpt").step == step, "a mid-epoch checkpoint"

    started = time.monotonic()
    follower = Follower(folder)
    while not follower.over:
        follower.poll()
        time.sleep(0.05)
    assert follower.ended.status == "interrupted" and follower.vanished and time.monotonic() - started < 2
    assert fmnist("wait", str(folder)).returncode == 137

    done = resume(folder)
    assert done.returncode == 0, done.stderr
    assert_same_record(reference.run_dir, str(folder))


def test_the_event_log_replays_to_the_record(tmp_path):
    end = go(make_config(RECORD), tmp_path)
    events = EventReader(Path(end.run_dir) / "events.jsonl").read_all()
    rows = read_rows(Path(end.run_dir) / "metrics.csv")
    losses = [loss for e in events if isinstance(e, StepProgress) for loss in e.losses]
    assert losses == [float(r["train_loss"]) for r in rows if r["kind"] == "step"]
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [(e.epoch, e.step, e.train_loss, e.val_acc, e.lr) for e in epochs] == [
        (int(r["epoch"]), int(r["step"]), float(r["train_loss"]), float(r["val_acc"]), float(r["lr"]))
        for r in rows
        if r["kind"] == "epoch"
    ]
    assert type(events[-1]).__name__ == "RunEnded" and events[-1].status == "finished"


def test_a_full_disk_while_writing_events_fails_the_run_with_the_reason_and_whole_checkpoints(tmp_path, monkeypatch):
    real = EventLog._write
    writes = {"n": 0}

    def write(self, data):
        writes["n"] += b'"EpochEnd"' in data
        if writes["n"] == 2:  # the second epoch's end meets a full disk, and every write after it
            self._file = open("/dev/full", "wb")  # noqa: SIM115
        real(self, data)

    monkeypatch.setattr(EventLog, "_write", write)
    end = go(make_config(RECORD), tmp_path)
    s = summary(end.run_dir)
    assert end.status == "failed" and s["status"] == "failed"
    assert "disk full" in s["error"] and "events.jsonl" in s["error"] and "--resume" in s["error"]
    read_point(Path(end.run_dir) / "checkpoints/last.ckpt")  # loads


def test_a_process_waiting_to_take_a_run_over_goes_on_only_if_it_was_handed_over(tmp_path):
    from fmnist_tui.engine.runner import run
    from fmnist_tui.runs import RunStoreError

    end = go(make_config({**RECORD, "epochs": 1}), tmp_path)
    with pytest.raises(RunStoreError, match="was not handed over to this process"):
        run(None, lambda e: None, runs_dir=tmp_path / "runs", resume=end.run_dir, handover=True)
    assert summary(end.run_dir)["status"] == "finished"


def test_detaching_into_an_unwritable_runs_folder_is_one_line(tmp_path, preset):
    blocked = tmp_path / "file"
    blocked.write_text("")
    done = fmnist("run", "--detach", "--preset", "long", "--presets-dir", str(preset), "--runs-dir", str(blocked))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not writable" in done.stderr
    bad = fmnist("run", "--detach", "--preset", "long", "--presets-dir", str(preset), "--set", "lr=-1",
                 "--runs-dir", str(tmp_path / "runs"))  # fmt: skip
    assert bad.returncode == 2 and "lr" in bad.stderr and bad.stderr.count("\n") == 1
