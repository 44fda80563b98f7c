"""Training throughput: the classic PyTorch Fashion-MNIST quickstart against fmnist-tui's engine.

Same data, same machine.

    python bench/throughput.py --data-dir ../shared/fashion-mnist [--quick] [--batch-size 64]

Runs, each on the quickstart MLP with SGD lr 1e-3 for the same number of steps:
  quickstart_plain      the quickstart's plain PyTorch loop (torchvision dataset, ToTensor, DataLoader)
  quickstart_lightning  its Lightning port (DataModule + DataLoader, self.log every step)
  device_plain          a plain loop over device-resident tensors (the hardware's practical limit)
  engine                fmnist-tui's engine, headless, with step progress reported
  engine_app_thr        the same with the torch thread count the app uses (one core left to the UI)
  engine_app            the same engine under the Textual app, driven headlessly (skipped if the app is absent)
  engine_bg_attached    the engine as a background process with an app attached (driven headlessly at 80x24);
                        also prints the bytes/s the attached app sends to its terminal
Every setup runs `--rounds` times, interleaved; the table shows each setup's median and
spread, and each ratio is the median of the ratios within a round. It prints samples/s with
ratios, ending with `engine_vs_quickstart_plain_ratio=<float>`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import threading
import time
from itertools import pairwise
from statistics import median

import torch
from torch import nn

BENCH = {"name": "bench", "description": "throughput", "model": "tutorial_mlp", "optimizer": "sgd",
         "lr": 1e-3, "normalize": False, "epochs": 1, "stop_on_nan": True}  # fmt: skip


def device_of(args) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and args.accelerator != "cpu" else "cpu")


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def tutorial_model() -> nn.Module:
    from fmnist_tui.engine.models import tutorial_mlp

    return tutorial_mlp(final_relu=True)


def timed_loop(batches, model, device, steps: int, warmup: int = 20) -> float:
    """The tutorial's training step; loss.item() every 100 batches as it prints then."""
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    seen, start = 0, None
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            sync(device)
            start, seen = time.perf_counter(), 0
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % 100 == 0:
            loss.item()
        seen += len(y)
        if i + 1 >= steps + warmup:
            break
    sync(device)
    return seen / (time.perf_counter() - start)


def cycle(loader):
    while True:
        yield from loader


def quickstart_plain(args, steps: int) -> float:
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import ToTensor

    data = datasets.FashionMNIST(root=args.data_dir, train=True, download=False, transform=ToTensor())
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True)
    device = device_of(args)
    return timed_loop(cycle(loader), tutorial_model().to(device), device, steps)


def device_plain(args, steps: int) -> float:
    from fmnist_tui.engine.data import load_fashion

    device = device_of(args)
    raw = load_fashion(__import__("pathlib").Path(args.data_dir), allow_download=False)
    images, labels = raw["train_images"].to(device), raw["train_labels"].to(device).long()

    def batches():
        while True:
            order = torch.randperm(len(labels), device=device)
            for i in range(0, len(labels) - args.batch_size + 1, args.batch_size):
                idx = order[i : i + args.batch_size]
                yield images[idx].unsqueeze(1).float().div_(255), labels[idx]

    return timed_loop(batches(), tutorial_model().to(device), device, steps)


