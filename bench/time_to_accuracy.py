"""Time to accuracy: seconds of training a preset needs to reach a test accuracy.

    python bench/time_to_accuracy.py --preset cnn_fast --data-dir ../shared/fashion-mnist
    python bench/time_to_accuracy.py --preset best --targets 0.95 --budget-s 240

Timed the way speed-run records are: the data already on the device, a one-epoch warm-up
run first in the same process (two epochs) (CUDA start-up and cuDNN autotuning stay out of the clock),
and the clock running only while the engine trains. Each epoch's clock starts and stops on
a device synchronisation; validation, checkpoints and the probe are outside it. After
every epoch the probe measures test accuracy (outside the clock, not seen by the run), so
the table shows accuracy against training time. The run itself is the product's: the same
engine, checkpoints, metrics and final test as `fmnist-tui run --preset NAME`.

--variant 'KEY=VALUE ...' (repeatable) measures several settings in one process, each with
its own warm-up, and ends with a table of them. --budget-s S sets `epochs` so the clocked training should take about S seconds, from the
warm-up's epoch time (the chosen epochs are printed). Time the whole process from outside
(`time python bench/...`) for a cold figure.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time

import pytorch_lightning as pl
import torch


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Clock(pl.Callback):
    """Sums the training part of each epoch: from its start to validation (or its end)."""

    def __init__(self):
        self.total, self._start = 0.0, None
        self.epochs: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        sync()
        self._start = time.perf_counter()

    def _stop(self) -> None:
        if self._start is not None:
            sync()
            self.epochs.append(time.perf_counter() - self._start)
            self.total += self.epochs[-1]
            self._start = None

    def on_validation_start(self, trainer, pl_module):
        if trainer.state.fn == "fit":
            self._stop()

    def on_train_epoch_end(self, trainer, pl_module):
        self._stop()


class Probe(pl.Callback):
    """Test accuracy after every epoch, against the clock's training time so far."""

    def __init__(self, clock: Clock):
        self.clock, self.rows, self.seconds = clock, [], 0.0

    @torch.no_grad()
    def on_train_epoch_end(self, trainer, pl_module):
        start = time.perf_counter()
        pl_module.eval()
        correct = total = 0
        with trainer.precision_plugin.forward_context():
            for x, y in trainer.datamodule.test_dataloader():
                correct += (pl_module.predict_logits(x).argmax(1) == y).sum()
                total += len(y)
        pl_module.train()
        acc = float(correct) / total
        self.rows.append({"epoch": trainer.current_epoch + 1, "train_s": self.clock.total, "test_acc": acc})
        self.seconds += time.perf_counter() - start


def run_once(config, args, callbacks) -> tuple:
    from fmnist_tui.engine.runner import run

    events: list = []
    start = time.perf_counter()
    ended = run(config, events.append, runs_dir=args.runs_dir, data_dir=args.data_dir, callbacks=callbacks)
    wall = time.perf_counter() - start
    if ended.status != "finished":
        raise SystemExit(f"run {ended.status}: {ended.error}")
    return ended, wall


def crossing(rows: list[dict], target: float) -> dict | None:
    return next((r for r in rows if r["test_acc"] >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="cnn_fast")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--runs-dir", default=None, help="default: a new temporary folder")
    parser.add_argument("--targets", type=float, nargs="*", default=[0.91, 0.93])
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--budget-s", type=float, default=None, help="pick epochs to train about this long")
    parser.add_argument("--max-epochs", type=int, default=None, help="cap on the epochs --budget-s picks")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="'KEY=VALUE ...'",
        help="measure each of these on top of --set, in one process (repeatable)",
    )
    parser.add_argument("--json", default=None, help="also write the rows and results here")
    args = parser.parse_args()
    args.runs_dir = args.runs_dir or tempfile.mkdtemp(prefix="fmnist-tta-")

    results = [measure(args, variant.split()) for variant in (args.variant or [""])]
    if len(results) > 1:
        print(
            f"\n{'variant':<36} {'epochs':>6} {'train_s':>8} {'final':>7} "
            + " ".join(f"{'t' + str(t):>7}" for t in args.targets)
        )
        for r in results:
            times = " ".join(
                f"{r[f'time_to_{t:g}']:>7.2f}" if r[f"time_to_{t:g}"] else f"{'-':>7}" for t in args.targets
            )
            print(
                f"{r['variant'] or 'as shipped':<36} {r['epochs']:>6} {r['train_s']:>8.2f} {r['final_test_acc']:>7.4f} {times}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results[0] if len(results) == 1 else results, f, indent=1)


def measure(args, variant: list[str]) -> dict:
    from fmnist_tui.config import with_overrides
    from fmnist_tui.engine.runner import device_description
    from fmnist_tui.overrides import parse_set_items
    from fmnist_tui.presets import load_presets

    sets = args.sets + variant
    config = with_overrides(load_presets().get(args.preset), parse_set_items(sets))
    warm = Clock()
    run_once(with_overrides(config, {"epochs": 2}), args, [warm])
    if args.budget_s:
        epochs = max(1, math.floor(args.budget_s / warm.epochs[-1]))
        epochs = min(epochs, args.max_epochs or epochs)
        config = with_overrides(config, {"epochs": epochs})
        print(f"warm-up epoch {warm.epochs[-1]:.2f} s: epochs={epochs} for a {args.budget_s:.0f} s budget")

    clock = Clock()
    probe = Probe(clock)
    ended, wall = run_once(config, args, [clock, probe])
    # The speed-run figure is the final weights' (the run's own test_acc is best.ckpt's).
    final_acc = ended.last_test_acc if ended.last_test_acc is not None else ended.test_acc

    print(f"\n{args.preset} ({' '.join(sets) or 'as shipped'}), epochs={config.epochs}, "
          f"batch {config.batch_size}, {config.precision}, {device_description(config.accelerator)}, torch {torch.__version__}")  # fmt: skip
    print(f"{'epoch':>5} {'train_s':>8} {'test_acc':>9}")
    for r in probe.rows:
        print(f"{r['epoch']:>5} {r['train_s']:>8.2f} {r['test_acc']:>9.4f}")
    results = {"preset": args.preset, "sets": sets, "variant": " ".join(variant), "epochs": config.epochs, "rows": probe.rows,
               "train_s": clock.total, "final_test_acc": final_acc, "run_wall_s": wall - probe.seconds,
               "device": device_description(config.accelerator), "torch": torch.__version__}  # fmt: skip
    for target in args.targets:
        hit = crossing(probe.rows, target)
        key = f"time_to_{target:g}"
        results[key] = hit and hit["train_s"]
        where = f"{hit['train_s']:.2f} s (epoch {hit['epoch']})" if hit else "not reached"
        print(f"{key}={where}")
    print(f"final_test_acc={final_acc:.4f} train_s={clock.total:.2f} "
          f"run_wall_s={wall - probe.seconds:.2f} (run wall without the probe: data to device, val, checkpoints, test)")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
