"""`fmnist-tui serve` in a real headless browser: the page, a run, its chart, a closed tab.

    python bench/browser_check.py [--chromium /usr/bin/chromium] [--shots /tmp/serve-shots]
                                  [--data-dir DIR] [--epochs 8]

Not part of the test suite (it needs a browser: `pip install playwright` and Debian's
chromium, since playwright's own browser download needs the internet). It starts the
server on a free port with a fresh runs folder, opens the page, and:
  1. waits for the setup screen (screenshot setup.png);
  2. starts the form's run with ctrl+r and waits for two epochs (live-1.png, live-2.png:
     the chart gains points);
  3. opens a second tab at once (second-tab.png): its own app, on the setup screen;
  4. closes the first tab mid-run: the run must go on in a background process and finish
     (its summary says so), as after an SSH hang-up in a terminal;
  5. stops the server with SIGTERM: it must exit 0, its tabs' processes gone.
Without --data-dir it trains on synthetic images (no files needed; seconds an epoch on a CPU).
The screen is a canvas, so what it shows is checked by eye in the screenshots; what the run
did is checked in its folder.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fmnist_tui.metrics import read_rows
from fmnist_tui.runs import lock_held

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"browser_check: timed out waiting for {what}")
        time.sleep(0.2)


def epochs_done(folder: Path) -> int:
    path = folder / "metrics.csv"
    return sum(1 for r in read_rows(path) if r["kind"] == "epoch") if path.exists() else 0


def status(folder: Path) -> str:
    try:
        return json.loads((folder / "summary.json").read_text()).get("status", "")
    except (OSError, ValueError):
        return ""


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(p) for p in task.read_text().split()]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--shots", type=Path, default=Path("/tmp/serve-shots"))
    parser.add_argument("--data-dir", help="real Fashion-MNIST (default: synthetic images)")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.shots.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="serve-check-")) / "runs"
    sets = [f"epochs={args.epochs}", "accelerator=cpu"]
    if args.data_dir:
        data = ["--data-dir", args.data_dir]
    else:
        data, sets = [], [*sets, "dataset=synthetic"]
    command = [sys.executable, "-m", "fmnist_tui", "serve", "--port", "0", "--runs-dir", str(runs), *data,
               "--preset", "tutorial", *[x for s in sets for x in ("--set", s)]]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        print(line.strip())
        url = line.split("open ")[1].split()[0]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("body.-first-byte", timeout=60_000)  # the app's first screen arrived
            time.sleep(4)  # the setup screen fills in (the device is found in a worker)
            page.screenshot(path=args.shots / "setup.png")

            page.locator("#terminal").click()
            page.keyboard.press("Control+r")
            wait_for(lambda: any(runs.glob("*/metrics.csv")), "the run's folder", 120)
            folder = next(runs.glob("*/metrics.csv")).parent
            print(f"run started: {folder.name}")
            for n in (1, 2):
                wait_for(lambda n=n: epochs_done(folder) >= n, f"epoch {n}", 300)
                time.sleep(1.5)  # the live view redraws a few times a second
                page.screenshot(path=args.shots / f"live-{n}.png")
                print(f"epoch {n} done: live-{n}.png")

            second = context.new_page()
            second.goto(url)
            second.wait_for_selector("body.-first-byte", timeout=60_000)
            time.sleep(4)
            second.screenshot(path=args.shots / "second-tab.png")
            print(f"second tab: its own app (server's children: {len(children(server.pid))})")

            if epochs_done(folder) >= args.epochs:
                print("the run ended before the tab closed: nothing to hand over (use more --epochs)")
            page.close()  # mid-run: as an SSH hang-up is to the terminal app
            print("first tab closed mid-run")
            time.sleep(3)
            second.screenshot(path=args.shots / "second-tab-after.png")
            browser.close()
        # The tab's app hands the run over, then ends; the background process logs to run.log.
        log = folder / "run.log"
        wait_for(lambda: log.exists() and "resuming at epoch" in log.read_text() and lock_held(folder), "the hand-over",
                 120)  # fmt: skip
        print(f"handed over: a background process holds the run; run.log says: {log.read_text().splitlines()[1]}")
        wait_for(lambda: status(folder) not in ("running", "interrupted") and not lock_held(folder), "the run's end",
                 900)  # fmt: skip
        summary = json.loads((folder / "summary.json").read_text())
        print(f"run {folder.name}: {summary['status']}, {epochs_done(folder)} epochs, resumed {summary.get('resumed')}, "
              f"test_acc {summary.get('test_acc')}")  # fmt: skip
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        out, err = server.communicate()
        print(f"server after SIGTERM: exit {code}; its output:\n{out}{err}")
        print(f"screenshots in {args.shots}: {', '.join(sorted(p.name for p in args.shots.glob('*.png')))}")
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
