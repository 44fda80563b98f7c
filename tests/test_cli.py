"""The real `fmnist-tui` command, as a script or a person would run it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env_extra=None, timeout=180):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "fmnist_tui", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)  # fmt: skip


@pytest.fixture
def tiny_preset(tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    lines = [f"{k} = {json.dumps(v)}" for k, v in TINY.items()]
    (folder / "tiny.toml").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.slow
def test_headless_run_prints_epochs_and_a_summary(tmp_path, tiny_preset):
    runs = tmp_path / "runs"
    result = cli("run", "--preset", "tiny", "--presets-dir", str(tiny_preset), "--runs-dir", str(runs),
                 "--set", "epochs=3", "--set", "model=cnn", "--set", "width=8")  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "epoch 1/3  train_loss" in out and "epoch 3/3  train_loss" in out
    assert "finished: test_acc" in out
    assert "\x1b" not in out and "\r" not in out  # plain text when stdout is not a terminal
    folder = next(runs.iterdir())
    assert f"run folder {folder}" in out
    assert json.loads((folder / "summary.json").read_text())["status"] == "finished"
    assert "GPU available" not in result.stderr  # Lightning's chatter stays off the terminal

    listing = cli("runs", "--runs-dir", str(runs))
    assert folder.name in listing.stdout and "finished" in listing.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "lr=abc"], "--set: lr: 'abc' is not a number; allowed: a number above 0, at most 10"),
        (["--set", "lr=nan"], "--set: lr: nan is not a finite number; allowed: a number above 0, at most 10"),
        (["--set", "batch_size=0"], "--set: batch_size: 0 is too small; allowed: a whole number from 1 to 65536"),
        (["--set", "model=vgg"], "--set: model: unknown value 'vgg'; allowed: one of tutorial_mlp, mlp, cnn, resnet"),
        (["--set", "colour=red"], "--set colour: unknown key"),
        (["--set", "epochs"], "expected KEY=VALUE"),
        (
            ["--set", "epochs=1000000000"],
            "--set: epochs: 1000000000 is too big; allowed: a whole number from 1 to 10000",
        ),
        (["--set", "lr=20"], "--set: lr: 20 is too big; allowed: a number above 0, at most 10"),
        (["--set", "batch_size=100000"], "--set: batch_size: 100000 is too big"),
        (
            ["--set", "dataset=fashion-mnist", "--set", "val_size=5000", "--set", "batch_size=60000"],
            "batch_size: must be at most 55000",
        ),
        (["--set", "precision=64"], "--set: precision: unknown value '64'; allowed: one of 32, bf16-mixed, 16-mixed"),
        (["--set", "description=\udcff\udcfe"], "--set: description: not valid UTF-8 text"),  # bytes ff fe
        (["--set", "accelerator=gpu"], "accelerator = gpu needs a GPU, and none is visible here"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_preset, args, message, capsys):
    from fmnist_tui.cli.main import main

    runs = tmp_path / "runs"
    code = main(["run", "--preset", "tiny", "--presets-dir", str(tiny_preset), "--runs-dir", str(runs), *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("fmnist-tui: error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not runs.exists(), "nothing may start on bad input"


@pytest.mark.slow
def test_unknown_preset_and_unknown_run(tmp_path):
    result = cli("run", "--preset", "nope", "--runs-dir", str(tmp_path))
    assert result.returncode == 2 and "unknown preset 'nope'" in result.stderr
    result = cli("run", "--resume", "nope", "--runs-dir", str(tmp_path))
    assert result.returncode == 2 and "no run 'nope'" in result.stderr


def test_presets_lists_names_and_descriptions(tmp_path, tiny_preset):
    result = cli("presets", "--presets-dir", str(tiny_preset))
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"tutorial", "mlp", "cnn_fast", "best", "tiny"} <= set(names)
    assert "a few hundred synthetic images" in result.stdout


def test_help_does_not_import_torch():
    code = "import sys; from fmnist_tui.cli.main import build_parser; build_parser().format_help(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_path_options_expand_home(tmp_path, tiny_preset):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    listing = cli("runs", "--runs-dir=~/my-runs", env_extra=env)
    assert listing.returncode == 0 and f"no runs in {home}/my-runs" in listing.stdout
    shutil.copytree(tiny_preset, home / "presets")
    presets = cli("presets", "--presets-dir=~/presets", env_extra=env)
    assert "tiny" in presets.stdout and "not found" not in presets.stderr


def test_text_from_run_files_is_shown_with_control_characters_escaped(tmp_path):
    runs = tmp_path / "runs"
    folder = runs / "20260101-000000-x\x1b[2J"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.toml").write_text('name = "evil\\u001b[2J\\u001b[H"\n')
    (folder / "summary.json").write_text(json.dumps({"status": "\x1b[31mfinished", "started": "\x1b]0;title\x07"}))
    result = cli("runs", "--runs-dir", str(runs))
    assert result.returncode == 0
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "evil\\x1b[2J" in result.stdout and "-x\\x1b[2J" in result.stdout and "incomplete" in result.stdout


def test_headless_output_escapes_control_characters():
    from io import StringIO

    from fmnist_tui.cli.headless import Printer
    from fmnist_tui.engine.events import LogLine, RunEnded

    out, err = StringIO(), StringIO()
    printer = Printer(out=out, err=err)
    printer(LogLine("WARNING", "x", "bad \x1b[2J file"))
    printer(RunEnded("failed", "/runs/a\x1bb", 1.0, error="OSError: \x1b]0;pwned\x07"))
    assert "\x1b" not in out.getvalue() + err.getvalue() and "\x07" not in out.getvalue()
    assert "bad \\x1b[2J file" in err.getvalue() and "/runs/a\\x1bb" in out.getvalue()


def test_the_printer_stops_printing_when_its_reader_goes_away():
    from fmnist_tui.cli.headless import Printer
    from fmnist_tui.engine.events import EpochEnd

    class Closed:
        def isatty(self):
            return False

        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            raise ValueError("no file")

    printer = Printer(out=Closed(), err=Closed())
    printer(EpochEnd(0, 10, 1.0, 1.0, 0.5, 1e-3, 1.0))  # raises nothing
    printer(EpochEnd(1, 20, 1.0, 1.0, 0.5, 1e-3, 1.0))
    assert printer.closed == {"out"}


@pytest.mark.slow
def test_options_mean_the_same_before_and_after_the_command(tmp_path, tiny_preset):
    runs = tmp_path / "runs"
    result = cli("--set", "epochs=1", "--runs-dir", str(runs), "--presets-dir", str(tiny_preset), "run",
                 "--preset", "tiny", "--set", "batch_size=64")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (folder,) = runs.iterdir()
    config = (folder / "config.toml").read_text()
    assert "epochs = 1\n" in config and "batch_size = 64\n" in config  # both --set count
    listing = cli("--runs-dir", str(runs), "runs")
    assert folder.name in listing.stdout


@pytest.mark.parametrize("args, message", [
    (["--set", "epochs=1", "runs"], "--set does not apply to `fmnist-tui runs`"),
    (["--data-dir", "x", "keys"], "--data-dir does not apply to `fmnist-tui keys`"),
    (["--start", "runs"], "--start does not apply to `fmnist-tui runs`"),
    (["run"], "run: give one of --preset NAME (a new run), --like RUN (a new run with RUN's config) or --resume RUN"),
    (["run", "--preset", "tiny", "--resume", "x"], "run: give one of --preset NAME"),
])  # fmt: skip
def test_an_option_a_command_does_not_take_is_refused(args, message):
    result = cli(*args)
    assert result.returncode == 2 and message in result.stderr and result.stdout == ""


@pytest.mark.slow
def test_run_json_prints_one_event_a_line(tmp_path, tiny_preset):
    result = cli("run", "--preset", "tiny", "--presets-dir", str(tiny_preset), "--runs-dir", str(tmp_path / "runs"),
                 "--json", "--progress-every", "0.001")  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "RunEnded" and events[-1]["status"] == "finished" and 0 <= events[-1]["test_acc"] <= 1
    assert "RunStarted" in kinds and kinds.count("EpochEnd") == 2 and "StepProgress" in kinds and "LogLine" in kinds


def test_progress_lines_come_every_n_seconds_or_never(monkeypatch):
    from io import StringIO

    from fmnist_tui.cli import headless
    from fmnist_tui.engine.events import RunStarted, StepProgress

    clock = [0.0]
    monkeypatch.setattr(headless.time, "monotonic", lambda: clock[0])

    def lines_over(seconds: int, every_s: float | None) -> int:
        out, clock[0] = StringIO(), 0.0
        printer = headless.Printer(out=out, err=StringIO(), every_s=every_s)
        printer(RunStarted("/runs/x", "CPU", 1, 1000, 1000))
        for tick in range(seconds * 10):  # ten reports a second
            clock[0] = tick / 10
            printer(StepProgress(0, tick, 1000, tick, 1000, 1.0, 100.0, 1.0, 1.0))
        return out.getvalue().count("samples/s")

    assert lines_over(95, None) == 3  # into a pipe: every 30 s (the first 30 s after the start)
    assert lines_over(95, 0) == 0 and lines_over(10, 1.0) == 9


@pytest.mark.slow
def test_listings_as_json(tmp_path, tiny_preset):
    runs = tmp_path / "runs"
    assert cli("run", "--preset", "tiny", "--presets-dir", str(tiny_preset), "--runs-dir", str(runs)).returncode == 0
    (listed,) = json.loads(cli("runs", "--runs-dir", str(runs), "--json").stdout)
    assert listed["status"] == "finished" and listed["preset"] == "tiny" and 0 <= listed["test_acc"] <= 1
    assert listed["test_checkpoint"] in ("best.ckpt", "last.ckpt") and listed["run"] == next(runs.iterdir()).name
    presets = {p["name"]: p for p in json.loads(cli("presets", "--presets-dir", str(tiny_preset), "--json").stdout)}
    assert presets["tiny"]["config"]["synthetic_size"] == 400 and "tutorial" in presets
    keys = {k["key"]: k for k in json.loads(cli("keys", "--json").stdout)}
    assert keys["lr"]["allowed"] == "a number above 0, at most 10" and keys["epochs"]["default"] == 10


def test_the_cli_modules_do_not_import_each_other_in_a_circle():
    code = "import sys, fmnist_tui.cli.headless; print('fmnist_tui.cli.main' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout.strip() == "False"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["attach"], "no run is running in"),
        (["attach", "nope"], "no run 'nope'"),
        (["attach", "not-a-run"], "no config.toml, so this is not a run folder"),
        (["control", "nope", "stop"], "no run 'nope'"),
        (["control", "20260101-000000-done", "stop"], "is not running (finished): there is nothing to control"),
        (["control", "20260101-000000-done", "lr=-1"], "lr=VALUE needs a number from 1e-10 to 10"),
        (["control", "20260101-000000-done", "halt"], "'halt' is not a control"),
        (["wait", "nope"], "no run 'nope'"),
    ],
)
def test_runs_in_flight_refuse_bad_input_in_one_line(tmp_path, args, message, capsys):
    from fmnist_tui.cli.main import main

    runs = tmp_path / "runs"
    (runs / "not-a-run").mkdir(parents=True)
    done = runs / "20260101-000000-done"
    done.mkdir()
    (done / "config.toml").write_text('name = "done"\n')
    (done / "summary.json").write_text('{"status": "finished"}')
    code = main([*args, "--runs-dir", str(runs)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and message in err, err
    assert err.startswith("fmnist-tui: error: ") and err.count("\n") == 1
