"""TensorBoard event files beside metrics.csv: the same numbers, a resume that drops what the
checkpoint does not hold, and a run that goes on when the copy fails or tensorboard is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmnist_tui.config import make_config
from fmnist_tui.engine import tensorboard
from fmnist_tui.engine.events import LogLine
from fmnist_tui.engine.stop import StopRequest
from tests.test_record import RECORD, go, rows, stop_when, summary

pytest.importorskip("tensorboard", reason="the optional extra: pip install 'fmnist-tui[tensorboard]'")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

SHORT = {**RECORD, "epochs": 2}


def scalars(run_dir) -> tuple[dict[str, list[tuple[int, float]]], EventAccumulator]:
    events = EventAccumulator(str(Path(run_dir) / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}, events


def as_float32(value: str) -> float:
    import numpy as np

    return float(np.float32(float(value)))  # TensorBoard stores scalars as 32-bit floats


def test_tensorboard_has_the_record_s_numbers_and_the_hyperparameters(tmp_path):
    end = go(make_config(SHORT), tmp_path)
    tags, events = scalars(end.run_dir)
    assert tags["train/step_loss"] == [(int(r["step"]), as_float32(r["train_loss"])) for r in rows(end.run_dir, "step")]
    epochs = rows(end.run_dir, "epoch")
    for key in ("train_loss", "val_loss", "val_acc", "lr"):
        assert tags[f"epoch/{key}"] == [(int(r["step"]), as_float32(r[key])) for r in epochs]
    s = summary(end.run_dir)
    assert tags["test/acc"][-1][1] == pytest.approx(s["test_acc"])
    assert tags["hparams/test_acc"][-1][1] == pytest.approx(s["test_acc"])
    assert tags["hparams/best_val_acc"][-1][1] == pytest.approx(s["best_val_acc"])
    if s.get("last_test_acc") is not None:  # the final weights' figure, labelled apart
        assert tags["test_last/acc"][-1][1] == pytest.approx(s["last_test_acc"])
    hparams = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    start = hparams["_hparams_/session_start_info"].decode("latin-1")
    assert "norm_mean" in start and "label_smoothing" in start, "the resolved config, normalisation included"


def test_the_event_files_stay_in_a_run_folder_whose_path_has_dollar_signs(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))
    end = go(make_config(SHORT), tmp_path / "a $HOME b ~")  # Lightning alone would expand $HOME here
    assert (Path(end.run_dir) / "tensorboard").is_dir() and "$HOME" in end.run_dir
    assert not (tmp_path / "elsewhere").exists()
    assert scalars(end.run_dir)[0]["train/step_loss"]


def test_a_resume_drops_the_steps_its_checkpoint_does_not_hold(tmp_path, monkeypatch):
    stop = StopRequest()
    stop_when(monkeypatch, stop, 40, "train")
    first = go(make_config(SHORT), tmp_path, stop)
    monkeypatch.undo()
    # A killed process may have flushed steps past its last checkpoint (41): fake some.
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(Path(first.run_dir) / "tensorboard"))
    for step in range(42, 50):
        writer.add_scalar("train/step_loss", 99.0, step)
    writer.close()

    end = go(None, tmp_path, resume=first.run_dir)
    assert end.status == "finished"
    tags, _ = scalars(end.run_dir)
    assert tags["train/step_loss"] == [(int(r["step"]), as_float32(r["train_loss"])) for r in rows(end.run_dir, "step")]
    # the best of every epoch, those before the resume included
    assert tags["hparams/best_val_acc"][-1][1] == pytest.approx(summary(end.run_dir)["best_val_acc"])


def test_without_tensorboard_or_when_it_fails_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(tensorboard, "available", lambda: False)
    end = go(make_config(SHORT), tmp_path / "absent")
    assert end.status == "finished" and not (Path(end.run_dir) / "tensorboard").exists()
    monkeypatch.undo()

    def broken(self, first_step, losses):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tensorboard.TensorBoardCopy, "steps", broken)
    events: list = []
    end = go(make_config(SHORT), tmp_path / "broken", events=events)
    assert end.status == "finished" and summary(end.run_dir)["test_acc"] == end.test_acc
    warnings = [e.text for e in events if isinstance(e, LogLine) and "TensorBoard" in e.text]
    assert len(warnings) == 1 and "No space left" in warnings[0] and "metrics.csv has the record" in warnings[0]