def quickstart_lightning(args, steps: int) -> float:
    """The tutorial's Lightning port, as written: DataModule, random_split, DataLoader, self.log."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, random_split
    from torchvision import datasets
    from torchvision.transforms import ToTensor

    class Port(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net, self.loss_fn = tutorial_model(), nn.CrossEntropyLoss()

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = self.loss_fn(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    class Timer(pl.Callback):
        def on_train_batch_start(self, trainer, *a):
            if trainer.global_step == 20:
                sync(device_of(args))
                self.start = time.perf_counter()

        def on_train_end(self, trainer, *a):
            sync(device_of(args))
            self.rate = (trainer.global_step - 20) * args.batch_size / (time.perf_counter() - self.start)

    full = datasets.FashionMNIST(root=args.data_dir, train=True, download=False, transform=ToTensor())
    train, _ = random_split(full, [55000, 5000])
    timer = Timer()
    trainer = pl.Trainer(accelerator=args.accelerator, devices=1, max_steps=steps + 20, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[timer])  # fmt: skip
    trainer.fit(Port(), DataLoader(train, batch_size=args.batch_size, shuffle=True))
    return timer.rate


def engine_rate(events) -> float:
    """Samples/s over the step reports inside each epoch (validation falls between epochs, so
    it is left out), skipping the first two reports of the first epoch (warm-up)."""
    from fmnist_tui.engine.events import StepProgress

    ticks = [e for e in events if isinstance(e, StepProgress) and e.epoch_step < e.steps_per_epoch]
    first_epoch = [e for e in ticks if e.epoch == ticks[0].epoch]
    skip = max(0, min(2, len(first_epoch) - 2))
    ticks = ticks[skip:]
    steps = seconds = 0.0
    for a, b in pairwise(ticks):
        if a.epoch == b.epoch:
            steps, seconds = steps + b.step - a.step, seconds + b.elapsed_s - a.elapsed_s
    return steps * BENCH_BS[0] / seconds


BENCH_BS = [64]


def engine_config(args, steps: int, runs_dir: str):
    from fmnist_tui.config import make_config

    # At least `steps` steps: one epoch sized to them when they fit in the data, else more epochs.
    bs = args.batch_size
    if (steps + 1) * bs <= 59_000:
        val, epochs = 60_000 - (steps + 1) * bs, 1
    else:
        val = 1_000
        epochs = math.ceil(steps / math.ceil(59_000 / bs))
    return make_config({**BENCH, "batch_size": bs, "val_size": min(val, 50_000), "epochs": epochs,
                        "accelerator": args.accelerator, "data_dir": args.data_dir})  # fmt: skip


def engine(args, steps: int, runs_dir: str, cpu_threads: int | None = None) -> float:
    from fmnist_tui.engine.runner import run

    events: list = []
    run(engine_config(args, steps, runs_dir), events.append, runs_dir=runs_dir, cpu_threads=cpu_threads)
    return engine_rate(events)


def app_threads() -> int:
    """The torch threads the app gives a CPU run (see fmnist_tui/tui/session.py)."""
    return max(1, (os.cpu_count() or 2) - 1)


def engine_app(args, steps: int, runs_dir: str) -> float | None:
    """The same run started from the app (driven headlessly at 80x24), its events tapped."""
    try:
        from fmnist_tui.tui import relay
        from fmnist_tui.tui.app import make_app
    except ImportError:
        return None
    import tempfile
    from pathlib import Path

    import tomli_w

    from fmnist_tui.config import to_dict
    from fmnist_tui.engine.events import RunEnded

    presets = Path(tempfile.mkdtemp(prefix="fmnist-bench-presets-"))
    (presets / "bench.toml").write_text(tomli_w.dumps(to_dict(engine_config(args, steps, runs_dir))))
    events: list = []
    real_call = relay.Relay.__call__

    def tapped(self, event):
        events.append(event)
        real_call(self, event)

    relay.Relay.__call__ = tapped
    app = make_app(preset="bench", start=True, runs_dir=runs_dir, presets_dirs=[presets])

    async def drive():
        async with app.run_test(size=(80, 24)) as pilot:
            while not any(isinstance(e, RunEnded) for e in events):
                await asyncio.sleep(0.2)
            await pilot.pause()

    try:
        asyncio.run(drive())
    finally:
        relay.Relay.__call__ = real_call
    return engine_rate(events)


TERMINAL_WRITES: list[tuple[int, float]] = []  # (bytes, seconds attached), one per engine_bg_attached round


def engine_bg_attached(args, steps: int, runs_dir: str) -> float | None:
    """The same run as a background process (all its cores), an app attached at 80x24 until it
    sees the end. The rate comes from the run's events.jsonl, by the same formula as `engine`."""
    try:
        from textual.drivers.headless_driver import HeadlessDriver

        from fmnist_tui.tui.app import make_app
    except ImportError:
        return None
    from unittest.mock import patch

    from fmnist_tui.background import Job, start
    from fmnist_tui.engine.eventlog import FILE, EventReader

    started = start(Job(config=engine_config(args, steps, runs_dir).model_dump(), runs_dir=runs_dir,
                        data_dir=args.data_dir))  # fmt: skip
    # Textual picks its colours from the environment: count what a truecolor terminal gets (the most bytes).
    with patch.dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor"):
        app = make_app(attach=started.run_path, runs_dir=runs_dir, alerts=False)
    written = [0]

    class Counting(HeadlessDriver):
        # Textual skips rendering when the driver is headless; this one says it is not, so
        # every frame goes down Textual's own terminal path (App._display) and lands here.
        is_headless = False

        def write(self, data: str) -> None:
            written[0] += len(data.encode("utf-8"))

    async def drive():
        async with app.run_test(size=(80, 24)) as pilot:
            app._driver.__class__ = Counting  # from here to the end: attaching's full repaints count too
            since, deadline = time.perf_counter(), time.monotonic() + 1800
            while app.state.ended is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the attached app never saw the end of {started.run_path}")
                await pilot.pause(0.25)
            TERMINAL_WRITES.append((written[0], time.perf_counter() - since))

    asyncio.run(drive())
    deadline = time.monotonic() + 60
    while pid_alive(started.pid) and time.monotonic() < deadline:  # its exit must not overlap the next setup
        time.sleep(0.1)
    return engine_rate(EventReader(started.run_path / FILE).read_all())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def paired(a: list[float], b: list[float]) -> float:
    """The median over rounds of a/b, each ratio from one round: drift between rounds
    (clocks, a noisy neighbour) moves both sides of a ratio together and cancels."""
    return median([x / y for x, y in zip(a, b, strict=True)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("FMNIST_TUI_DATA_DIR", "../shared/fashion-mnist"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per setup (default 800, --quick 300)")
    parser.add_argument("--rounds", type=int, default=3, help="run every setup this many times, interleaved")
    parser.add_argument("--quick", action="store_true", help="fewer steps: about a minute on 2 CPU cores")
    parser.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu"])
    parser.add_argument("--only", nargs="*", help="run only these setups")
    args = parser.parse_args()
    BENCH_BS[0] = args.batch_size
    steps = args.steps or (300 if args.quick else 800)
    import tempfile

    runs_dir = tempfile.mkdtemp(prefix="fmnist-bench-")
    setups = {"quickstart_plain": quickstart_plain, "quickstart_lightning": quickstart_lightning, "device_plain": device_plain,
              "engine": lambda a, s: engine(a, s, runs_dir),
              "engine_app_thr": lambda a, s: engine(a, s, runs_dir, cpu_threads=app_threads()),
              "engine_app": lambda a, s: engine_app(a, s, runs_dir),
              "engine_bg_attached": lambda a, s: engine_bg_attached(a, s, runs_dir)}  # fmt: skip
    setups = {name: fn for name, fn in setups.items() if not args.only or name in args.only}
    runs: dict[str, list[float]] = {name: [] for name in setups}
    for round_no in range(1, args.rounds + 1):
        for name, fn in setups.items():
            rate = fn(args, steps)
            if rate is not None:
                runs[name].append(rate)
            shown = "skipped" if rate is None else f"{rate:>10,.0f} samples/s"
            print(f"  round {round_no}/{args.rounds}  {name:<20} {shown}", flush=True)
    report(args, steps, {name: r for name, r in runs.items() if r}, TERMINAL_WRITES)


def report(args, steps: int, runs: dict[str, list[float]], terminal: list[tuple[int, float]] = ()) -> None:
    device = device_of(args)
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"\n{where}, torch {torch.__version__}, tutorial MLP + SGD, batch {args.batch_size}, "
          f"{steps} timed steps, median of {args.rounds} rounds")  # fmt: skip
    print(f"{'setup':<20} {'samples/s':>10} {'spread':>8} {'vs quickstart_plain':>20} {'vs device_plain':>16}")
    for name, rates in runs.items():
        spread = f"±{50 * (max(rates) - min(rates)) / median(rates):.0f}%" if len(rates) > 1 else "-"
        vs_quickstart = f"{paired(rates, runs['quickstart_plain']):.2f}x" if "quickstart_plain" in runs else "-"
        vs_dev = f"{paired(rates, runs['device_plain']):.2f}x" if "device_plain" in runs else "-"
        print(f"{name:<20} {median(rates):>10,.0f} {spread:>8} {vs_quickstart:>20} {vs_dev:>16}")
    if "engine_app" in runs and "engine_app_thr" in runs:
        # The app's own cost: against the headless engine with the app's torch thread count.
        print(f"app_overhead={1 - paired(runs['engine_app'], runs['engine_app_thr']):.3f}")
    if "engine_app" in runs and "engine" in runs:
        print(f"app_vs_headless_all_cores={paired(runs['engine_app'], runs['engine']):.3f}")
    if "engine_bg_attached" in runs and "engine" in runs:
        print(f"bg_attached_vs_headless_all_cores={paired(runs['engine_bg_attached'], runs['engine']):.3f}")
    if terminal:
        # Attaching and each epoch's end repaint most of the screen: a short run's rate is mostly those.
        print(f"attached_terminal_bytes={median(b for b, _ in terminal):.0f} "
              f"attached_s={median(t for _, t in terminal):.1f}")  # fmt: skip
        print(f"attached_terminal_bytes_per_s={median(b / t for b, t in terminal):.1f}")
    if "engine" in runs and "device_plain" in runs:
        # What the engine (Lightning, progress, stop checks) adds to each step over the plain loop.
        extra = median(
            [(1 / e - 1 / d) * args.batch_size * 1e3 for e, d in zip(runs["engine"], runs["device_plain"], strict=True)]
        )
        print(f"engine_overhead_ms_per_step={extra:.3f}")
    if "quickstart_plain" in runs and "engine" in runs:
        print(f"engine_vs_quickstart_plain_ratio={paired(runs['engine'], runs['quickstart_plain']):.3f}")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
