"""The benchmarks' own logic: how they pick steps, count samples and time training."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from fmnist_tui.engine.events import StepProgress

BENCH = Path(__file__).parent.parent / "bench"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tick(epoch, step, elapsed, per_epoch=100):
    return StepProgress(epoch=epoch, step=step, total_steps=3 * per_epoch, epoch_step=step - epoch * per_epoch,
                        steps_per_epoch=per_epoch, loss=1.0, samples_per_s=0.0, elapsed_s=elapsed, eta_s=0.0)  # fmt: skip


def test_engine_rate_leaves_out_warmup_and_the_time_between_epochs():
    tp = load("throughput")
    tp.BENCH_BS[0] = 10
    # Epoch 0: two warm-up ticks, then 50 steps in 1 s. Validation takes 5 s. Epoch 1: 50 steps in 1 s.
    events = [tick(0, 10, 9.0), tick(0, 20, 9.5), tick(0, 40, 10.0), tick(0, 90, 11.0),
              tick(1, 110, 16.0), tick(1, 160, 17.0)]  # fmt: skip
    assert tp.engine_rate(events) == pytest.approx(100 * 10 / 2.0)


def test_engine_config_runs_at_least_the_steps_asked():
    tp = load("throughput")

    class Args:
        batch_size, accelerator, data_dir = 512, "cpu", "/nowhere"

    one = tp.engine_config(type("A", (Args,), {"batch_size": 64}), 300, "")
    assert one.epochs == 1 and one.steps_per_epoch >= 300
    many = tp.engine_config(Args, 2000, "")
    assert many.epochs * many.steps_per_epoch >= 2000 and many.val_size == 1000


def test_time_to_accuracy_probe_agrees_with_the_runs_own_test(tmp_path, monkeypatch, capsys):
    tta = load("time_to_accuracy")
    out = tmp_path / "tta.json"
    argv = ["time_to_accuracy.py", "--preset", "tutorial", "--runs-dir", str(tmp_path / "runs"),
            "--set", "dataset=synthetic", "--set", "val_size=300", "--set", "synthetic_size=1200",
            "--set", "epochs=3", "--set", "lr=0.05", "--set", "accelerator=cpu",
            "--targets", "0", "1.01", "--json", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    tta.main()
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert 0 < rows[0]["train_s"] < rows[1]["train_s"] < rows[2]["train_s"] == pytest.approx(result["train_s"])
    assert rows[-1]["test_acc"] == pytest.approx(result["final_test_acc"], abs=1e-6)  # same net, same test set
    assert result["time_to_0"] == rows[0]["train_s"] and result["time_to_1.01"] is None
    assert result["train_s"] < result["run_wall_s"]
    printed = capsys.readouterr().out
    assert "time_to_1.01=not reached" in printed and "time_to_0=" in printed


def test_engine_rate_with_a_short_first_epoch_skips_nothing():
    tp = load("throughput")
    tp.BENCH_BS[0] = 10
    events = [tick(0, 10, 1.0), tick(1, 110, 5.0), tick(1, 160, 6.0)]
    assert tp.engine_rate(events) == pytest.approx(50 * 10 / 1.0)


def test_throughput_report_takes_medians_and_pairs_ratios_within_a_round(capsys):
    tp = load("throughput")

    class Args:
        batch_size, accelerator = 64, "cpu"
        rounds = 3

    # Round 2 ran on a machine twice as fast: each ratio is taken inside its own round.
    runs = {"quickstart_plain": [10.0, 20.0, 10.0], "device_plain": [40.0, 80.0, 40.0], "engine": [30.0, 60.0, 31.0],
            "engine_app_thr": [20.0, 40.0, 20.0], "engine_app": [19.0, 40.0, 19.6]}  # fmt: skip
    tp.report(Args, 800, runs)
    out = capsys.readouterr().out
    assert "median of 3 rounds" in out
    assert "engine_vs_quickstart_plain_ratio=3.000" in out  # median of 3.0, 3.0, 3.1
    assert "app_overhead=0.020" in out  # median of 5%, 0%, 2%
    line = next(ln for ln in out.splitlines() if ln.startswith("engine "))
    assert line.split()[1:3] == ["31", "±48%"]  # the median rate; half the range over the median: 30 / 31 / 2
    assert "engine_overhead_ms_per_step=" in out
