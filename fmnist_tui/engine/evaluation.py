"""The test pass's predictions, kept, and the evaluation.json made of them.

The module's test step fills a confusion matrix (torchmetrics) and `Predictions`; the run's
test figure and evaluation.json are both read off that one pass (`TestResult`), whether at
the run's end (engine/testing.py) or later (`fmnist-tui eval`): they cannot disagree.
Under DDP each process tests a share of the images; torchmetrics adds the shares up.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from fmnist_tui import evaluation as record

log = logging.getLogger("fmnist_tui.engine")


class Predictions(Metric):
    """Every test image's index, label and class probabilities, gathered across processes."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")
        self.add_state("probs", default=[], dist_reduce_fx="cat")

    def update(self, index: torch.Tensor, target: torch.Tensor, probs: torch.Tensor) -> None:
        self.index.append(index)  # type: ignore[union-attr,operator]
        self.target.append(target)  # type: ignore[union-attr,operator]
        self.probs.append(probs.float())  # type: ignore[union-attr,operator]

    def compute(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if isinstance(self.index, list) and not self.index:  # after a DDP sync the states are tensors
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty, torch.zeros(0, 10)
        return dim_zero_cat(self.index), dim_zero_cat(self.target), dim_zero_cat(self.probs)  # type: ignore[arg-type]


@dataclass
class TestResult:
    """One test pass, on the CPU: what the run's test figure and evaluation.json are both read from."""

    confusion: torch.Tensor  # (10, 10) counts, rows true, columns predicted
    loss: float
    index: torch.Tensor  # (N,) test-set positions
    target: torch.Tensor  # (N,)
    probs: torch.Tensor  # (N, 10)

    @property
    def accuracy(self) -> float:
        total = int(self.confusion.sum())
        return int(self.confusion.diagonal().sum()) / total if total else 0.0


def mistakes(result: TestResult) -> list[record.Mistake]:
    """The misclassified images, most confident mistakes first (those are the interesting ones)."""
    predicted = result.probs.argmax(1)
    wrong = (predicted != result.target).nonzero().squeeze(1)
    top_p, top_k = result.probs[wrong].topk(min(3, result.probs.shape[1]), dim=1)
    items = []
    for row, i in enumerate(wrong.tolist()):
        pairs = [
            (int(k), min(1.0, max(0.0, float(p))))
            for k, p in zip(top_k[row].tolist(), top_p[row].tolist(), strict=True)
        ]
        items.append(record.Mistake(index=int(result.index[i]), true=int(result.target[i]),
                                    predicted=int(predicted[i]), confidence=pairs[0][1], top3=pairs))  # fmt: skip
    items.sort(key=lambda m: (-m.confidence, m.index))
    return items


def write(run: Path, result: TestResult, test_images: torch.Tensor, checkpoint: str, epoch: int | None,
          step: int | None, dataset: str, seconds: float | None = None) -> record.Evaluation:  # fmt: skip
    """evaluation.json and the images of its mistakes, in the run folder."""
    wrong = mistakes(result)
    evaluation = record.build(result.confusion.tolist(), result.loss, wrong, checkpoint, epoch, step, dataset, seconds)
    index = torch.tensor([m.index for m in wrong], dtype=torch.long)
    pixels = test_images.cpu()[index].to(torch.uint8).contiguous() if len(wrong) else torch.zeros(0, 28, 28)
    record.write(run, evaluation, pixels.numpy().tobytes() if len(wrong) else b"")
    return evaluation


def write_at_end(run: Path, module, data, checkpoint: str, epoch: int | None, step: int | None,
                 seconds: float) -> None:  # fmt: skip
    """After the run's own test: evaluation.json from that very pass. A failure is a warning, never
    the run's end (the figures are already in summary.json)."""
    result = getattr(module, "test_result", None)
    if result is None:
        return
    try:
        started = time.perf_counter()
        write(run, result, data.splits()["test_x"], checkpoint, epoch, step, module.config.dataset, seconds)
        log.info(f"evaluation.json written ({len(result.index)} test images, {time.perf_counter() - started:.2f} s)")
    except Exception as err:  # noqa: BLE001 - a full disk, a folder gone: the run itself has ended well
        log.warning(f"evaluation.json not written: {err}")


def evaluate_run(run: Path, which: str = "best", data_dir: str | Path | None = None) -> tuple[record.Evaluation, str]:
    """`fmnist-tui eval`: the run's checkpoint through the same test pass as the run's own test;
    writes evaluation.json. Returns it and a note when it ran on other hardware than the run."""
    import pytorch_lightning as pl

    from fmnist_tui import paths
    from fmnist_tui.engine import weights
    from fmnist_tui.engine.data import FashionData

    loaded = weights.load(run, which)
    config = loaded.config
    data = FashionData(config, Path(data_dir or config.data_dir or paths.data_dir()))
    data.load()  # DataError: missing or damaged test files, said in one line
    gpu = config.accelerator != "cpu" and torch.cuda.is_available()
    precision = config.precision if gpu or config.precision != "16-mixed" else "32"
    note = ""
    if config.accelerator == "gpu" and not gpu or precision != config.precision:
        note = f"the run used {config.accelerator}/{config.precision}; this evaluation ran on the CPU in {precision}"
    trainer = pl.Trainer(accelerator="gpu" if gpu else "cpu", devices=1, precision=precision, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)  # fmt: skip
    started = time.perf_counter()
    trainer.test(loaded.module, datamodule=data, verbose=False)
    seconds = round(time.perf_counter() - started, 3)
    result = loaded.module.test_result
    assert result is not None, "the test pass keeps its result"
    evaluation = write(
        run, result, data.splits()["test_x"], loaded.label, loaded.epoch, loaded.step, config.dataset, seconds
    )
    return evaluation, note
