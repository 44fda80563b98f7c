"""The run record: checkpoints, what each test figure is of, resume, metrics.csv (in-process runs).

Runs here use dropout and augmentation, so "bit-identical" also covers the random numbers.
The kill -9, signal, pipe and two-process cases are in test_record_processes.py.
"""

from __future__ import annotations

import csv
import json
import math
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from fmnist_tui.config import ConfigError, make_config, with_overrides
from fmnist_tui.engine import models
from fmnist_tui.engine.data import FashionData
from fmnist_tui.engine.events import EpochEnd, LogLine
from fmnist_tui.engine.module import Classifier
from fmnist_tui.engine.runner import run
from fmnist_tui.engine.stop import StopRequest
from fmnist_tui.runs import RunStore
from tests.conftest import TINY

# 900 training images in batches of 32: 29 steps an epoch, in groups of 8, 8, 8 and 5.
RECORD = {
    **TINY,
    "synthetic_size": 1000,
    "epochs": 4,
    "dropout": 0.2,
    "augment": "crop_flip_erase",
    "schedule": "onecycle",
}
PER_EPOCH = 29


def go(config, tmp_path, stop=None, events=None, **kwargs):
    sink = events.append if events is not None else (lambda e: None)
    return run(config, sink, stop, runs_dir=tmp_path / "runs", cpu_threads=1, **kwargs)


def rows(run_dir, kind=None) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if kind is None or r["kind"] == kind]


