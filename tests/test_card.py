"""card.json: how each start of a run was made, `fmnist-tui show`, and `run --like`."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
import torch

from fmnist_tui.cards import FILE, card_lines, read_cards
from fmnist_tui.cli.main import main
from fmnist_tui.config import make_config
from fmnist_tui.engine.runner import run
from tests.conftest import TINY, write_fake_fashion


@pytest.fixture
def fashion_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not a git checkout
    data = write_fake_fashion(tmp_path / "data")
    config = make_config({**TINY, "dataset": "fashion-mnist", "epochs": 1, "val_size": 50, "data_dir": str(data)})
    end = run(config, lambda e: None, runs_dir=tmp_path / "runs")
    assert end.status == "finished"
    return Path(end.run_dir), data


def test_the_card_says_how_the_run_was_made(fashion_run):
    folder, data = fashion_run
    (card,) = read_cards(folder)
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.iterdir()}
    assert card["data"]["sha256"] == hashes and len(hashes) == 4 and card["data"]["folder"] == str(data)
    assert card["versions"]["torch"] == version("torch") and torch.__version__.startswith(version("torch"))
    assert set(card["versions"]) == {"python", "torch", "torchvision", "pytorch-lightning", "textual", "fmnist-tui"}
    assert card["device"]["kind"] == "cpu" and card["device"]["cores"] >= 1
    assert card["seed"] == TINY.get("seed", 0) and card["deterministic"] is False and card["git"] is None
    assert card["config"]["model"] == "mlp" and card["step"] == 0 and card["command"]
    rows = dict(card_lines(card))
    assert rows["git"] == "not a git checkout" and "deterministic algorithms off" in rows["seed"]


def test_a_git_checkout_and_a_resume_are_on_record(tmp_path, monkeypatch):
    repo = tmp_path / "work"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "train.py").write_text("print('hi')\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.chdir(repo)
    end = run(make_config({**TINY, "epochs": 1}), lambda e: None, runs_dir=tmp_path / "runs")
    (repo / "train.py").write_text("print('changed')\n")
    run(None, lambda e: None, runs_dir=tmp_path / "runs", resume=end.run_dir, overrides={"epochs": 2})
    first, resumed = read_cards(Path(end.run_dir))
    assert first["git"] == {"commit": commit, "dirty": False, "folder": str(repo)}
    assert resumed["git"]["dirty"] is True and resumed["step"] > 0 and resumed["config"]["epochs"] == 2


def test_show_prints_the_card_and_the_config(fashion_run, capsys):
    folder, _ = fashion_run
    assert main(["show", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "made (at step 0):" in out and "sha256 t10k-images-idx3-ubyte" in out and "torch " in out
    assert main(["show", str(folder), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["cards"][0]["data"]["sha256"] and shown["config"]["model"] == "mlp"


def test_run_like_starts_a_new_run_and_says_what_differs(fashion_run, capsys, monkeypatch):
    folder, data = fashion_run
    from fmnist_tui.engine import card

    real = card.versions
    monkeypatch.setattr(card, "versions", lambda: {**real(), "torch": "0.0.1"})
    images = data / "t10k-images-idx3-ubyte"
    raw = bytearray(images.read_bytes())
    raw[-1] ^= 0xFF  # one pixel of the test set changed
    images.write_bytes(bytes(raw))
    runs = folder.parent
    assert (
        main(["run", "--like", folder.name, "--runs-dir", str(runs), "--set", "seed=3", "--progress-every", "0"]) == 0
    )
    err = capsys.readouterr().err
    assert f"run --like {folder.name}: torch {version('torch')} then, 0.0.1 now" in err
    assert "data file t10k-images-idx3-ubyte differs from the one the run trained on" in err
    (new,) = [p for p in runs.iterdir() if p.is_dir() and p != folder]
    config = json.loads(json.dumps(read_cards(new)[0]["config"]))
    before = read_cards(folder)[0]["config"]
    assert {k: v for k, v in config.items() if k != "seed"} == {k: v for k, v in before.items() if k != "seed"}
    assert config["seed"] == 3


def test_a_damaged_card_is_no_card(fashion_run, capsys):
    folder, _ = fashion_run
    (folder / FILE).write_text("\x1b[2J{ not json")
    assert read_cards(folder) == [] and main(["show", str(folder)]) == 0
    assert "no card.json" in capsys.readouterr().out


SHARED = Path(__file__).resolve().parents[2] / "shared" / "fashion-mnist"  # beside the checkout, as in CI


@pytest.mark.skipif(not SHARED.is_dir(), reason="the real data set is not beside this checkout")
def test_the_data_hashes_are_those_of_the_real_files():
    """The card's sha256 of the four Fashion-MNIST files, against coreutils' sha256sum of the same files."""
    from fmnist_tui.engine.card import data_files

    recorded = data_files(make_config({"name": "x", "description": "x"}), SHARED)
    files = sorted((SHARED / "FashionMNIST" / "raw").glob("*-ubyte*"))
    out = subprocess.run(["sha256sum", *map(str, files)], capture_output=True, text=True, check=True).stdout
    expected = {Path(line.split()[1]).name: line.split()[0] for line in out.splitlines()}
    assert recorded["sha256"] == expected and len(expected) == 4
    assert expected["t10k-labels-idx1-ubyte"] == "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
