"""events.jsonl: written by every run, read back as the same events, whatever else is in the file.

Also the Follower that `attach` and `wait` read it with, and the control channel's parsing.
"""

from __future__ import annotations

import math
import os
import time

import pytest

from fmnist_tui.engine.control import ControlError, parse_action
from fmnist_tui.engine.eventlog import EventLog, EventReader, decode, encode
from fmnist_tui.engine.events import Control, EpochEnd, LogLine, RunEnded, RunStarted, StepProgress
from fmnist_tui.follow import Follower
from fmnist_tui.format import printable
from fmnist_tui.metrics import read_rows
from fmnist_tui.runs import RunDir

EVENTS = [
    RunStarted("/runs/x", "CPU (2 cores)", 3, 10, 30),
    StepProgress(0, 4, 30, 4, 10, 0.5, 1000.0, 1.0, 7.5, (0.7, 0.6, 0.4, 0.3)),
    EpochEnd(0, 10, 0.45, math.nan, 0.8, 1e-3, 2.5),
    LogLine("WARNING", "py.warnings", "a \x1b[31mred\x1b[0m ünïcode line"),
    Control("lr", 10, "lr 0.01 from step 11", 0.01),
    RunEnded("diverged", "/runs/x", 3.0, best_val_acc=None, error="training loss is inf at step 11"),
]


def test_every_event_reads_back_as_itself_with_escape_codes_escaped():
    for event in EVENTS:
        back = decode(encode(event))
        assert type(back) is type(event)
        for name, value in vars(event).items():
            got = getattr(back, name)
            if isinstance(value, str):
                value = printable(value)
            assert got == value or (math.isnan(value) and math.isnan(got)), name
    assert decode(encode(EVENTS[3])).text == "a \\x1b[31mred\\x1b[0m ünïcode line"


