"""Stops at every phase, signals and kills: no hang, no corrupt file, nothing lost."""

import json
import os
import signal
import subprocess
import sys
import threading
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
    end = run(tiny_config, lambda e: None, stop, runs_dir=tmp_path)
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


@pytest.mark.slow
def test_hang_up_checkpoints_and_records_interrupted(tmp_path):
    # SIGTERM and SIGINT, each with a resume after it, and kill -9: test_record_processes.py
    proc = start_headless(tmp_path)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 129  # 128 + SIGHUP, as in the app
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    ckpt = loads(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] >= 182  # at least the two epochs (91 steps each) printed before the signal


def test_full_disk_at_a_checkpoint_fails_the_run_in_one_line_keeping_the_last_one(tiny_config, tmp_path, full_disk_at):
    import pytorch_lightning as pl

    class FillTheDisk(pl.Callback):  # runs after the epoch's checkpoint is saved
        def on_train_epoch_end(self, trainer, pl_module):
            full_disk_at("last.ckpt")

    events = []
    end = run(with_overrides(tiny_config, {"epochs": 3}), events.append, runs_dir=tmp_path, callbacks=[FillTheDisk()])
    folder = Path(end.run_dir)
    assert end.status == "failed"
    assert end.error == (f"disk full: no space left to write {folder}/checkpoints/last.ckpt. "
                         f"Free some space, then: fmnist-tui run --resume {folder.name}")  # fmt: skip
    assert not [e for e in events if getattr(e, "level", "") == "ERROR"], "no traceback"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == end.error
    assert not list(folder.rglob(".*.tmp")), "no temporary file (or planted link) left"
    assert loads(folder / "checkpoints" / "last.ckpt")["global_step"] == 10  # the first epoch's, intact


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
    from fmnist_tui.metrics import read_metrics

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
