"""A real Lightning Trainer on a few hundred synthetic images (CPU, seconds)."""

import csv
import json
import math
import threading

import pytest
import torch

from fmnist_tui.config import with_overrides
from fmnist_tui.engine.events import EpochEnd, LogLine, RunStarted, StepProgress
from fmnist_tui.engine.module import Classifier
from fmnist_tui.engine.runner import run
from fmnist_tui.runs import RunStore, RunStoreError


def collect(config, tmp_path, stop=None, on_event=None, **kwargs):
    events = []

    def sink(event):
        events.append(event)
        if on_event:
            on_event(event)

    end = run(config, sink, stop, runs_dir=tmp_path / "runs", **kwargs)
    return end, events


def rows(run_dir, kind):
    with open(f"{run_dir}/metrics.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["kind"] == kind]


def test_run_reports_in_order_and_keeps_everything(tiny_config, tmp_path, capfd):
    end, events = collect(tiny_config, tmp_path)
    kinds = [type(e).__name__ for e in events if not isinstance(e, LogLine)]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunEnded"
    assert kinds.count("EpochEnd") == 2 and "StepProgress" in kinds
    assert kinds.index("EpochEnd") > kinds.index("StepProgress")
    started = events[[type(e) for e in events].index(RunStarted)]
    assert (started.epochs, started.steps_per_epoch, started.total_steps) == (2, 10, 20)
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == [0, 1] and all(0 <= e.val_acc <= 1 for e in epochs)
    assert all(math.isfinite(e.train_loss) and e.seconds > 0 and e.lr == pytest.approx(3e-3) for e in epochs)
    steps = [e for e in events if isinstance(e, StepProgress)]
    assert [s.step for s in steps] == sorted(s.step for s in steps) and steps[-1].step == 20

    assert end.status == "finished" and end == events[-1]
    assert 0 <= end.test_acc <= 1 and end.best_val_acc == pytest.approx(max(e.val_acc for e in epochs))
    run_dir = tmp_path / "runs" / end.run_dir.split("/")[-1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["test_acc"] == end.test_acc
    assert summary["best_val_acc"] == end.best_val_acc and summary["duration_s"] > 0
    assert 'model = "mlp"' in (run_dir / "config.toml").read_text()
    assert [int(r["step"]) for r in rows(run_dir, "step")] == list(range(1, 21))
    assert len(rows(run_dir, "epoch")) == 2 and len(rows(run_dir, "test")) == 1
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "checkpoints" / "best.ckpt").is_file()
    out, err = capfd.readouterr()
    assert out == "" and err == "", "Lightning must not write to the terminal"


def test_learns_something(tiny_config, tmp_path):
    end, _ = collect(with_overrides(tiny_config, {"epochs": 4}), tmp_path)
    assert end.test_acc > 0.3  # ten classes: chance is 0.1


def test_stop_mid_epoch_ends_within_a_step_and_resumes(tiny_config, tmp_path, monkeypatch):
    config = with_overrides(tiny_config, {"synthetic_size": 2000, "epochs": 2})
    stop = threading.Event()
    real = Classifier.forward

    def forward(self, x):  # ask to stop while computing step 20 (mid-group: groups are 8 steps)
        if self.training and self.trainer.global_step == 19:
            stop.set()
        return real(self, x)

    monkeypatch.setattr(Classifier, "forward", forward)
    end, events = collect(config, tmp_path, stop)
    monkeypatch.setattr(Classifier, "forward", real)
    assert end.status == "stopped" and not any(isinstance(e, EpochEnd) for e in events)
    ckpt = torch.load(end.checkpoint, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 20  # the step being computed ends, the next one never starts
    assert json.loads(open(f"{end.run_dir}/summary.json").read())["status"] == "stopped"

    resumed, events = collect(None, tmp_path, resume=end.run_dir)
    assert resumed.status == "finished" and resumed.run_dir == end.run_dir
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [0, 1]
    summary = json.loads(open(f"{end.run_dir}/summary.json").read())
    assert summary["resumed"] == 1 and summary["status"] == "finished"
    assert int(rows(end.run_dir, "step")[-1]["step"]) == 2 * 60  # 1,900 images in batches of 32


def test_resume_can_extend_epochs(tiny_config, tmp_path):
    end, _ = collect(tiny_config, tmp_path)
    more, events = collect(None, tmp_path, resume=end.run_dir, overrides={"epochs": 3})
    assert more.status == "finished"
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [2]


def test_resume_refuses_a_corrupt_checkpoint(tiny_config, tmp_path):
    end, _ = collect(tiny_config, tmp_path)
    last = f"{end.run_dir}/checkpoints/last.ckpt"
    data = open(last, "rb").read()
    open(last, "wb").write(data[: len(data) // 2])
    with pytest.raises(RunStoreError, match="not a usable checkpoint"):
        collect(None, tmp_path, resume=end.run_dir)


def test_nan_loss_ends_as_diverged_keeping_the_last_good_checkpoint(tiny_config, tmp_path, monkeypatch):
    real = Classifier.forward

    def poisoned(self, x):  # the fourth step of the second epoch (10 steps each) gives NaN
        logits = real(self, x)
        return logits * float("nan") if self.training and self.trainer.global_step == 13 else logits

    monkeypatch.setattr(Classifier, "forward", poisoned)
    end, events = collect(with_overrides(tiny_config, {"epochs": 3}), tmp_path)
    assert end.status == "diverged" and "nan" in end.error
    ckpt = torch.load(f"{end.run_dir}/checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 0 and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


@pytest.mark.parametrize(
    "error, expected",
    [(RuntimeError("boom at step 3"), "RuntimeError: boom at step 3"),
     (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "OutOfMemoryError: CUDA out of memory")],
)  # fmt: skip
def test_an_exception_in_training_fails_the_run_and_the_next_run_works(
    tiny_config, tmp_path, monkeypatch, error, expected
):
    real = Classifier.training_step

    def broken(self, batch, batch_idx):
        if batch_idx == 1:  # the second group of steps
            raise error
        return real(self, batch, batch_idx)

    monkeypatch.setattr(Classifier, "training_step", broken)
    end, events = collect(tiny_config, tmp_path)
    assert end.status == "failed" and end.error.startswith(expected)
    assert any(isinstance(e, LogLine) and e.level == "ERROR" for e in events)  # the traceback, for the log pane
    monkeypatch.setattr(Classifier, "training_step", real)
    again, _ = collect(tiny_config, tmp_path)
    assert again.status == "finished"
    statuses = sorted(r.status for r in RunStore(tmp_path / "runs").list())
    assert statuses == ["failed", "finished"]


def test_missing_data_fails_before_training_with_the_message(tiny_config, tmp_path, monkeypatch):
    from fmnist_tui.engine import data

    def offline(root):
        raise data.DataError(f"Fashion-MNIST is not in {root}; downloading it failed (offline)")

    monkeypatch.setattr(data, "download", offline)
    config = with_overrides(
        tiny_config, {"dataset": "fashion-mnist", "val_size": 5000, "data_dir": str(tmp_path / "none")}
    )
    end, events = collect(config, tmp_path)
    assert end.status == "failed" and end.error.startswith("DataError: Fashion-MNIST is not in")
    assert not any(isinstance(e, (RunStarted, StepProgress)) for e in events)


def test_unwritable_runs_folder_is_an_error_before_anything(tiny_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RunStoreError, match="is not writable"):
        run(tiny_config, lambda e: None, runs_dir=blocker / "runs")


def test_every_run_gets_a_new_folder(tiny_config, tmp_path):
    store = RunStore(tmp_path)
    held = [store.create(tiny_config) for _ in range(3)]
    assert len({r.path for r in held}) == 3
    assert all(RunStore(tmp_path).info(r.path).status == "running" for r in held)  # their writer locks are held
    for r in held:
        r.unlock()
    assert all(RunStore(tmp_path).info(r.path).status == "interrupted" for r in held)  # "running", but nobody writes


def test_a_helper_thread_that_dies_during_a_run_is_one_log_line_not_a_traceback(capfd):
    from fmnist_tui.engine.logs import route_logs

    events: list = []
    before = threading.excepthook
    with route_logs(events.append):

        def fails():
            raise OSError(28, "No space left on device")

        helper = threading.Thread(target=fails, name="event-writer")
        helper.start()
        helper.join()
    assert threading.excepthook is before  # put back after the run
    (line,) = [e for e in events if isinstance(e, LogLine)]
    assert line.text == "background thread event-writer stopped: OSError: [Errno 28] No space left on device"
    assert "Traceback" not in capfd.readouterr().err
