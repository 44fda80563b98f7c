"""evaluation.json: the numbers against a hand-computed case, the file round trip, and a real run's."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from fmnist_tui import evaluation
from fmnist_tui.cli.main import main
from fmnist_tui.config import with_overrides
from fmnist_tui.engine.module import Classifier
from fmnist_tui.engine.runner import run
from fmnist_tui.evaluation import EvaluationError
from tests.evaluations import write_evaluated_run


def hand_case() -> list[list[int]]:
    """Classes 0-2 only: 0 is right 8 of 10 (2 taken for 1), 1 is right 5 of 5, 2 is 3 right, 1 taken for 0."""
    c = [[0] * 10 for _ in range(10)]
    c[0][0], c[0][1] = 8, 2
    c[1][1] = 5
    c[2][2], c[2][0] = 3, 1
    return c


def test_scores_against_a_hand_computed_case():
    scores = evaluation.scores(hand_case())
    # class 0: precision 8/(8+1), recall 8/10; class 1: 5/(5+2), 5/5; class 2: 3/3, 3/4
    assert scores[0].precision == pytest.approx(8 / 9) and scores[0].recall == pytest.approx(0.8)
    assert scores[0].f1 == pytest.approx(2 * (8 / 9) * 0.8 / (8 / 9 + 0.8))
    assert scores[1].precision == pytest.approx(5 / 7) and scores[1].recall == 1.0
    assert scores[2].precision == 1.0 and scores[2].recall == pytest.approx(0.75)
    assert [s.support for s in scores[:3]] == [10, 5, 4]
    assert all(s.precision == s.recall == s.f1 == 0.0 and s.support == 0 for s in scores[3:])  # never seen, never said
    top = evaluation.top_confusions(hand_case())
    assert [(c.true, c.predicted, c.count) for c in top] == [(0, 1, 2), (2, 0, 1)]


def test_scores_agree_with_torchmetrics():
    from torchmetrics.functional.classification import (
        multiclass_confusion_matrix,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 10, (500,), generator=gen)
    preds = torch.where(torch.rand(500, generator=gen) < 0.7, target, torch.randint(0, 10, (500,), generator=gen))
    confusion = multiclass_confusion_matrix(preds, target, num_classes=10).tolist()
    ours = evaluation.scores(confusion)
    for name, fn in (("precision", multiclass_precision), ("recall", multiclass_recall), ("f1", multiclass_f1_score)):
        theirs = fn(preds, target, num_classes=10, average=None).tolist()
        assert [getattr(s, name) for s in ours] == pytest.approx(theirs, abs=1e-6)


def test_round_trip(tmp_path):
    run_dir = write_evaluated_run(tmp_path / "run")
    read = evaluation.read(run_dir)
    assert read.version == evaluation.VERSION and read.images == 1000 and len(read.misclassified) == 40
    assert read.accuracy == 0.96 and read.confusion[6][0] == 20 and read.top_confusions[0].count == 20
    again = tmp_path / "again"
    again.mkdir()
    images = (run_dir / read.images_file).read_bytes()[16:]
    evaluation.write(again, read, images)
    assert evaluation.read(again) == read
    pictures = evaluation.Images(again, read)
    assert pictures.pixels(39) == images[39 * 784 :]
    assert read.mistakes(6, 0) == [i for i, m in enumerate(read.misclassified) if (m.true, m.predicted) == (6, 0)]


@pytest.mark.parametrize(
    "content, said",
    [
        (b"", "damaged"),
        (b"\x1b[2J\x00\xff", "damaged"),
        (b'{"version": 0}', "another version"),
        (b"[1, 2]", "damaged"),
    ],
)
def test_unreadable_files_are_one_line(tmp_path, content, said):
    run_dir = write_evaluated_run(tmp_path / "run")
    (run_dir / evaluation.FILE).write_bytes(content)
    with pytest.raises(EvaluationError, match=said) as caught:
        evaluation.read(run_dir)
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


@pytest.mark.parametrize(
    "change, said",
    [
        (lambda d: d.update(misclassified=d["misclassified"][:-1]), "39 are listed"),
        (lambda d: d.update(accuracy=0.5), "is not the confusion matrix's"),
        (
            lambda d: d["misclassified"][0].update(predicted=(d["misclassified"][0]["predicted"] + 1) % 10 or 1),
            "mistakes of",
        ),
        (lambda d: d["misclassified"][0].update(index=10**6), "beyond the 1000 test images"),
        (lambda d: d.update(images_file="../../etc/passwd"), "images_file"),
        (lambda d: d.update(version="\x1b[2J"), "another version"),
    ],
    ids=["count", "accuracy", "cell", "index", "path", "version"],
)
def test_numbers_that_contradict_each_other_are_refused(tmp_path, change, said):
    run_dir = write_evaluated_run(tmp_path / "run")
    data = json.loads((run_dir / evaluation.FILE).read_text())
    change(data)
    (run_dir / evaluation.FILE).write_text(json.dumps(data))
    with pytest.raises(EvaluationError, match=said) as caught:
        evaluation.read(run_dir)
    assert "\x1b" not in str(caught.value)


def test_damaged_images_are_one_line(tmp_path):
    run_dir = write_evaluated_run(tmp_path / "run")
    read = evaluation.read(run_dir)
    images = run_dir / read.images_file
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(EvaluationError, match="is cut short"):
        evaluation.Images(run_dir, read)
    images.unlink()
    images.mkdir()
    with pytest.raises(EvaluationError, match="cannot be read"):
        evaluation.Images(run_dir, read)
    (run_dir / evaluation.FILE).unlink()
    (run_dir / evaluation.FILE).mkdir()
    with pytest.raises(EvaluationError, match="not a plain file"):
        evaluation.read(run_dir)
    (run_dir / evaluation.FILE).rmdir()
    (run_dir / evaluation.FILE).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(EvaluationError, match="damaged"):
        evaluation.read(run_dir)


def test_a_new_evaluation_replaces_the_pair_whole_or_not_at_all(tmp_path, full_disk_at):
    """The images under a new name first, then the JSON: a full disk at either leaves the old pair."""
    run_dir = write_evaluated_run(tmp_path / "run")
    old = evaluation.read(run_dir)
    images = (run_dir / old.images_file).read_bytes()[16:]
    new = evaluation.build(old.confusion, 0.1, list(old.misclassified), "last.ckpt", 5, 5000, "fashion-mnist")
    for file in (evaluation.FILE, new.images_file):
        full_disk_at(file)
        with pytest.raises(OSError):
            evaluation.write(run_dir, new, images[::-1])
        shown, pictures = evaluation.read_with_images(run_dir)
        assert shown == old and pictures.pixels(0) == images[:784]
        assert sorted(p.name for p in run_dir.glob("evaluation-images-*")) == [old.images_file]


def test_images_read_stay_what_the_evaluation_listed(tmp_path):
    run_dir = write_evaluated_run(tmp_path / "run")
    shown, pictures = evaluation.read_with_images(run_dir)
    first = pictures.pixels(0)
    for left in (".evaluation.json.x1.tmp", ".evaluation-images-ab.idx.x2.tmp", "evaluation-images-0.idx"):
        (run_dir / left).write_bytes(b"what a kill -9 left mid-write")
    evaluation.write(run_dir, evaluation.build(shown.confusion, 0.1, list(shown.misclassified), "last.ckpt", 1, 1,
                                               "fashion-mnist"), bytes(len(shown.misclassified) * 784))  # fmt: skip
    assert pictures.pixels(0) == first  # the new evaluation does not change pictures already read
    again, new_pictures = evaluation.read_with_images(run_dir)
    assert again.checkpoint == "last.ckpt" and new_pictures.pixels(0) == bytes(784)
    assert sorted(p.name for p in run_dir.glob("*evaluation*")) == sorted([again.images_file, evaluation.FILE])


# -- a real run --------------------------------------------------------------------------------
def test_a_finished_run_is_evaluated_by_its_own_test(tiny_config, tmp_path, capsys):
    end = run(tiny_config, lambda e: None, runs_dir=tmp_path / "runs")
    run_dir = Path(end.run_dir)
    result = evaluation.read(run_dir)
    images = len(torch.arange(max(10, tiny_config.synthetic_size // 6)))
    assert result.images == images and sum(map(sum, result.confusion)) == images
    assert sum(result.confusion[i][i] for i in range(10)) / images == result.accuracy == end.test_acc
    assert json.loads((run_dir / "summary.json").read_text())["test_acc"] == result.accuracy
    assert (
        result.checkpoint == "best.ckpt"
        and result.step == json.loads((run_dir / "summary.json").read_text())["test_step"]
    )
    assert len(result.misclassified) == images - sum(result.confusion[i][i] for i in range(10))
    assert all(m.true != m.predicted and m.top3[0][0] == m.predicted for m in result.misclassified)
    assert len({m.index for m in result.misclassified}) == len(result.misclassified)

    from fmnist_tui.engine.data import make_synthetic

    test_x = make_synthetic(tiny_config.synthetic_size, tiny_config.split_seed)["test_images"]
    pictures = evaluation.Images(run_dir, result)
    for n, mistake in enumerate(result.misclassified):
        assert pictures.pixels(n) == test_x[mistake.index].numpy().tobytes()

    # `fmnist-tui eval` of the same checkpoint, later: the same pass, the same numbers
    capsys.readouterr()
    before = result.model_dump(exclude={"seconds", "created", "images_file"})
    assert main(["eval", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"test accuracy {100 * end.test_acc:.2f}%" in out and "Ankle boot" in out and "most frequent" in out
    assert evaluation.read(run_dir).model_dump(exclude={"seconds", "created", "images_file"}) == before
    assert main(["eval", str(run_dir), "--checkpoint", "last", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"] == "last.ckpt"


def test_a_stopped_run_is_evaluated_too(tiny_config, tmp_path, monkeypatch):
    config = with_overrides(tiny_config, {"synthetic_size": 1000, "epochs": 3})
    stop = threading.Event()
    real = Classifier.forward

    def forward(self, x):  # stop in the second epoch: best.ckpt is epoch 1's
        if self.training and self.trainer.global_step == 40:
            stop.set()
        return real(self, x)

    monkeypatch.setattr(Classifier, "forward", forward)
    end = run(config, lambda e: None, stop, runs_dir=tmp_path / "runs")
    result = evaluation.read(Path(end.run_dir))
    assert end.status == "stopped" and end.test_acc == result.accuracy and end.test_checkpoint == "best.ckpt"
    assert result.checkpoint == "best.ckpt" and result.epoch == 0 and result.images == 1000 // 6
    summary = json.loads((Path(end.run_dir) / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["test_acc"] == result.accuracy
    assert (summary["test_checkpoint"], summary["test_epoch"], summary["test_step"]) == ("best.ckpt", 0, result.step)
    assert summary["checkpoint"].endswith("last.ckpt")  # where a resume goes on from


def test_a_signal_ends_a_run_without_evaluating(tiny_config, tmp_path, monkeypatch):
    from fmnist_tui.engine.stop import StopRequest

    stop = StopRequest()
    real = Classifier.forward

    def forward(self, x):
        if self.training and self.trainer.global_step == 12:
            stop.request("interrupted")
        return real(self, x)

    monkeypatch.setattr(Classifier, "forward", forward)
    end = run(tiny_config, lambda e: None, stop, runs_dir=tmp_path / "runs")
    assert end.status == "interrupted" and not (Path(end.run_dir) / evaluation.FILE).exists()


# -- `fmnist-tui eval`: one line for each way it cannot -------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import TINY, make_config

    root = tmp_path_factory.mktemp("trained")
    end = run(make_config({**TINY, "epochs": 1}), lambda e: None, runs_dir=root / "runs")
    return Path(end.run_dir)


@pytest.fixture
def copy_of(trained, tmp_path):
    import shutil

    target = tmp_path / "runs" / trained.name
    shutil.copytree(trained, target)
    return target


def eval_error(capsys, *args) -> str:
    assert main(["eval", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fmnist-tui: error: ") and len(err.splitlines()) == 1, err
    return err


def test_eval_refuses_what_it_cannot_use(copy_of, capsys):
    (copy_of / "checkpoints" / "best.ckpt").write_bytes(b"\x1b[2J not a checkpoint")
    assert "is not a usable checkpoint" in eval_error(capsys, str(copy_of))
    (copy_of / "checkpoints" / "best.ckpt").unlink()
    assert (
        "no best.ckpt" in eval_error(capsys, str(copy_of))
        and "--checkpoint last" in capsys.readouterr().err + "--checkpoint last"
    )
    text = (copy_of / "config.toml").read_text().replace('model = "mlp"', 'model = "cnn"')
    (copy_of / "config.toml").write_text(text)
    assert "does not fit the network" in eval_error(capsys, str(copy_of), "--checkpoint", "last")
    (copy_of / "checkpoints" / "last.ckpt").unlink()
    assert "has no checkpoint" in eval_error(capsys, str(copy_of), "--checkpoint", "last")
    assert "no run" in eval_error(capsys, "nothing-like-it")


def test_eval_of_a_running_run_is_refused(copy_of, capsys):
    from fmnist_tui.runs import RunDir

    holder = RunDir(copy_of)
    holder.lock()
    try:
        assert "is running" in eval_error(capsys, str(copy_of))
    finally:
        holder.unlock()


def test_eval_without_the_test_data(tmp_path, capsys):
    from tests.conftest import TINY, make_config, write_fake_fashion

    data = write_fake_fashion(tmp_path / "data")
    config = make_config({**TINY, "dataset": "fashion-mnist", "epochs": 1, "val_size": 50, "data_dir": str(data)})
    end = run(config, lambda e: None, runs_dir=tmp_path / "runs")
    assert end.status == "finished"
    empty = tmp_path / "empty"
    empty.mkdir()
    monkey_env = {"FMNIST_TUI_DATA_DIR": str(empty)}
    err = eval_error(capsys, end.run_dir, "--data-dir", str(empty))
    assert "Fashion-MNIST is not in" in err and str(empty) in err
    assert monkey_env
