"""Stops at every phase, signals and kills: no hang, no corrupt file, nothing lost."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from fmnist_tui.config import with_overrides
from fmnist_tui.engine.checkpoint import AtomicCheckpointIO
from fmnist_tui.engine.module import Classifier
from fmnist_tui.engine.runner import run
from fmnist_tui.runs import RunStore
from tests.conftest import TINY
from tests.test_cli import ROOT


def loads(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def stop_inside(monkeypatch, cls, name, stop):
    real = getattr(cls, name)

    def hooked(self, *args, **kwargs):
        stop.set()
        stop.set()  # twice in quick succession changes nothing
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, hooked)


@pytest.mark.parametrize("phase", ["validation_step", "test_step", "save_checkpoint"])
def test_stop_in_any_phase_saves_a_loadable_checkpoint(tiny_config, tmp_path, monkeypatch, phase):
    stop = threading.Event()
    target = AtomicCheckpointIO if phase == "save_checkpoint" else Classifier
    stop_inside(monkeypatch, target, phase, stop)
    started = time.monotonic()
    end = run(tiny_config, lambda e: None, stop, runs_dir=tmp_path)
    assert time.monotonic() - started < 30
    assert end.status == "stopped"
    ckpt = loads(Path(end.run_dir) / "checkpoints" / "last.ckpt")
    assert "state_dict" in ckpt
    assert not list(Path(end.run_dir).glob("checkpoints/.*.tmp")), "no temporary file left behind"
    assert json.loads((Path(end.run_dir) / "summary.json").read_text())["status"] == "stopped"


def start_headless(tmp_path, *extra):
    preset = tmp_path / "presets"
    preset.mkdir(exist_ok=True)
    values = {**TINY, "synthetic_size": 3000, "epochs": 200}
    (preset / "tiny.toml").write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items()))
    cmd = [sys.executable, "-m", "fmnist_tui", "run", "--preset", "tiny", "--presets-dir", str(preset),
           "--runs-dir", str(tmp_path / "runs"), *extra]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in proc.stdout:  # the checkpoint follows the epoch line: wait for the next one
        if line.startswith("epoch 2/"):
            return proc
    raise AssertionError(f"no epoch line; stderr: {proc.stderr.read()}")


@pytest.mark.parametrize("sig, status, code", [(signal.SIGTERM, "interrupted", 143), (signal.SIGHUP, "interrupted", 143),
                                               (signal.SIGINT, "stopped", 130)])  # fmt: skip
def test_signals_checkpoint_and_record_the_end(tmp_path, sig, status, code):
    proc = start_headless(tmp_path)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == code
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == status
    ckpt = loads(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] >= 182  # at least the two epochs (91 steps each) printed before the signal


def test_sigkill_keeps_config_and_metrics_lists_interrupted_and_resumes(tmp_path):
    proc = start_headless(tmp_path)
    proc.kill()
    proc.wait(timeout=10)
    (run_dir,) = (tmp_path / "runs").iterdir()
    info = RunStore(tmp_path / "runs").info(run_dir)
    assert info.status == "interrupted" and info.config["name"] == "tiny"
    assert "\nepoch,1,182," in (run_dir / "metrics.csv").read_text()
    done = loads(run_dir / "checkpoints" / "last.ckpt")["epoch"] + 1  # epochs the checkpoint holds
    resumed = subprocess.run([sys.executable, "-m", "fmnist_tui", "run", "--resume", str(run_dir),
                              "--set", f"epochs={done + 1}"], capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at epoch {done + 1}" in resumed.stdout
    assert f"epoch {done + 1}/{done + 1}  train_loss" in resumed.stdout
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_damaged_run_folders_still_list(tmp_path, tiny_config):
    store = RunStore(tmp_path)
    ok, no_summary, bad_summary, bad_metrics = (store.create(tiny_config).path for _ in range(4))
    (no_summary / "summary.json").unlink()
    (bad_summary / "summary.json").write_text("{not json")
    (bad_metrics / "metrics.csv").write_bytes(b"\xff\xfe garbage\n1,2,3\n")
    (tmp_path / "stray-folder").mkdir()
    listed = {r.path: r for r in store.list()}
    assert len(listed) == 5
    assert listed[no_summary].status == listed[bad_summary].status == "incomplete"
    assert listed[tmp_path / "stray-folder"].status == "incomplete"
    from fmnist_tui.runs import read_metrics

    assert read_metrics(bad_metrics) == ([], [])


def test_unwritable_runs_folder_is_refused_before_start(tiny_config, tmp_path):
    if os.geteuid() == 0:
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        runs = blocker  # even root cannot make a folder inside a file
    else:
        runs = tmp_path / "ro"
        runs.mkdir(mode=0o500)
    from fmnist_tui.runs import RunStoreError

    with pytest.raises(RunStoreError, match="not writable"):
        run(tiny_config, lambda e: None, runs_dir=runs)


def test_stop_twice_quickly_from_the_sink(tiny_config, tmp_path):
    stop = threading.Event()

    def sink(event):
        stop.set()
        stop.set()

    end = run(with_overrides(tiny_config, {"progress_hz": 1000.0}), sink, stop, runs_dir=tmp_path)
    assert end.status == "stopped"
