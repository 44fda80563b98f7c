"""The queue's store and the `queue` / `sweep` commands: bad input, two adders at once, a corrupt file.

No scheduler process starts here: each test holds the scheduler's lock, as a running one would.
"""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from fmnist_tui.cli.main import main
from fmnist_tui.config import ConfigError, make_config
from fmnist_tui.runqueue import Queue, QueueError
from fmnist_tui.sweep import expand, parse_grid
from tests.conftest import TINY


def entries(root) -> list[dict]:
    path = root / ".queue" / "entries.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_add_list_remove_and_ids_are_never_reused(runs):
    queue = Queue(runs)
    first = queue.add([(TINY, ""), ({**TINY, "lr": 0.01}, "lr=0.01")])
    assert [e.id for e in first] == [1, 2] and first[1].label == "lr=0.01"
    assert queue.remove(2).id == 2
    assert [e.id for e in queue.add([(TINY, "")])] == [3]  # 2 is gone for good: an old `rm 2` cannot hit it
    with pytest.raises(QueueError, match="no queue entry 2"):
        queue.remove(2)
    queue.update(1, state="running", run="some-run")
    with pytest.raises(QueueError, match="entry 1 is running, not queued.*fmnist-tui control"):
        queue.remove(1)
    assert [e.id for e in queue.clear()] == [3]
    assert [e["id"] for e in entries(runs)] == [1]


def test_a_bad_config_is_refused_whole(runs):
    with pytest.raises(QueueError, match="lr"):
        Queue(runs).add([(TINY, "a"), ({**TINY, "lr": -1}, "b")])
    assert entries(runs) == []


def _add_many(root: str, n: int, tag: str) -> None:
    queue = Queue(root)
    for i in range(n):
        queue.add([(TINY, f"{tag}{i}")])


def test_two_adders_at_once_lose_nothing(runs):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_many, args=(str(runs), 40, tag)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    found = entries(runs)
    assert len(found) == 80
    assert sorted(e["id"] for e in found) == list(range(1, 81))
    assert {e["label"] for e in found} == {f"{t}{i}" for t in "ab" for i in range(40)}


def test_a_corrupt_queue_file_is_reported_and_its_valid_entries_kept(runs):
    queue = Queue(runs)
    queue.add([(TINY, "one"), (TINY, "two")])
    good = (runs / ".queue" / "entries.jsonl").read_text().splitlines()
    junk = ["{not json", '{"id": "x", "config": {}}', "\x1b[31mred", json.dumps({"id": 9, "config": {}, "state": "zz"})]
    (runs / ".queue" / "entries.jsonl").write_text("\n".join([good[0], *junk, good[1]]) + "\n")
    loaded = queue.load()
    assert [e.label for e in loaded.entries] == ["one", "two"]
    assert len(loaded.problems) == 4 and "line 2" in loaded.problems[0]
    queue.add([(TINY, "three")])  # the next change sets the junk aside, never drops it
    assert [e["label"] for e in entries(runs)] == ["one", "two", "three"]
    assert (runs / ".queue" / "rejected.jsonl").read_text().splitlines() == junk
    assert queue.load().problems == []


def test_sweep_expands_the_cross_product_with_labels():
    grid = parse_grid(["lr=0.01,0.003", "batch_size=32,64,128"])
    points = expand(make_config(TINY), grid)
    assert len(points) == 6
    assert points[0][1] == "lr=0.01 batch_size=32" and points[-1][1] == "lr=0.003 batch_size=128"
    assert {(c["lr"], c["batch_size"]) for c, _ in points} == {(a, b) for a in (0.01, 0.003) for b in (32, 64, 128)}


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (["lr=0.01,abc"], r"--grid lr=abc: 'abc' is not a number"),
        (["nope=1,2"], "--grid nope: unknown key"),
        (["lr=0.1,"], "an empty value"),
        (["lr=1", "lr=2"], "given twice"),
        (["momentum=0,0.9", "nesterov=true,false"], "sweep point momentum=0 nesterov=true: nesterov"),
        (["momentum=0,0.1", "nesterov=true"], "--grid momentum=0: nesterov: needs"),
    ],
)
def test_a_sweep_with_one_bad_value_names_it(grid, message):
    with pytest.raises(ConfigError, match=message):
        expand(make_config({**TINY, "optimizer": "sgd"}), parse_grid(grid))


