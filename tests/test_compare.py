"""Comparing runs (compare.py, `fmnist-tui compare`), ordering and filtering the list (runlist.py),
notes (notes.py) and the trash (trash.py): all without torch, on fake run folders."""

from __future__ import annotations

import json
import os

import pytest

from fmnist_tui.cli.main import main
from fmnist_tui.compare import CompareError, config_diff, load, table
from fmnist_tui.notes import FILE, read_note, write_note
from fmnist_tui.runlist import Filter, sort_runs
from fmnist_tui.runs import RunDir, RunStore, RunStoreError
from fmnist_tui.trash import FOLDER, move_to_trash
from tests.fake_runs import fake_run, three_runs


@pytest.fixture
def store(tmp_path):
    three_runs(tmp_path / "runs")
    return RunStore(tmp_path / "runs")


def test_the_table_and_the_config_diff(store):
    sides = load(store.list()[::-1])  # oldest first: A is the baseline
    rows = dict(table(sides))
    assert rows["status"] == ["finished", "finished", "stopped"]
    assert rows["best val"] == ["84.00%", "89.00%", "86.00%"]
    assert rows["test acc"] == ["83.00%", "88.00%", "-"]
    assert rows["time"] == ["1:01", "0:58", "0:33"]
    assert rows["epochs"] == ["5/5", "5/5", "3/5"]
    # only the keys whose values differ, in config order, with every run's value
    assert config_diff(sides) == [
        ("optimizer", ["'adamw'", "'adamw'", "'sgd'"]),
        ("lr", ["0.001", "0.01", "0.001"]),
        ("batch_size", ["64", "64", "256"]),
    ]
    assert [len(s.epochs) for s in sides] == [5, 5, 3] and len(sides[0].steps) == 50


def test_a_key_one_run_lacks_and_true_against_1_differ(tmp_path):
    a = fake_run(tmp_path, "20250101-000000-a", normalize=True)
    b = fake_run(tmp_path, "20250101-000001-b", normalize=1, extra=2)
    c = fake_run(tmp_path, "20250101-000002-c", normalize=True, lr=1e-3)  # 0.001: the same lr
    sides = load([RunStore(tmp_path).info(p) for p in (a, b, c)])
    assert config_diff(sides) == [("normalize", ["True", "1", "True"]), ("extra", ["-", "2", "-"])]


def test_what_cannot_be_compared_is_one_line(store, tmp_path):
    runs = store.list()
    with pytest.raises(CompareError, match="given twice"):
        load([runs[0], store.info(tmp_path / "runs" / "." / runs[0].path.name)])
    with pytest.raises(CompareError, match="two runs or more"):
        load(runs[:1])
    more = [store.info(fake_run(tmp_path / "runs", f"20250201-00000{n}-x")) for n in range(4)]
    with pytest.raises(CompareError, match=r"at most 6 runs can be compared at once \(7 given\)"):
        load(runs + more)


@pytest.mark.parametrize(
    "refs, message",
    [
        (["20250101", "20250101-120000-demo"], "given twice"),
        (["20250101"], "two runs or more"),
        (["20250101", "nope"], "no run 'nope'"),
        (["2025", "20250101"], "matches 3 runs"),
        ([f"2025010{n}" for n in range(1, 8)], "at most 6 runs"),  # counted before any is looked up
    ],
)
def test_compare_refuses_in_one_line(store, capsys, refs, message):
    assert main(["compare", "--runs-dir", str(store.root), *refs]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_compare_prints_the_table_and_the_diff(store, capsys):
    assert main(["compare", "--runs-dir", str(store.root), "20250101", "20250102", "20250103"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[:3] == ["A  20250101-120000-demo", "B  20250102-090000-demo", "C  20250103-180000-demo"]
    assert "best val  84.00%    89.00%    86.00%" in out
    assert "config: 3 keys differ" in out
    assert any(line.split() == ["lr", "0.001", "0.01", "0.001"] for line in lines)
    assert not any(line.startswith("seed") or line.startswith("model") for line in lines)  # the same in all

    assert main(["compare", "--runs-dir", str(store.root), "20250101", "20250102", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [r["best_val_acc"] for r in record["runs"]] == [0.84, 0.89]
    assert record["config_diff"] == {"lr": [0.001, 0.01]}


def test_a_run_with_no_metrics_is_compared_and_said(store, tmp_path, capsys):
    fake_run(store.root, "20250104-000000-empty", status="failed", best=None, test=None, metrics=False)
    assert main(["compare", "--runs-dir", str(store.root), "20250101", "20250104"]) == 0
    captured = capsys.readouterr()
    assert "20250104-000000-empty has no metrics to plot" in captured.err
    assert "status    finished  failed" in captured.out


def test_garbage_in_a_run_is_shown_escaped(tmp_path, capsys):
    a = fake_run(tmp_path, "20250101-000000-a", optimizer="\x1b[2Jsgd")
    fake_run(tmp_path, "20250101-000001-b")
    write_note(a, "see \x1b]0;pwned\x07 this")
    (tmp_path / "20250101-000001-b" / "summary.json").write_text('{"status": "finished", "best_val_acc": "abc"}')
    assert main(["compare", "--runs-dir", str(tmp_path), "20250101-000000", "20250101-000001"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2Jsgd" in out and "see \\x1b]0;pwned\\x07 th…" in out


def test_sorting_and_filtering(store):
    runs = store.list()
    names = lambda rs: [r.path.name[:8] for r in rs]  # noqa: E731
    assert names(sort_runs(runs, "date")) == ["20250103", "20250102", "20250101"]
    assert names(sort_runs(runs, "best val")) == ["20250102", "20250103", "20250101"]
    assert names(sort_runs(runs, "test acc")) == ["20250102", "20250101", "20250103"]  # no figure: last
    assert names(sort_runs(runs, "time")) == ["20250101", "20250102", "20250103"]
    write_note(runs[2].path, "The Baseline")
    kept = lambda text: names(r for r in runs if Filter(text).matches(r))  # noqa: E731
    assert kept("status:stopped") == ["20250103"]
    assert kept("lr=0.01") == ["20250102"]
    assert kept("baseline") == ["20250101"]  # the note, whatever its case
    assert kept("preset:demo sgd") == ["20250103"]  # every word must match
    assert kept("0102") == ["20250102"]  # the name
    assert kept("nothing-like-it") == []
    assert not Filter("  ") and Filter(" x ")


def test_notes(tmp_path):
    folder = fake_run(tmp_path, "20250101-000000-a")
    assert read_note(folder) == ""
    assert write_note(folder, "  two\nlines  ") == "two lines" and read_note(folder) == "two lines"
    assert write_note(folder, "x" * 2000) == "x" * 500
    assert write_note(folder, "") == "" and not (folder / FILE).exists()
    os.mkfifo(folder / FILE)  # a FIFO is read without waiting for a writer, and is no note
    assert read_note(folder) == ""
    with pytest.raises(OSError, match="not a plain file"):
        write_note(folder, "hello")


def test_delete_moves_the_folder_to_the_trash(store):
    runs = store.list()
    where = move_to_trash(store.root, runs[0].path)
    assert where == store.root / FOLDER / runs[0].path.name and (where / "metrics.csv").is_file()
    assert [r.path.name for r in store.list()] == [r.path.name for r in runs[1:]]  # the list skips the trash
    again = fake_run(store.root, runs[0].path.name)  # the same name again: kept apart in the trash
    assert move_to_trash(store.root, again).name == runs[0].path.name + "-2"


def test_a_running_run_is_not_deleted(store):
    folder = store.list()[0].path
    writer = RunDir(folder)
    writer.lock()
    try:
        with pytest.raises(RunStoreError, match="is in use .running, or being evaluated or exported"):
            move_to_trash(store.root, folder)
    finally:
        writer.unlock()
    assert folder.is_dir()
    with pytest.raises(RunStoreError, match="not a run of"):
        move_to_trash(store.root, store.root.parent)


def test_a_delete_that_cannot_happen_is_one_line(store, monkeypatch):
    folder = store.list()[0].path
    moved = move_to_trash(store.root, folder)
    with pytest.raises(RunStoreError, match="no longer in"):  # another app deleted it first
        move_to_trash(store.root, folder)
    assert moved.is_dir()
    other = store.list()[0].path

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("fmnist_tui.runs.os.pwrite", full)  # the lock file cannot be written
    with pytest.raises(RunStoreError, match="writer lock cannot be taken .No space left on device"):
        move_to_trash(store.root, other)
    assert other.is_dir()


def test_the_trash_is_not_a_run(store, capsys):
    move_to_trash(store.root, store.list()[0].path)
    assert main(["compare", "--runs-dir", str(store.root), ".tr", "20250101"]) == 2
    assert "no run '.tr'" in capsys.readouterr().err
