"""Run folders as the engine leaves them, with fixed names, dates, figures and curves (no training)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import tomli_w

BASE = {"name": "demo", "description": "A demo", "model": "mlp", "optimizer": "adamw", "lr": 0.001,
        "batch_size": 64, "epochs": 5, "seed": 0}  # fmt: skip


def fake_run(root: Path, name: str, *, status: str = "finished", best: float | None = 0.87,
             test: float | None = 0.86, duration: float = 42.0, epochs: int = 5, steps: int = 10,
             rate: float = 1.0, metrics: bool = True, **config) -> Path:  # fmt: skip
    """A run that learned at `rate` (higher: lower loss sooner) for `epochs` epochs of `steps` steps."""
    folder = root / name
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.toml").write_text(tomli_w.dumps({**BASE, **config}))
    summary = dict(status=status, started=f"{name[:4]}-{name[4:6]}-{name[6:8]}T{name[9:11]}:{name[11:13]}:00",
                   best_val_acc=best, test_acc=test, duration_s=duration)  # fmt: skip
    (folder / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if v is not None}))
    if not metrics:
        return folder
    rows = ["kind,epoch,step,train_loss,val_loss,val_acc,lr,seconds,test_loss,test_acc"]
    for step in range(1, epochs * steps + 1):
        rows.append(f"step,{(step - 1) // steps},{step},{0.3 + 2 * math.exp(-rate * step / 8):.4f},,,,,,")
        if step % steps == 0:
            e = step // steps
            val_acc = (best or 0.5) - 0.2 / (e * rate + 1)
            rows.append(f"epoch,{e - 1},{step},{0.4 + 1 / (e * rate):.4f},{0.5 + 0.6 / (e * rate):.4f},"
                        f"{val_acc:.4f},0.001,8,,")  # fmt: skip
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    return folder


def three_runs(root: Path) -> list[Path]:
    """A baseline, a higher learning rate, and a bigger batch: the comparison the tests look at."""
    return [
        fake_run(root, "20250101-120000-demo", best=0.84, test=0.83, duration=61.0, rate=0.6),
        fake_run(root, "20250102-090000-demo", best=0.89, test=0.88, duration=58.0, rate=1.5, lr=0.01),
        fake_run(root, "20250103-180000-demo", status="stopped", best=0.86, test=None, duration=33.0, epochs=3,
                 rate=1.0, batch_size=256, optimizer="sgd"),
    ]  # fmt: skip