def test_cli_refuses_bad_input_and_queues_nothing(runs, capsys):
    base = ["--runs-dir", str(runs)]
    assert main(["queue", "add", "--preset", "tutorial", "--set", "lr=abc", *base]) == 2
    assert "lr: 'abc' is not a number" in capsys.readouterr().err
    assert main(["queue", "add", "--preset", "tutorial", "--set", "devices=64", *base]) == 2
    assert "devices: 64 asked for, and this machine has" in capsys.readouterr().err
    assert main(["sweep", "--preset", "tutorial", "--grid", "lr=0.1,-1", *base]) == 2
    assert "--grid lr=-1" in capsys.readouterr().err
    assert main(["sweep", "--preset", "tutorial", "--grid", "seed=" + ",".join(map(str, range(101))), *base]) == 2
    assert "101 runs: add --yes" in capsys.readouterr().err
    assert main(["queue", "rm", "abc", *base]) == 2
    assert main(["queue", "rm", "7", *base]) == 2
    assert "no queue entry 7" in capsys.readouterr().err
    assert main(["queue", "clear", "3", *base]) == 2
    assert entries(runs) == []


def test_cli_add_list_rm_and_sweep(runs, capsys):
    base = ["--runs-dir", str(runs)]
    assert main(["queue", "add", "--preset", "mlp", "--set", "epochs=3", *base]) == 0
    assert main(["sweep", "--preset", "tutorial", "--grid", "lr=0.1,0.01", "--grid", "batch_size=32,64", *base]) == 0
    out = capsys.readouterr()
    assert "sweep: 4 runs (2 lr x 2 batch_size)" in out.err and "queued 5: tutorial  lr=0.01 batch_size=64" in out.out
    assert main(["queue", *base]) == 0
    listing = capsys.readouterr().out
    assert "scheduler running; 1 slot (CPU)" in listing
    assert "   1  queued      mlp" in listing and "lr=0.1 batch_size=32" in listing
    assert main(["queue", "rm", "1", *base]) == 0
    assert "removed 1: mlp" in capsys.readouterr().out
    assert main(["queue", "--json", *base]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in listed] == [2, 3, 4, 5] and {e["sweep"] for e in listed} != {None}
    assert listed[0]["config"]["lr"] == 0.1 and listed[0]["state"] == "queued"
    assert main(["queue", "clear", *base]) == 0
    assert entries(runs) == []


def test_the_scheduler_pins_each_entry_to_free_gpus_first_come_first_served(runs, monkeypatch):
    """With GPUs 0-3 visible: devices=k takes k free ones (CUDA_VISIBLE_DEVICES), -1 takes all, and an
    entry that does not fit keeps the ones behind it waiting. (The choice only: no process starts.)"""
    from fmnist_tui.scheduler import Scheduler

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    queue = Queue(runs)
    queue.add([({**TINY, "devices": d}, f"d{d}") for d in (1, 2, 2, -1, 1)])
    scheduler = Scheduler(runs)
    launches, waiting = scheduler.step()
    assert [(e.label, j.env["CUDA_VISIBLE_DEVICES"]) for e, j in launches] == [("d1", "0"), ("d2", "1,2")]
    assert waiting == 3  # the second d2 needs two GPUs and one is free: it waits, and so do the ones behind it
    assert [e.state for e in queue.load().entries] == ["starting", "starting", "queued", "queued", "queued"]
    for entry, _ in launches:  # they ran and ended
        queue.update(entry.id, state="done", status="finished")
    launches, waiting = scheduler.step()
    assert [(e.label, j.env["CUDA_VISIBLE_DEVICES"]) for e, j in launches] == [("d2", "0,1")]
    queue.update(launches[0][0].id, state="done", status="finished")
    launches, _ = scheduler.step()
    assert [(e.label, j.env["CUDA_VISIBLE_DEVICES"]) for e, j in launches] == [("d-1", "0,1,2,3")]


def test_on_a_cpu_machine_slots_share_the_cores(runs, monkeypatch):
    from fmnist_tui import scheduler

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(scheduler.os, "cpu_count", lambda: 8)
    (runs / ".queue" / "slots").write_text("2\n")
    Queue(runs).add([(TINY, "a"), (TINY, "b"), (TINY, "c")])
    launches, waiting = scheduler.Scheduler(runs).step()
    assert [(e.label, j.cpu_threads, j.env) for e, j in launches] == [("a", 4, {}), ("b", 4, {})] and waiting == 1
    (runs / ".queue" / "slots").write_text("junk\n")  # a damaged file: the default, one at a time
    assert scheduler.read_slots(Queue(runs)).count == 1


def test_a_queued_run_says_which_command_queued_it(runs, capsys):
    """The process that runs an entry may have been started before it (a warm one): the command
    that queued the entry reaches the run's card through the job, not the process's own start."""
    from fmnist_tui import scheduler
    from fmnist_tui.cards import LAUNCHED_BY

    assert main(["sweep", "--preset", "tutorial", "--grid", "lr=0.1,0.01", "--runs-dir", str(runs)]) == 0
    command = f"fmnist-tui sweep --preset tutorial --grid lr=0.1,0.01 --runs-dir {runs}"
    assert [e["command"] for e in entries(runs)] == [command, command]
    (entry, job), *_ = scheduler.Scheduler(runs).step()[0]
    assert entry.command == command and job.env[LAUNCHED_BY] == command


