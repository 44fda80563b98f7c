"""The lr finder (engine/lrfind.py) and `fmnist-tui lr-find`, on a few hundred synthetic images."""

from __future__ import annotations

import json
import math
import tempfile
import threading

import pytest

from fmnist_tui.cli.main import main
from fmnist_tui.config import with_overrides
from fmnist_tui.engine.idx import DataError
from fmnist_tui.engine.lrfind import Cancelled, Diverged, LrFindError, find_lr
from tests.conftest import TINY

STEPS = 24


@pytest.fixture
def scratch_tmp(tmp_path, monkeypatch):
    """tempfile's folder, private to the test: what the finder leaves there is seen."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def leftovers(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if not p.name.startswith("torchinductor")]  # torch's own cache


@pytest.fixture
def offline(monkeypatch):
    from fmnist_tui.engine import data

    def fail(root):
        raise DataError(f"Fashion-MNIST is not in {root}; downloading it failed (offline)")

    monkeypatch.setattr(data, "download", fail)


def test_finds_a_finite_lr_and_writes_nothing(tiny_config, isolated_folders, scratch_tmp, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen: list[tuple[int, int]] = []
    result = find_lr(tiny_config, steps=STEPS, progress=lambda done, total: seen.append((done, total)))
    assert result.suggestion is not None and math.isfinite(result.suggestion)
    assert 1e-6 <= result.suggestion <= 10
    assert result.rounded == float(f"{result.suggestion:.1e}")
    assert len(result.lrs) == len(result.losses) and 13 <= len(result.lrs) <= STEPS
    assert result.lrs == sorted(result.lrs) and result.lrs[0] == pytest.approx(1e-6)
    assert seen[0] == (1, STEPS) and seen[-1][0] == len(result.lrs)
    assert result.seconds > 0 and result.total_seconds >= result.seconds
    # nothing in the runs folder, the working folder or tempfile's folder (the temporary checkpoint)
    runs = isolated_folders / "runs"
    assert not runs.exists() or not any(runs.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    assert leftovers(scratch_tmp) == []


def test_the_same_config_finds_the_same_lr(tiny_config):
    first = find_lr(tiny_config, steps=STEPS)
    again = find_lr(tiny_config, steps=STEPS)
    assert first.lrs == again.lrs and first.suggestion == again.suggestion


def test_nan_at_the_first_step_is_one_clear_error(tiny_config, scratch_tmp):
    config = with_overrides(tiny_config, {"norm_std": 1e-300})  # every pixel becomes inf
    with pytest.raises(Diverged, match="at the first step"):
        find_lr(config, steps=STEPS)
    assert leftovers(scratch_tmp) == []


def test_missing_data_is_the_data_modules_error(tiny_config, tmp_path, offline):
    config = with_overrides(tiny_config, {"dataset": "fashion-mnist", "val_size": 5000})
    with pytest.raises(DataError, match="Fashion-MNIST is not in"):
        find_lr(config, data_dir=tmp_path / "none", steps=STEPS)


def test_a_loss_that_blows_up_at_once_gives_no_suggestion_and_says_why(tiny_config):
    config = with_overrides(tiny_config, {"model": "tutorial_mlp", "final_relu": False, "optimizer": "sgd"})
    result = find_lr(config, min_lr=5.0, max_lr=10.0, steps=STEPS)
    assert result.suggestion is None and "blew up" in result.reason


@pytest.mark.parametrize(("low", "high", "steps", "fragment"), [
    (0.0, 1.0, 50, "--min-lr"), (float("nan"), 1.0, 50, "--min-lr"), (1.0, 0.5, 50, "--max-lr"),
    (1e-6, 100.0, 50, "at most 10"), (1e-6, 1.0, 1, "--steps 1"),
])  # fmt: skip
def test_a_bad_range_is_refused_before_anything(tiny_config, low, high, steps, fragment):
    with pytest.raises(LrFindError, match=fragment):
        find_lr(tiny_config, min_lr=low, max_lr=high, steps=steps)


def test_a_stop_ends_the_search_within_a_step(tiny_config, scratch_tmp):
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 3:
            stop.set()

    with pytest.raises(Cancelled):
        find_lr(tiny_config, steps=STEPS, stop=stop, progress=progress)
    assert leftovers(scratch_tmp) == []


# -- the command ----------------------------------------------------------------------------


@pytest.fixture
def presets(tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "tiny.toml").write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items()) + "\n")
    return folder


def lr_find(presets, *extra):
    return main(["lr-find", "--preset", "tiny", "--presets-dir", str(presets), "--steps", str(STEPS), *extra])


def test_command_json(presets, capsys):
    assert lr_find(presets, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["lr"]) == len(out["loss"]) >= 13
    assert out["suggestion"] > 0 and out["seconds"] > 0 and out["reason"]


def test_command_plot_and_the_line_to_use_it(presets, capsys):
    assert lr_find(presets, "--set", "seed=3") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "smoothed loss against lr · │ suggested" in out and "lr (log scale)" in out
    assert "\x1b" not in out  # not a terminal: no colour codes
    assert all(len(line) <= 80 for line in lines)
    suggested = next(line for line in lines if line.startswith("suggested lr "))
    lr = suggested.split()[2]
    assert "steps in" in suggested and "steepest descent" in suggested
    assert lines[-1] == f"use it: fmnist-tui run --preset tiny --set seed=3 --set lr={lr}"


@pytest.mark.parametrize(("args", "fragment"), [
    (("--steps", "1"), "--steps 1: from 13"), (("--min-lr", "nan"), "--min-lr nan"),
    (("--set", "lr=abc"), "lr"), (("--preset", "nope"), "unknown preset"),
])  # fmt: skip
def test_command_bad_input_exits_2_in_one_line(presets, capsys, args, fragment):
    assert lr_find(presets, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fmnist-tui: error:") and fragment in err[0]


def test_command_missing_data_exits_2_in_one_line(presets, tmp_path, capsys, offline):
    code = lr_find(presets, "--set", "dataset=fashion-mnist", "--set", "val_size=5000", "--data-dir",
                   str(tmp_path / "none"))  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Fashion-MNIST is not in" in err[0]


def test_command_diverged_exits_1_in_one_line(presets, capsys):
    assert lr_find(presets, "--set", "norm_std=1e-300") == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert captured.out == "" and len(err) == 1 and "diverged: the loss is nan at the first step" in err[0]


def test_a_gpu_preset_without_a_gpu_is_refused_unless_asked(presets, capsys):
    assert lr_find(presets, "--set", "for_gpu=true") == 2  # this machine has no GPU (accelerator cpu)
    err = capsys.readouterr().err
    assert "made for a GPU and there is none here" in err and len(err.strip().splitlines()) == 1
    assert lr_find(presets, "--set", "for_gpu=true", "--set", "for_gpu=false", "--json") == 0


def test_the_scratch_of_a_killed_search_is_removed_by_the_next(tiny_config, scratch_tmp):
    from fmnist_tui.engine.lrfind import SCRATCH

    dead = scratch_tmp / f"{SCRATCH}999999999-abc"  # no such process
    dead.mkdir()
    (dead / ".lr_find_x.ckpt").write_bytes(b"x" * 100)
    alive = scratch_tmp / f"{SCRATCH}1-abc"  # pid 1 runs: not ours to remove
    alive.mkdir()
    find_lr(tiny_config, steps=STEPS)
    assert leftovers(scratch_tmp) == [alive.name]