def test_the_reader_skips_garbage_and_waits_for_a_half_written_line(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [encode(e) for e in EVENTS]
    garbage = [
        "not json\n", "[1, 2]\n", '{"event": "RunStarted"}\n', '{"event": "Nope", "x": 1}\n',
        '{"event":"EpochEnd","epoch":"one","step":1,"train_loss":1,"val_loss":1,"val_acc":1,"lr":1,"seconds":1}\n',
        '{"event":"EpochEnd","epoch":true,"step":1,"train_loss":1,"val_loss":1,"val_acc":1,"lr":1,"seconds":1}\n',
        "\x00\xff\n", "{" * 100_000 + "\n",
    ]  # fmt: skip
    text = lines[0] + "".join(garbage) + "".join(lines[1:3])
    path.write_text(text)
    reader = EventReader(path, chunk=64)  # small pieces: lines are split across reads
    got = []
    for _ in range(10_000):
        got += reader.read()
        if not reader.pending():
            break
    assert [type(e) for e in got] == [RunStarted, StepProgress, EpochEnd]
    assert reader.bad_lines == len(garbage)

    half = lines[3][: len(lines[3]) // 2]
    with open(path, "a") as f:
        f.write(half)
    assert reader.read() == []  # not whole yet
    with open(path, "a") as f:
        f.write(lines[3][len(half) :])
    assert [type(e) for e in reader.read()] == [LogLine]


def test_a_writer_after_a_kill_starts_on_a_new_line_and_a_full_disk_raises_only_for_progress(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(encode(EVENTS[0]) + encode(EVENTS[1])[:20])  # killed mid-line
    seen = []
    log = EventLog(path, seen.append)
    log(EVENTS[2])
    log.close()
    assert [type(e) for e in EventReader(path).read_all()] == [RunStarted, EpochEnd]
    assert seen == [EVENTS[2]]

    full = EventLog(tmp_path / "full.jsonl", seen.append)
    full._file = open("/dev/full", "wb")  # noqa: SIM115 - every write now meets a full disk
    with pytest.raises(OSError, match="disk full"):
        full(EVENTS[1])
    full(EVENTS[5])  # the end is never refused: it must reach the front end
    assert seen[-1] == EVENTS[5]


def test_controls_are_parsed_or_refused_in_one_line():
    assert parse_action("stop") == ("stop", None)
    assert parse_action(" stop-after-epoch ") == ("stop-after-epoch", None)
    assert parse_action("lr=1e-3") == ("lr", 1e-3)
    for bad in ("lr=0", "lr=-1", "lr=nan", "lr=inf", "lr=abc", "lr=1e-320", "lr=10.5", "lr", "halt", ""):
        with pytest.raises(ControlError):
            parse_action(bad)


def finished_run(tmp_path, events, status="finished"):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.toml").write_text('name = "x"\n')
    (folder / "events.jsonl").write_text("".join(encode(e) for e in events))
    RunDir(folder).write_summary(status=status, duration_s=3.0, best_val_acc=0.8)
    return folder


def drain(follower, limit=200):
    out = []
    for _ in range(limit):
        out += follower.poll()
        if follower.over:
            return out
        time.sleep(0.05)
    raise AssertionError("the follower never saw the end")


def test_a_resumed_run_reads_as_one_run_and_its_end_comes_once(tmp_path):
    first_end = RunEnded("interrupted", "/runs/x", 1.0)
    events = [*EVENTS[:3], first_end, LogLine("WARNING", "x", "resuming"),
              RunStarted("/runs/x", "cpu", 3, 10, 30, 1, 10), EVENTS[5]]  # fmt: skip
    got = drain(Follower(finished_run(tmp_path, events, status="diverged")))
    ends = [e for e in got if isinstance(e, RunEnded)]
    assert ends == [EVENTS[5]], "the interrupted segment is not the run's end"
    assert any(isinstance(e, LogLine) and "goes on from step 10" in e.text for e in got)


def test_a_writer_that_died_without_its_end_reads_as_interrupted(tmp_path):
    folder = finished_run(tmp_path, EVENTS[:3], status="running")
    follower = Follower(folder)
    got = drain(follower)
    assert got[-1].status == "interrupted" and follower.vanished
    assert "resume it with" in got[-1].error


def test_a_run_without_an_event_log_is_replayed_from_its_record(tmp_path):
    folder = finished_run(tmp_path, [], status="stopped")
    (folder / "events.jsonl").unlink()
    (folder / "metrics.csv").write_text(
        "kind,epoch,step,train_loss,val_loss,val_acc,lr,seconds,test_loss,test_acc,weights\n"
        "step,0,1,2.0,,,,0.1,,,\nstep,0,2,1.5,,,,,,,\nepoch,0,2,1.75,1.6,0.5,0.001,0.3,,,\ngarbage\n"
    )
    got = drain(Follower(folder))
    assert [type(e) for e in got] == [StepProgress, StepProgress, EpochEnd, RunEnded]
    assert got[-1].status == "stopped" and got[2].val_acc == 0.5
    assert len(read_rows(folder / "metrics.csv")) == 3


def test_a_hand_over_nobody_took_says_so(tmp_path, monkeypatch):
    from fmnist_tui import follow
    from fmnist_tui.engine.events import HANDED_OVER

    monkeypatch.setattr(follow, "HANDOVER_GRACE_S", 0.2)
    handed = RunEnded("interrupted", "/runs/x", 1.0, error=HANDED_OVER)
    folder = finished_run(tmp_path, [*EVENTS[:3], handed], status="interrupted")
    end = drain(Follower(folder))[-1]
    assert end.status == "interrupted" and "never took it over" in end.error and "--resume" in end.error


def test_summary_json_has_the_last_word_on_how_the_run_ended(tmp_path):
    forged = RunEnded("failed", "/runs/x", 1.0, error="forged")  # appended by someone after the run ended
    assert drain(Follower(finished_run(tmp_path, [*EVENTS[:3], forged])))[-1].status == "finished"


def test_a_truncated_or_unreadable_event_log_is_no_error(tmp_path):
    folder = finished_run(tmp_path, EVENTS)
    data = (folder / "events.jsonl").read_bytes()
    (folder / "events.jsonl").write_bytes(data[: len(data) // 2])
    got = drain(Follower(folder))
    assert isinstance(got[-1], RunEnded)
    os.chmod(folder / "events.jsonl", 0)
    assert isinstance(drain(Follower(folder))[-1], RunEnded)
