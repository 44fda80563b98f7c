"""The queue on this machine: N runs with S slots against the same runs one after another.

    python bench/queue_speed.py --data-dir ../shared/fashion-mnist [--runs 4] [--slots 2] [--epochs 2]

Each run is the mlp preset (distinct seeds) for --epochs epochs on the real data.
  sequential    the runs one after another, each `fmnist-tui run` single-threaded (OMP_NUM_THREADS=1),
                as a person would start them by hand
  queue         the same runs queued with --slots S (the scheduler gives each run cores/S threads)
Prints the wall time of each (first command to last run's end), their ratio, and the
scheduler's own overhead per run: from the end of one run (its RunEnded, after its tests)
to the first step of the run that took its slot (its RunStarted), from events.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

FMNIST = [sys.executable, "-m", "fmnist_tui"]


def events(folder: Path, kind: str) -> list[dict]:
    lines = (folder / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def run_folders(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("."))


def sequential(args, runs: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    for seed in range(args.runs):
        subprocess.run([*FMNIST, "run", "--preset", "mlp", "--set", f"epochs={args.epochs}", "--set", f"seed={seed}",
                        "--data-dir", args.data_dir, "--runs-dir", str(runs), "--progress-every", "0"],
                       env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def queued(args, runs: Path, slots: int) -> float:
    start = time.time()  # the runs' events carry Unix times
    seeds = ",".join(str(s) for s in range(args.runs))
    subprocess.run([*FMNIST, "sweep", "--preset", "mlp", "--set", f"epochs={args.epochs}", "--grid", f"seed={seeds}",
                    "--slots", str(slots), "--data-dir", args.data_dir, "--runs-dir", str(runs)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    lock = runs / ".queue" / "scheduler.lock"
    time.sleep(0.5)
    from fmnist_tui.scheduler import lock_free

    while not lock_free(lock):
        time.sleep(0.05)
    ends = [events(f, "RunEnded")[-1]["at"] for f in run_folders(runs)]
    return max(ends) - start


def overheads(runs: Path) -> list[float]:
    """For each run that started after another ended: its first step minus the latest end before it."""
    spans = sorted((events(f, "RunStarted")[0]["at"], events(f, "RunEnded")[-1]["at"]) for f in run_folders(runs))
    ends = sorted(end for _, end in spans)
    out = []
    for start, _ in spans:
        before = [e for e in ends if e <= start]
        if before:
            out.append(start - before[-1])
            ends.remove(before[-1])  # each end frees one slot
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seq = sequential(args, Path(tmp) / "sequential")
        q = queued(args, Path(tmp) / "queue", args.slots)
        gaps = overheads(Path(tmp) / "queue")
    print(f"cores={os.cpu_count()} runs={args.runs} slots={args.slots} epochs={args.epochs}")
    print(f"sequential_s={seq:.1f}")
    print(f"queue_s={q:.1f}")
    print(f"queue_speedup={seq / q:.2f}")
    if gaps:
        print(
            f"scheduler_overhead_s_mean={mean(gaps):.2f} max={max(gaps):.2f} (end of a run -> first step of the next)"
        )


if __name__ == "__main__":
    main()