def load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def summary(run_dir) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def assert_same_record(reference: str, other: str) -> None:
    """Each step once and in order, the same losses, epoch and test rows, bit-identical final weights."""
    steps = [int(r["step"]) for r in rows(other, "step")]
    assert steps == list(range(1, len(steps) + 1)), "each step once, in order"
    assert [r["train_loss"] for r in rows(other, "step")] == [r["train_loss"] for r in rows(reference, "step")]

    def no_time(kind):
        return lambda d: [{k: v for k, v in r.items() if k != "seconds"} for r in rows(d, kind)]

    assert no_time("epoch")(other) == no_time("epoch")(reference)
    assert no_time("test")(other) == no_time("test")(reference)
    ours, theirs = load(Path(other) / "checkpoints/last.ckpt"), load(Path(reference) / "checkpoints/last.ckpt")
    assert ours["global_step"] == theirs["global_step"]
    assert all(torch.equal(ours["state_dict"][k], theirs["state_dict"][k]) for k in theirs["state_dict"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every stop/resume sequence must reproduce."""
    return go(make_config(RECORD), tmp_path_factory.mktemp("reference"))


def stop_when(monkeypatch, stop: StopRequest, step: int, phase: str) -> None:
    """Ask to stop while the step after `step` is computed, or while validating after `step`."""
    name = "forward" if phase == "train" else "validation_step"
    real = getattr(Classifier, name)

    def hooked(self, *args, **kwargs):
        if self.trainer.global_step == step and (phase != "train" or self.training):
            stop.request()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Classifier, name, hooked)


@pytest.mark.parametrize("stops", [
    [(19, "train")],  # mid-group: the group of steps 17-24
    [(32, "train")],  # on a group boundary
    [(PER_EPOCH, "val")],  # inside the first epoch's validation
    [(40, "train"), (2 * PER_EPOCH, "val"), (100, "train")],  # three segments
])  # fmt: skip
def test_stop_and_resume_anywhere_gives_the_uninterrupted_record(tmp_path, monkeypatch, reference, stops):
    end = None
    for n, (step, phase) in enumerate(stops):
        stop = StopRequest()
        stop_when(monkeypatch, stop, step, phase)
        end = go(make_config(RECORD), tmp_path, stop) if n == 0 else go(None, tmp_path, stop, resume=end.run_dir)
        monkeypatch.undo()
        assert end.status == "stopped"
        ckpt = load(Path(end.run_dir) / "checkpoints/last.ckpt")
        assert ckpt["global_step"] == (step + 1 if phase == "train" else step)  # the step being computed ends
        assert int(rows(end.run_dir, "step")[-1]["step"]) == ckpt["global_step"], "no step lost at the stop"
    last = go(None, tmp_path, resume=end.run_dir)
    assert last.status == "finished"
    assert_same_record(reference.run_dir, last.run_dir)
    assert summary(last.run_dir)["resumed"] == len(stops)


def test_last_ckpt_is_every_epoch_and_every_test_figure_names_its_weights(tmp_path, monkeypatch):
    accs = [0.5, 0.7, 0.6]  # the second epoch is the best, the third is not

    def on_validation_epoch_end(self):
        self.log("val_loss", self.val_loss)
        self.log("val_acc", accs[self.current_epoch])
        self.val_acc.reset()

    monkeypatch.setattr(Classifier, "on_validation_epoch_end", on_validation_epoch_end)
    end = go(with_overrides(make_config(RECORD), {"epochs": 3}), tmp_path)
    folder = Path(end.run_dir)
    last, best = load(folder / "checkpoints/last.ckpt"), load(folder / "checkpoints/best.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 3 * PER_EPOCH)  # the end of the last epoch, not of the best
    assert (best["epoch"], best["global_step"]) == (1, 2 * PER_EPOCH)

    s = summary(folder)
    assert (s["test_checkpoint"], s["test_epoch"], s["test_step"]) == ("best.ckpt", 1, 2 * PER_EPOCH)
    assert (s["last_test_epoch"], s["last_test_step"]) == (2, 3 * PER_EPOCH)
    assert s["checkpoint"].endswith("best.ckpt") and s["best_val_acc"] == pytest.approx(0.7)
    tests = {r["weights"]: r for r in rows(folder, "test")}
    assert set(tests) == {"best", "last"} and tests["best"]["step"] == str(2 * PER_EPOCH)
    # Each figure is what the checkpoint it names scores, loaded with plain torch as a user would.
    assert accuracy_of(best, folder) == pytest.approx(s["test_acc"], abs=1e-6)
    assert accuracy_of(last, folder) == pytest.approx(s["last_test_acc"], abs=1e-6)
    assert s["test_acc"] != s["last_test_acc"]
    assert end.test_acc == s["test_acc"] and end.last_test_acc == s["last_test_acc"] and end.test_epoch == 1


def accuracy_of(ckpt: dict, folder: Path) -> float:
    """Test accuracy of a checkpoint with plain torch: its config and normalisation from its hyperparameters."""
    config = make_config(ckpt["hyper_parameters"]["config"])
    net = models.build(config)
    net.load_state_dict({k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")})
    net.eval()
    data = FashionData(config, folder)
    data.load()
    x = (data._cpu["test_x"].unsqueeze(1).float() / 255 - config.norm_mean) / config.norm_std
    with torch.no_grad():
        return (net(x).argmax(1) == data._cpu["test_y"].long()).float().mean().item()


def test_normalisation_is_recorded_in_config_and_checkpoints(tmp_path):
    end = go(with_overrides(make_config(RECORD), {"epochs": 1}), tmp_path)
    info = RunStore(tmp_path / "runs").info(Path(end.run_dir))
    hparams = load(Path(end.run_dir) / "checkpoints/last.ckpt")["hyper_parameters"]["config"]
    data = FashionData(make_config({**RECORD, "normalize": False}), tmp_path)
    data.load()
    pixels = data._cpu["train_x"].float() / 255  # the training split only
    assert info.config["norm_mean"] == hparams["norm_mean"] == pytest.approx(pixels.mean().item())
    assert info.config["norm_std"] == hparams["norm_std"] == pytest.approx(pixels.std().item())

    plain = go(with_overrides(make_config(RECORD), {"epochs": 1, "normalize": False}), tmp_path)
    assert "norm_mean" not in (Path(plain.run_dir) / "config.toml").read_text()  # nothing was applied


def lr_probe():
    import pytorch_lightning as pl

    class LrProbe(pl.Callback):
        def __init__(self):
            self.lrs = []

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):  # every step, in manual optimisation
            self.lrs.append(optimizer.param_groups[0]["lr"])

    return LrProbe()


def test_resume_with_more_epochs_fits_the_schedule_without_a_jump(tmp_path, monkeypatch):
    stop = StopRequest()
    stop_when(monkeypatch, stop, 40, "train")
    first, before = lr_probe(), None
    end = go(make_config(RECORD), tmp_path, stop, callbacks=[first])
    monkeypatch.undo()
    before = load(Path(end.run_dir) / "checkpoints/last.ckpt")["optimizer_states"][0]["param_groups"][0]["lr"]
    after = lr_probe()
    more = go(None, tmp_path, resume=end.run_dir, overrides={"epochs": 6}, callbacks=[after])
    assert more.status == "finished" and len(after.lrs) == 6 * PER_EPOCH - 41
    assert after.lrs[0] == before  # continuous at the resume...
    biggest_step = max(abs(a - b) for a, b in pairwise(first.lrs))
    assert max(abs(a - b) for a, b in pairwise(after.lrs)) <= biggest_step  # ...and no jump after it
    assert after.lrs[-1] == pytest.approx(RECORD["lr"] / 25 / 1e4)  # one-cycle's last lr, at the new last step


def test_extending_a_finished_run_and_a_failed_resume_keep_the_results(tmp_path, monkeypatch):
    done = go(with_overrides(make_config(RECORD), {"epochs": 2}), tmp_path)
    finished = summary(done.run_dir)
    real = Classifier.training_step

    def broken(self, batches, batch_idx):
        raise RuntimeError("boom in the resumed segment")

    monkeypatch.setattr(Classifier, "training_step", broken)
    failed = go(None, tmp_path, resume=done.run_dir, overrides={"epochs": 3})
    assert failed.status == "failed" and "boom" in failed.error
    after = summary(done.run_dir)
    assert after["status"] == "failed" and "boom" in after["error"]
    for key in ("test_acc", "test_loss", "test_checkpoint", "test_epoch", "test_step", "best_val_acc"):
        assert after[key] == finished[key], key  # the finished result is still there, and says which weights

    monkeypatch.setattr(Classifier, "training_step", real)
    events = []
    extended = go(None, tmp_path, events=events, resume=done.run_dir, overrides={"epochs": 4})
    assert extended.status == "finished" and "error" not in summary(done.run_dir)
    assert any(isinstance(e, LogLine) and "schedule had ended" in e.text for e in events)
    assert [int(r["epoch"]) for r in rows(done.run_dir, "epoch")] == [0, 1, 2, 3]
    assert [int(r["step"]) for r in rows(done.run_dir, "step")] == list(range(1, 4 * PER_EPOCH + 1))


def test_shortening_on_resume_validates_the_last_epoch(tmp_path, monkeypatch):
    stop = StopRequest()
    stop_when(monkeypatch, stop, PER_EPOCH + 10, "train")  # in the second of four epochs
    end = go(make_config(RECORD), tmp_path, stop)
    monkeypatch.undo()
    events = []
    short = go(None, tmp_path, events=events, resume=end.run_dir, overrides={"epochs": 2})
    assert short.status == "finished"
    epochs = rows(end.run_dir, "epoch")
    assert [r["epoch"] for r in epochs] == ["0", "1"]
    assert all(math.isfinite(float(r[k])) for r in epochs for k in ("val_loss", "val_acc", "train_loss"))
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [1]
    assert not [e for e in events if isinstance(e, LogLine) and e.level == "WARNING"]


def test_resume_records_what_it_changed_and_refuses_other_changes(tmp_path):
    done = go(with_overrides(make_config(RECORD), {"epochs": 1}), tmp_path)
    folder = Path(done.run_dir)
    before = {name: (folder / name).read_bytes() for name in ("config.toml", "summary.json", "metrics.csv")}
    with pytest.raises(ConfigError, match="cannot change when resuming"):
        go(None, tmp_path, resume=done.run_dir, overrides={"epochs": 2, "lr": 0.1})
    with pytest.raises(ConfigError, match="has finished its 1 epochs"):
        go(None, tmp_path, resume=done.run_dir)
    assert before == {name: (folder / name).read_bytes() for name in before}, "a refused resume changes nothing"

    config_before = RunStore(tmp_path / "runs").info(folder).config
    go(None, tmp_path, resume=done.run_dir, overrides={"epochs": 2})
    info = RunStore(tmp_path / "runs").info(folder)
    assert info.status == "finished" and info.config == {**config_before, "epochs": 2}
    (entry,) = info.history
    assert (
        entry["changed"] == {"epochs": [1, 2]} and entry["step"] == PER_EPOCH and entry["status_before"] == "finished"
    )


def test_duration_counts_every_segment_from_the_record(tmp_path, monkeypatch):
    stop = StopRequest()
    stop_when(monkeypatch, stop, PER_EPOCH + 10, "train")
    end = go(make_config(RECORD), tmp_path, stop)
    monkeypatch.undo()
    partial = float(rows(end.run_dir, "step")[-1]["seconds"])  # the stopped epoch so far
    first_epoch = float(rows(end.run_dir, "epoch")[0]["seconds"])
    (tested,) = rows(end.run_dir, "test")  # a stopped run's weights are tested too (its test counts)
    assert end.duration_s == pytest.approx(first_epoch + partial + float(tested["seconds"]), abs=1e-3)
    done = go(None, tmp_path, resume=end.run_dir)
    recorded = sum(float(r["seconds"]) for r in rows(done.run_dir) if r["kind"] in ("epoch", "test"))
    assert done.duration_s == pytest.approx(recorded, abs=1e-3) and summary(done.run_dir)[
        "duration_s"
    ] == pytest.approx(recorded, abs=1e-3)
    assert (
        float(rows(done.run_dir, "epoch")[1]["seconds"]) >= partial
    )  # the resumed epoch counts its time before the stop
