"""Insight, timed: evaluating a checkpoint, and opening the Insight tab.

    python bench/insight.py --data-dir ../shared/fashion-mnist [--run RUN] [--mistakes 1500] [--repeat 5]

Prints:
  eval_s_median / eval_s_max   `evaluate_run` in this process (weights, data, test pass, evaluation.json),
                               for RUN, or for a 1-epoch run of the tutorial preset trained first
  eval_cli_s                   `fmnist-tui eval RUN` as a new process, torch's import included
  open_cold_ms_*               a run's detail opened on its Insight tab, MISTAKES misclassified images
                               (of 10,000) read then, until the matrix and the first picture are drawn
  open_warm_ms_*               a switch to the Insight tab of a detail already open (it read them then)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fmnist_tui import evaluation


def tutorial_run(runs: Path, data_dir: str) -> Path:
    from fmnist_tui.config import with_overrides
    from fmnist_tui.engine.runner import run
    from fmnist_tui.presets import load_presets

    config = with_overrides(load_presets().get("tutorial"), {"epochs": 1, "data_dir": data_dir})
    end = run(config, lambda e: None, runs_dir=runs)
    assert end.status == "finished", end.error
    return Path(end.run_dir)


def time_eval(run: Path, data_dir: str, repeat: int) -> list[float]:
    from fmnist_tui.engine.evaluation import evaluate_run

    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        evaluate_run(run, "best", data_dir)
        times.append(time.perf_counter() - started)
    return times


def fake_run(folder: Path, mistakes: int, data_dir: str) -> Path:
    """A run folder whose evaluation lists `mistakes` of 10,000 images (the real ones when there)."""
    from fmnist_tui.engine.idx import find_files, read_idx

    rng = random.Random(0)
    confusion = [[1000 if t == p else 0 for p in range(10)] for t in range(10)]
    listed = []
    files = find_files(Path(data_dir))
    images = read_idx(files["test_images"], "images") if files else None
    for n in range(mistakes):
        t, p = rng.randrange(10), rng.randrange(9)
        p = p + (p >= t)
        confusion[t][t] -= 1
        confusion[t][p] += 1
        c = round(rng.uniform(0.3, 1.0), 3)
        listed.append(
            evaluation.Mistake(index=n, true=t, predicted=p, confidence=c, top3=[(p, c), (t, round((1 - c) / 2, 3))])
        )
    listed.sort(key=lambda m: -m.confidence)
    pixels = b"".join(
        images[m.index].numpy().tobytes() if images is not None else bytes(rng.randrange(256) for _ in range(784))
        for m in listed
    )
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text('name = "bench"\nmodel = "mlp"\n')
    (folder / "summary.json").write_text(json.dumps({"status": "finished", "started": "2026-11-29T00:00:00"}))
    evaluation.write(folder, evaluation.build(confusion, 0.4, listed, "best.ckpt", 0, 1, "fashion-mnist"), pixels)
    return folder


def watch_drawing(drawn: dict) -> None:
    """Note when the matrix and the first picture are first drawn with data (the bench's own hooks)."""
    from fmnist_tui.tui.pictures import Picture
    from fmnist_tui.tui.widgets.confusion import ConfusionGrid

    picture_line, grid_render = Picture.render_line, ConfusionGrid.render

    def render_line(self, y):
        if self.pixels and "picture" not in drawn:
            drawn["picture"] = time.perf_counter()
        return picture_line(self, y)

    def render(self):
        if self.evaluation is not None and self.region.width and "grid" not in drawn:
            drawn["grid"] = time.perf_counter()
        return grid_render(self)

    Picture.render_line, ConfusionGrid.render = render_line, render  # type: ignore[method-assign]


async def time_open(run: Path, repeat: int) -> tuple[list[float], list[float]]:
    """(cold, warm): the detail screen opened on its Insight tab (the evaluation read then), and a
    switch to the tab of a detail screen already open; each until the matrix and a picture are drawn."""
    from fmnist_tui.runs import RunStore
    from fmnist_tui.tui.app import make_app
    from fmnist_tui.tui.screens.detail import RunDetailScreen

    drawn: dict[str, float] = {}
    watch_drawing(drawn)

    async def until_drawn(started: float) -> float:
        while len(drawn) < 2 and time.perf_counter() - started < 10:
            await asyncio.sleep(0.001)
        return max(drawn.values()) - started

    cold, warm = [], []
    app = make_app(runs_dir=str(run.parent))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(repeat):
            drawn.clear()
            started = time.perf_counter()
            app.push_screen(RunDetailScreen(RunStore(run.parent).read(run), tab="tab-insight"))
            cold.append(await until_drawn(started))
            app.pop_screen()
            await pilot.pause(0.2)
            app.push_screen(RunDetailScreen(RunStore(run.parent).read(run)))
            await pilot.pause(0.3)
            drawn.clear()
            started = time.perf_counter()
            app.screen.query_one("#detail-tabs").active = "tab-insight"
            warm.append(await until_drawn(started))
            app.pop_screen()
            await pilot.pause(0.2)
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--run", help="evaluate this run (default: train a 1-epoch tutorial run first)")
    parser.add_argument("--mistakes", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.run:
            run = Path(tmp) / "runs" / Path(args.run).name
            shutil.copytree(args.run, run)  # the bench writes evaluation.json: not into the user's run
        else:
            run = tutorial_run(Path(tmp) / "runs", args.data_dir)
        evals = time_eval(run, args.data_dir, args.repeat)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fmnist_tui.cli.main", "eval", str(run), "--data-dir", args.data_dir],
                       check=True, capture_output=True)  # fmt: skip
        cli = time.perf_counter() - started
        cold, warm = asyncio.run(time_open(fake_run(Path(tmp) / "open" / "20261129-000000-bench", args.mistakes,
                                                    args.data_dir), args.repeat))  # fmt: skip
    print(f"eval_s_median {statistics.median(evals):.3f}")
    print(f"eval_s_max {max(evals):.3f}")
    print(f"eval_cli_s {cli:.2f}")
    for name, times in (("open_cold", cold), ("open_warm", warm)):
        print(f"{name}_ms_median {1000 * statistics.median(times):.0f}")
        print(f"{name}_ms_max {1000 * max(times):.0f}")


if __name__ == "__main__":
    main()