def test_only_the_process_last_sent_to_an_entry_may_run_it(runs):
    """A process too slow to start (stopped, swapped out) finds its entry started again by another."""
    queue = Queue(runs)
    (entry,) = queue.add([(TINY, "")])
    queue.update(entry.id, state="starting", launch="first")
    queue.update(entry.id, launch="second")  # its scheduler died; the next one started it again
    assert queue.claim(entry.id, "second") is None
    assert "in another process's hands" in queue.claim(entry.id, "first")
    queue.update(entry.id, state="running")
    assert "is running" in queue.claim(entry.id, "second")
    assert "removed" in queue.claim(99, "x")


def test_a_queue_file_that_is_not_a_plain_file_is_refused_not_waited_on(runs):
    os.mkfifo(runs / ".queue" / "entries.jsonl")
    with pytest.raises(QueueError, match="not a plain file"):
        Queue(runs).load()


def test_a_full_runs_folder_keeps_entries_queued(runs, monkeypatch):
    from fmnist_tui import scheduler
    from fmnist_tui.runs import RunStore, RunStoreError

    Queue(runs).add([(TINY, "a")])

    def full(self):
        raise RunStoreError("runs folder is not writable: No space left on device")

    monkeypatch.setattr(RunStore, "check_writable", full)
    launches, waiting = scheduler.Scheduler(runs).step()
    assert launches == [] and waiting == 1
    assert [e.state for e in Queue(runs).load().entries] == ["queued"]


def test_cli_checks_slots_sweep_points_and_sizes_first(runs, capsys):
    base = ["--runs-dir", str(runs)]
    assert main(["queue", "--slots", "0", *base]) == 2
    assert main(["queue", "--slots", str(10**20), *base]) == 2
    assert "allowed: 1 to" in capsys.readouterr().err
    assert main(["queue", "--slots", "1", *base]) == 0
    assert (runs / ".queue" / "slots").read_text() == "1\n"
    assert main(["queue", "--ended", *base]) == 2
    assert main(["sweep", "--preset", "tutorial", "--grid", f"devices=1,{os.cpu_count() + 1}", *base]) == 2
    assert f"sweep point devices={os.cpu_count() + 1}: devices:" in capsys.readouterr().err
    assert main(["sweep", "--preset", "tutorial", "--grid", "num_nodes=1,2", *base]) == 2
    huge = [f"--grid={k}=" + ",".join(str(v) for v in range(1, 31)) for k in ("seed", "epochs", "hidden", "split_seed")]
    assert main(["sweep", "--preset", "tutorial", *huge, *base]) == 2
    assert "810000 runs, more than 10000" in capsys.readouterr().err
    assert entries(runs) == []


@pytest.mark.parametrize("name", ["scheduler.lock", "slots", "next-id"])
def test_a_fifo_among_the_queue_files_never_blocks_a_command(runs, name, capsys):
    import signal

    os.unlink(runs / ".queue" / "scheduler.lock") if name == "scheduler.lock" else None
    os.mkfifo(runs / ".queue" / name)
    signal.alarm(20)  # a hang fails the test instead of the suite
    try:
        code = main(["queue", "--runs-dir", str(runs)])
        if name == "next-id":
            code = main(["queue", "add", "--preset", "tutorial", "--runs-dir", str(runs)])
    finally:
        signal.alarm(0)
    assert code in (0, 1, 2), capsys.readouterr()


def test_the_scheduler_waits_for_space_and_after_a_run_that_found_the_disk_full(runs, monkeypatch):
    from fmnist_tui import scheduler

    Queue(runs).add([(TINY, "a"), (TINY, "b")])
    free = {"bytes": 10 * 2**20}
    monkeypatch.setattr(scheduler, "_free", lambda path: free["bytes"])
    s = scheduler.Scheduler(runs)
    assert s.step() == ([], 2)  # 10 MiB: not room enough for a run
    free["bytes"] = 500 * 2**20
    launches, _ = s.step()
    assert [e.label for e, _ in launches] == ["a"]
    Queue(runs).update(1, state="failed", status="failed", error="disk full: no space left to write last.ckpt")
    free["bytes"] = 400 * 2**20  # the failed run's files: the disk is as full as before for the next run
    assert s.step() == ([], 1)
    free["bytes"] = 480 * 2**20  # space was freed
    assert [e.label for e, _ in s.step()[0]] == ["b"]
