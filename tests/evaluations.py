"""A run folder with a known evaluation: fixed counts and drawn pictures, no training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fmnist_tui import evaluation


def picture(true: int, seed: int) -> bytes:
    """A 28x28 stand-in for a garment: a bright block whose shape depends on the class, a little noise."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 30, (28, 28))
    top, height, width = 3 + true % 3, 12 + true, 6 + 2 * true
    image[top : top + height, 14 - width // 2 : 14 + width // 2] = 200 + rng.integers(0, 55, (height, width // 2 * 2))
    return image.astype(np.uint8).tobytes()


def known_confusion(mistakes: int = 40) -> list[list[int]]:
    """100 images a class; `mistakes` spread over the classic pairs, most of them Shirt taken for a T-shirt."""
    c = [[100 if t == p else 0 for p in range(10)] for t in range(10)]
    pairs = [(6, 0), (4, 2), (2, 4), (0, 6), (9, 7), (7, 5)]
    for n in range(mistakes):
        t, p = pairs[0] if n % 2 == 0 else pairs[1 + (n // 2) % (len(pairs) - 1)]
        c[t][t] -= 1
        c[t][p] += 1
    return c


def write_evaluated_run(folder: Path, mistakes: int = 40, status: str = "finished") -> Path:
    """config.toml, summary.json, evaluation.json and its images for a run that never trained."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text('name = "mlp"\nmodel = "mlp"\n', encoding="utf-8")
    confusion = known_confusion(mistakes)
    listed, images, index = [], b"", 0
    for t, row in enumerate(confusion):
        for p, n in enumerate(row):
            for k in range(n if t != p else 0):
                confidence = round(0.95 - 0.4 * k / max(1, n), 3)
                second = round((1 - confidence) * 0.8, 3)
                listed.append(evaluation.Mistake(index=index * 7 + 3, true=t, predicted=p, confidence=confidence,
                                                 top3=[(p, confidence), (t, second), ((t + 1) % 10, 0.01)]))  # fmt: skip
                images += picture(t, index)
                index += 1
    order = sorted(range(len(listed)), key=lambda i: (-listed[i].confidence, listed[i].index))
    listed = [listed[i] for i in order]
    images = b"".join(images[i * 784 : (i + 1) * 784] for i in order)
    result = evaluation.build(confusion, 0.3456, listed, "best.ckpt", 4, 4300, "fashion-mnist", 0.5)
    result = result.model_copy(update={"created": "2026-11-29T00:00:00"})
    evaluation.write(folder, result, images)
    summary = {"status": status, "started": "2026-11-29T00:00:00", "duration_s": 60.0, "best_val_acc": 0.97,
               "test_acc": result.accuracy, "test_loss": result.loss, "test_checkpoint": "best.ckpt", "test_epoch": 4}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder
