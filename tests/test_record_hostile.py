"""What a hostile user did to run folders, and what must come of it: one clear line, nothing destroyed,
the record still true. In-process runs; the process-level attacks are in test_record_processes.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from fmnist_tui.config import ConfigError, make_config, with_overrides
from fmnist_tui.engine.module import Classifier
from fmnist_tui.engine.stop import StopRequest
from fmnist_tui.files import DiskFull
from fmnist_tui.metrics import recorded_seconds, restart_at
from fmnist_tui.runs import RunDir, RunStore, RunStoreError
from tests.test_record import PER_EPOCH, RECORD, assert_same_record, go, load, rows, stop_when, summary

SHORT = {**RECORD, "epochs": 2}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return go(make_config(SHORT), tmp_path_factory.mktemp("reference"))


@pytest.fixture
def stopped(tmp_path, monkeypatch):
    """A run stopped at step 40, in its second epoch."""
    stop = StopRequest()
    stop_when(monkeypatch, stop, 39, "train")
    end = go(make_config(SHORT), tmp_path, stop)
    monkeypatch.undo()
    assert end.status == "stopped"
    return Path(end.run_dir)


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "writer.lock"
    }


def refused(tmp_path, folder: Path, match: str, **overrides) -> None:
    """The resume is refused in one line and the folder is left exactly as it was."""
    before = files_of(folder)
    with pytest.raises((RunStoreError, ConfigError), match=match) as err:
        go(None, tmp_path, resume=str(folder), overrides=overrides)
    assert "\n" not in str(err.value)
    assert files_of(folder) == before


def test_a_symlinked_writer_lock_is_refused_and_its_target_untouched(tmp_path, stopped):
    precious = tmp_path / "precious.txt"
    precious.write_text("precious")
    (stopped / "writer.lock").unlink()
    (stopped / "writer.lock").symlink_to(precious)
    refused(tmp_path, stopped, "writer.lock cannot serve as the run's writer lock")
    assert precious.read_text() == "precious"


def test_a_fifo_writer_lock_neither_hangs_the_listing_nor_a_resume(tmp_path, stopped):
    (stopped / "writer.lock").unlink()
    os.mkfifo(stopped / "writer.lock")
    assert RunStore(tmp_path / "runs").info(stopped).status == "stopped"
    refused(tmp_path, stopped, "it must be a plain file")


def test_a_resume_decides_on_what_the_folder_holds_once_it_has_the_lock(tmp_path, monkeypatch):
    done = go(with_overrides(make_config(SHORT), {"epochs": 1}), tmp_path)
    folder = Path(done.run_dir)
    RunDir(folder).write_summary(status="stopped")  # what a reader saw before another process finished it
    real = RunDir.lock

    def lock_after_the_other_process_finished(self, wait_s=1.0):
        self.write_summary(status="finished")
        real(self, wait_s)

    monkeypatch.setattr(RunDir, "lock", lock_after_the_other_process_finished)
    with pytest.raises(ConfigError, match="has finished its 1 epochs"):
        go(None, tmp_path, resume=str(folder))


def test_killed_before_its_first_checkpoint_it_starts_again_and_matches(tmp_path, stopped, reference):
    (stopped / "checkpoints" / "last.ckpt").unlink()  # as if killed in the first epoch
    for name in ("best.ckpt",):
        (stopped / "checkpoints" / name).unlink(missing_ok=True)
    kept = [
        line for line in (stopped / "metrics.csv").read_text().splitlines(keepends=True) if not line.startswith("epoch")
    ]
    (stopped / "metrics.csv").write_text("".join(kept))
    RunDir(stopped).write_summary(status="running")
    events = []
    again = go(None, tmp_path, events=events, resume=str(stopped))
    assert again.status == "finished"
    assert any("starts again from step 0" in getattr(e, "text", "") for e in events)
    assert_same_record(reference.run_dir, str(stopped))


def test_a_best_ckpt_left_behind_by_a_kill_is_published_again(tmp_path, monkeypatch):
    import pytorch_lightning as pl

    class KilledBeforeBestWasPublished(pl.Callback):  # after epoch 2's last.ckpt, before nothing else
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                shutil.copy(self.first_best, Path(trainer.default_root_dir) / "checkpoints" / "best.ckpt")
                raise RuntimeError("killed")
            self.first_best = Path(trainer.default_root_dir) / "first-best.ckpt"
            shutil.copy(Path(trainer.default_root_dir) / "checkpoints" / "best.ckpt", self.first_best)

    accs = [0.5, 0.7, 0.6]  # epoch 2 is the best; epoch 3 is not

    def on_validation_epoch_end(self):
        self.log("val_loss", self.val_loss)
        self.log("val_acc", accs[self.current_epoch])
        self.val_acc.reset()

    monkeypatch.setattr(Classifier, "on_validation_epoch_end", on_validation_epoch_end)
    config = with_overrides(make_config(RECORD), {"epochs": 3})
    end = go(config, tmp_path, callbacks=[KilledBeforeBestWasPublished()])
    folder = Path(end.run_dir)
    assert end.status == "failed" and load(folder / "checkpoints/best.ckpt")["global_step"] == PER_EPOCH
    done = go(None, tmp_path, resume=str(folder))
    s = summary(folder)
    assert done.status == "finished" and load(folder / "checkpoints/best.ckpt")["global_step"] == 2 * PER_EPOCH
    assert (s["test_step"], s["test_epoch"]) == (2 * PER_EPOCH, 1)


def test_a_config_toml_edited_after_training_is_refused(tmp_path, stopped):
    text = (stopped / "config.toml").read_text()
    (stopped / "config.toml").write_text(text.replace("lr = 0.003", "lr = 0.5"))
    refused(tmp_path, stopped, "config.toml says lr = 0.5 but last.ckpt was trained with lr = 0.003")


def test_a_checkpoint_of_another_network_is_refused_before_anything_is_written(tmp_path, stopped):
    other = go(with_overrides(make_config(SHORT), {"epochs": 1, "hidden": 64}), tmp_path / "other")
    ckpt = load(Path(other.run_dir) / "checkpoints/last.ckpt")
    ckpt["hyper_parameters"]["config"]["hidden"] = 512  # its config lies; its weights do not fit
    torch.save(ckpt, stopped / "checkpoints" / "last.ckpt")
    refused(tmp_path, stopped, "last.ckpt does not fit the network its config.toml describes")


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_checkpoint_that_carries_code_is_refused_not_run(tmp_path, stopped, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"state_dict": {}, "evil": Payload()}, stopped / "checkpoints" / "last.ckpt")
    refused(tmp_path, stopped, "holds more than weights")
    assert not (tmp_path / "PWNED").exists()


def test_damaged_metrics_are_kept_aside_and_the_record_rebuilt_in_order(tmp_path, stopped, reference):
    lines = (stopped / "metrics.csv").read_text().splitlines(keepends=True)
    lines[0] = "a,b,c\n"  # a damaged header
    lines[5], lines[15] = lines[15], lines[5]  # two steps out of order
    lines.insert(20, lines[20])  # one step twice
    lines.insert(30, "\x00\xff garbage,\n")
    (stopped / "metrics.csv").write_text("".join(lines))
    damaged = (stopped / "metrics.csv").read_text()
    events = []
    done = go(None, tmp_path, events=events, resume=str(stopped))
    assert done.status == "finished"
    assert (stopped / "metrics.csv.damaged").read_text() == damaged
    assert any("kept as metrics.csv.damaged" in getattr(e, "text", "") for e in events)
    assert_same_record(reference.run_dir, str(stopped))


@pytest.mark.parametrize("name", ["metrics.csv", "summary.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt"])
def test_a_folder_where_a_file_should_be_is_one_line(tmp_path, stopped, name):
    target = stopped / name
    target.unlink(missing_ok=True)
    target.mkdir()
    refused(tmp_path, stopped, "is not a plain file")


def test_no_gpu_for_a_gpu_config_is_refused_before_anything(tmp_path, stopped):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    refused(tmp_path, stopped, "accelerator = gpu needs a GPU", accelerator="gpu")
    with pytest.raises(ConfigError, match="precision = 16-mixed needs a GPU"):
        go(with_overrides(make_config(SHORT), {"precision": "16-mixed"}), tmp_path / "new")
    assert not (tmp_path / "new" / "runs").exists() or not list((tmp_path / "new" / "runs").iterdir())


def test_an_unreadable_best_ckpt_is_kept_aside_and_the_best_tracked_anew(tmp_path, stopped):
    (stopped / "checkpoints" / "best.ckpt").write_bytes(b"not a checkpoint")
    done = go(None, tmp_path, resume=str(stopped))
    assert done.status == "finished"
    assert (stopped / "checkpoints" / "best.ckpt.damaged").read_bytes() == b"not a checkpoint"
    s = summary(stopped)
    assert load(stopped / "checkpoints/best.ckpt")["global_step"] == s["test_step"] == 2 * PER_EPOCH


def test_an_unreadable_summary_is_kept_aside_and_written_anew(tmp_path, stopped):
    (stopped / "summary.json").write_text('["not", "a", "summary"]')
    done = go(None, tmp_path, resume=str(stopped))
    assert done.status == "finished"
    assert (stopped / "summary.json.damaged").read_text() == '["not", "a", "summary"]'
    s = summary(stopped)
    assert s["status"] == "finished" and s["started"].startswith(stopped.name[:4]) and s["resumed"] == 1


def test_strange_summary_numbers_do_not_stop_a_resume(tmp_path, stopped):
    RunDir(stopped).write_summary(resumed="many", duration_s=10**400)
    assert go(None, tmp_path, resume=str(stopped)).status == "finished"
    assert summary(stopped)["resumed"] == 1


def test_no_room_for_the_record_is_refused_before_a_folder_is_made(tmp_path, monkeypatch):
    def full(self):
        raise DiskFull(self.path / ".space-reserve")

    monkeypatch.setattr(RunDir, "reserve_space", full)
    with pytest.raises(RunStoreError, match="disk full"):
        go(make_config(SHORT), tmp_path)
    assert list((tmp_path / "runs").iterdir()) == []


def test_the_summary_never_holds_what_json_cannot(tmp_path, stopped):
    RunDir(stopped).write_summary(duration_s=float("inf"), best_val_acc=float("nan"))
    text = (stopped / "summary.json").read_text()
    assert "Infinity" not in text and "NaN" not in text and json.loads(text)["status"] == "stopped"
    assert recorded_seconds([{"kind": "epoch", "epoch": "9", "step": "9", "seconds": "inf"}]) == 0.0


def test_restart_at_on_a_missing_file_starts_an_empty_record(tmp_path):
    carried = restart_at(tmp_path / "metrics.csv", 0, 0)
    assert (tmp_path / "metrics.csv").read_text().startswith("kind,epoch,step")
    assert carried.losses == [] and carried.problem is None
    carried = restart_at(tmp_path / "metrics.csv", 50, 1)
    assert "lacks 50 of the 50 steps" in carried.problem


def test_runs_and_the_app_show_best_val_and_time_of_a_run_that_did_not_end(tmp_path, stopped):
    s = summary(stopped)
    assert s["best_val_acc"] == pytest.approx(float(rows(stopped, "epoch")[0]["val_acc"]))
    assert s["duration_s"] > 0


def test_a_writer_that_lost_its_lock_writes_nothing_more(tmp_path):
    import fcntl

    import pytorch_lightning as pl

    class AnotherProcessTakesOver(pl.Callback):  # its lock file deleted, a second writer's in its place
        def on_train_epoch_end(self, trainer, pl_module):
            folder = Path(trainer.default_root_dir)
            (folder / "writer.lock").unlink()
            self.other = open(folder / "writer.lock", "a")
            fcntl.flock(self.other, fcntl.LOCK_EX)
            (folder / "summary.json").write_text('{"status": "running", "by": "the other process"}')

    taker = AnotherProcessTakesOver()
    end = go(with_overrides(make_config(SHORT), {"epochs": 3}), tmp_path, callbacks=[taker])
    folder = Path(end.run_dir)
    assert end.status == "failed" and "another process took over run" in end.error
    assert json.loads((folder / "summary.json").read_text())["by"] == "the other process"
    assert [r["epoch"] for r in rows(folder, "epoch")] == ["0"]  # nothing written after the loss
    taker.other.close()


def test_a_disk_full_at_the_first_checkpoint_then_resume_starts_again(tmp_path, reference, full_disk_at, monkeypatch):
    full_disk_at("last.ckpt")
    end = go(make_config(SHORT), tmp_path)
    monkeypatch.undo()
    folder = Path(end.run_dir)
    assert end.status == "failed" and end.error.startswith("disk full") and f"--resume {folder.name}" in end.error
    assert [r["epoch"] for r in rows(folder, "epoch")] == ["0"] and not (folder / "checkpoints" / "last.ckpt").exists()
    events = []
    again = go(None, tmp_path, events=events, resume=str(folder))
    assert again.status == "finished"
    assert any("starts again from step 0" in getattr(e, "text", "") for e in events)
    assert (folder / "metrics.csv.damaged").exists()
    assert_same_record(reference.run_dir, str(folder))


def test_one_monstrous_or_quoted_line_costs_that_line_only(tmp_path, stopped, reference):
    with open(stopped / "metrics.csv", "a") as f:
        f.write("step,1,999," + "x" * 200_000 + "\n")
    text = (stopped / "metrics.csv").read_text().splitlines(keepends=True)
    text[3] = text[3].replace(",2.", ',"2.', 1)  # a stray quote, in step 3's loss
    (stopped / "metrics.csv").write_text("".join(text))
    done = go(None, tmp_path, resume=str(stopped))
    assert done.status == "finished" and (stopped / "metrics.csv.damaged").exists()
    steps = [int(r["step"]) for r in rows(stopped, "step")]
    assert len(steps) == 2 * PER_EPOCH - 1 and 3 not in steps  # only the damaged line's step is missing


@pytest.mark.parametrize("damage", [
    {"loops": {}},
    {"loops": {"fit_loop": {}}},
    {"pytorch-lightning_version": "0.0.1"},
    {"state_dict": "extra"},
])  # fmt: skip
def test_checkpoints_lightning_would_reject_are_refused_first(tmp_path, stopped, damage):
    ckpt = load(stopped / "checkpoints" / "last.ckpt")
    if damage.get("state_dict") == "extra":
        ckpt["state_dict"]["not.a.weight"] = torch.zeros(1)
    else:
        ckpt.update(damage)
    torch.save(ckpt, stopped / "checkpoints" / "last.ckpt")
    refused(tmp_path, stopped, "not a checkpoint of this program that can be resumed|does not fit the network")


def test_the_step_is_the_one_lightning_resumes_from(tmp_path, stopped, reference):
    ckpt = load(stopped / "checkpoints" / "last.ckpt")
    ckpt["global_step"] = 0  # a field Lightning does not read
    torch.save(ckpt, stopped / "checkpoints" / "last.ckpt")
    assert go(None, tmp_path, resume=str(stopped)).status == "finished"
    assert_same_record(reference.run_dir, str(stopped))


def test_writing_into_best_ckpt_leaves_last_ckpt_alone(tmp_path, reference):
    done = go(make_config(SHORT), tmp_path)
    folder = Path(done.run_dir)
    last = (folder / "checkpoints" / "last.ckpt").read_bytes()
    with open(folder / "checkpoints" / "best.ckpt", "r+b") as f:  # in place, as `cp x best.ckpt` does
        f.write(b"garbage")
    assert (folder / "checkpoints" / "last.ckpt").read_bytes() == last


class Signal(StopRequest):
    """A stop as SIGTERM makes it: the run ends at once, untested."""

    def request(self, reason: str = "interrupted") -> None:
        super().request(reason)


@pytest.mark.parametrize("by_user", [False, True], ids=["signal", "user"])
def test_test_figures_stop_naming_a_best_ckpt_that_holds_other_weights(tmp_path, monkeypatch, by_user):
    accs = iter([0.5, 0.6, 0.7, 0.8])  # every epoch is a new best

    def on_validation_epoch_end(self):
        self.log("val_loss", self.val_loss)
        self.log("val_acc", next(accs))
        self.val_acc.reset()

    monkeypatch.setattr(Classifier, "on_validation_epoch_end", on_validation_epoch_end)
    done = go(make_config(SHORT), tmp_path)
    assert summary(done.run_dir)["test_checkpoint"] == "best.ckpt"
    stop = StopRequest() if by_user else Signal()
    stop_when(monkeypatch, stop, 3 * PER_EPOCH + 3, "train")
    go(None, tmp_path, stop, resume=done.run_dir, overrides={"epochs": 4})
    s = summary(done.run_dir)
    if by_user:  # a stop its user asked for tests best.ckpt as it is now: epoch 3's
        assert s["status"] == "stopped" and s["test_checkpoint"] == "best.ckpt"
        assert (s["test_epoch"], s["test_step"]) == (2, 3 * PER_EPOCH)
    else:
        assert s["status"] == "interrupted" and "test_checkpoint" not in s  # best.ckpt is epoch 3's now
        assert (s["test_epoch"], s["test_step"]) == (1, 2 * PER_EPOCH)  # still says which weights they were


def test_set_aside_files_never_overwrite_each_other(tmp_path, stopped):
    for n in range(2):
        (stopped / "summary.json").write_text(f"damaged {n}")
        assert go(None, tmp_path, resume=str(stopped), overrides={"epochs": 3 + n}).status == "finished"
    assert (stopped / "summary.json.damaged").read_text() == "damaged 0"
    assert (stopped / "summary.json.damaged-2").read_text() == "damaged 1"


def test_a_hard_linked_writer_lock_is_refused(tmp_path, stopped):
    precious = tmp_path / "precious.txt"
    precious.write_text("precious")
    (stopped / "writer.lock").unlink()
    os.link(precious, stopped / "writer.lock")
    refused(tmp_path, stopped, "not a plain file of its own")
    assert precious.read_text() == "precious"


def test_a_folder_that_is_not_a_run_is_left_untouched(tmp_path):
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    with pytest.raises(RunStoreError, match="no config.toml"):
        go(None, tmp_path, resume=str(folder))
    assert list(folder.iterdir()) == []


def test_directories_at_temporary_names_do_not_stop_the_writes(tmp_path, stopped):
    for name in (".summary.json.tmp", "checkpoints/.last.ckpt.tmp", "metrics.csv.damaged"):
        (stopped / name).mkdir()
    (stopped / "metrics.csv").write_text((stopped / "metrics.csv").read_text() + "garbage,\n")
    assert go(None, tmp_path, resume=str(stopped)).status == "finished"
    assert (stopped / "metrics.csv.damaged-2").exists()


def test_a_shorter_resume_is_told_the_whole_epochs_it_needs(tmp_path, stopped):
    refused(tmp_path, stopped, "already trained 1.38 epochs; give at least 2", epochs=1)


def test_a_run_folder_moved_away_mid_run_says_so(tmp_path):
    from fmnist_tui.runs import LockLost

    run = RunStore(tmp_path / "runs").create(make_config(SHORT))
    run.path.rename(tmp_path / "elsewhere")
    with pytest.raises(LockLost, match="was deleted or moved while this process wrote it"):
        run.check_lock()
    with pytest.raises(LockLost, match="was deleted or moved"):  # and it stays lost
        run.check_lock()
