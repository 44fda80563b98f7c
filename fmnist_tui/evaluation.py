"""evaluation.json: what a run's model gets right and wrong on the test images. No torch, no textual.

    <run>/evaluation.json          accuracy, loss, the confusion matrix, per-class precision,
                                   recall and F1, the top confusions, every misclassified image
    <run>/evaluation-images.idx    those images (uint8 28x28, IDX like Fashion-MNIST's own files),
                                   in the order of the list: the app shows them without the data set

The engine computes the confusion matrix (torchmetrics) and the predictions; everything
derived from them is computed here, once, so the CLI, the app and the tests agree.
Reading is strict: a file from another version or a damaged one is one EvaluationError line.
"""

from __future__ import annotations

import os
import struct
from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fmnist_tui.files import write_atomic
from fmnist_tui.format import printable

FILE = "evaluation.json"
IMAGES = "evaluation-images.idx"
VERSION = 1
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SHORT = ("Top", "Trous", "Pull", "Dress", "Coat", "Sandl", "Shirt", "Snkr", "Bag", "Boot")  # 5 characters at most
TOP_CONFUSIONS = 10
SIDE = 28
IDX_MAGIC = 0x00000803  # unsigned bytes, three dimensions


class EvaluationError(RuntimeError):
    """An evaluation that cannot be read or made; the message is one line for the user."""


Class = Annotated[int, Field(ge=0, lt=len(CLASSES))]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassScores(Strict):
    precision: Probability
    recall: Probability
    f1: Probability
    support: Count  # test images of this class


class Confusion(Strict):
    true: Class
    predicted: Class
    count: Count


class Mistake(Strict):
    index: Count  # the image's place in the test set
    true: Class
    predicted: Class
    confidence: Probability  # the model's probability of `predicted`
    top3: list[tuple[Class, Probability]] = Field(min_length=1, max_length=3)

    @model_validator(mode="after")
    def _different(self) -> Mistake:
        if self.true == self.predicted:
            raise ValueError(f"image {self.index} is listed as misclassified but true = predicted")
        return self


class Evaluation(Strict):
    version: int
    checkpoint: str  # "best.ckpt" or "last.ckpt"
    epoch: int | None = None  # 0-based, as in summary.json
    step: int | None = None
    dataset: str = "fashion-mnist"
    accuracy: Probability
    loss: float
    confusion: list[list[Count]] = Field(min_length=len(CLASSES), max_length=len(CLASSES))
    per_class: list[ClassScores] = Field(min_length=len(CLASSES), max_length=len(CLASSES))
    top_confusions: list[Confusion]
    misclassified: list[Mistake]
    seconds: float | None = None
    created: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Evaluation:
        if any(len(row) != len(CLASSES) for row in self.confusion):
            raise ValueError("the confusion matrix is not 10x10")
        wrong = sum(map(sum, self.confusion)) - sum(self.confusion[i][i] for i in range(len(CLASSES)))
        if wrong != len(self.misclassified):
            raise ValueError(f"the confusion matrix counts {wrong} mistakes but {len(self.misclassified)} are listed")
        return self

    @property
    def images(self) -> int:
        return sum(map(sum, self.confusion))

    def mistakes(self, true: int | None = None, predicted: int | None = None) -> list[int]:
        """Positions in `misclassified` (and in the images file) of one cell's mistakes, or of all."""
        return [
            i
            for i, m in enumerate(self.misclassified)
            if (true is None or m.true == true) and (predicted is None or m.predicted == predicted)
        ]


def scores(confusion: list[list[int]]) -> list[ClassScores]:
    """Per-class precision, recall and F1 from the confusion matrix (rows true, columns predicted).
    A class never predicted (or absent) scores 0, as torchmetrics' zero_division default."""
    n = len(confusion)
    result = []
    for k in range(n):
        hit = confusion[k][k]
        support = sum(confusion[k])
        predicted = sum(confusion[i][k] for i in range(n))
        precision = hit / predicted if predicted else 0.0
        recall = hit / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result.append(ClassScores(precision=precision, recall=recall, f1=f1, support=support))
    return result


def top_confusions(confusion: list[list[int]], most: int = TOP_CONFUSIONS) -> list[Confusion]:
    """The most frequent (true, predicted) mistakes, largest first; ties in class order."""
    cells = [
        Confusion(true=t, predicted=p, count=c)
        for t, row in enumerate(confusion)
        for p, c in enumerate(row)
        if t != p and c > 0
    ]
    return sorted(cells, key=lambda c: (-c.count, c.true, c.predicted))[:most]


def build(confusion: list[list[int]], loss: float, mistakes: list[Mistake], checkpoint: str,
          epoch: int | None, step: int | None, dataset: str, seconds: float | None = None) -> Evaluation:  # fmt: skip
    images = sum(map(sum, confusion))
    hits = sum(confusion[i][i] for i in range(len(confusion)))
    return Evaluation(
        version=VERSION, checkpoint=checkpoint, epoch=epoch, step=step, dataset=dataset,
        accuracy=hits / images if images else 0.0, loss=loss, confusion=confusion, per_class=scores(confusion),
        top_confusions=top_confusions(confusion), misclassified=mistakes, seconds=seconds,
        created=datetime.now().isoformat(timespec="seconds"),
    )  # fmt: skip


# -- the files -----------------------------------------------------------------------------
def write(run: Path, evaluation: Evaluation, images: bytes) -> None:
    """The images first, then the JSON that lists them: a reader never finds a list longer than its images."""
    count = len(evaluation.misclassified)
    if len(images) != count * SIDE * SIDE:
        raise ValueError(f"{count} mistakes but {len(images)} bytes of images")
    write_atomic(run / IMAGES, struct.pack(">IIII", IDX_MAGIC, count, SIDE, SIDE) + images)
    write_atomic(run / FILE, evaluation.model_dump_json(indent=1) + "\n")


def read(run: Path) -> Evaluation:
    """The run's evaluation, or EvaluationError saying why not and what to do."""
    path = run / FILE
    redo = f"fmnist-tui eval {printable(run.name)}"
    try:
        raw = path.read_bytes() if path.is_file() else None
    except OSError as err:
        raise EvaluationError(f"{FILE} cannot be read ({err.strerror or err})") from None
    if raw is None:
        raise EvaluationError(f"no {FILE} yet: runs are evaluated when they finish or stop; for this one: {redo}")
    try:
        evaluation = Evaluation.model_validate_json(raw)
    except ValidationError as err:
        version = _version_of(raw)
        if version is not None and version != VERSION:
            raise EvaluationError(f"{FILE} is from another version of fmnist-tui (format {version}, this one reads "
                                  f"{VERSION}): make it again with {redo}") from None  # fmt: skip
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        raise EvaluationError(f"{FILE} is damaged ({printable(where)}: {printable(first['msg'])[:120]}): "
                              f"make it again with {redo}") from None  # fmt: skip
    if evaluation.version != VERSION:
        raise EvaluationError(f"{FILE} is from another version of fmnist-tui (format {evaluation.version}, this one "
                              f"reads {VERSION}): make it again with {redo}")  # fmt: skip
    return evaluation


def _version_of(raw: bytes) -> object:
    import json

    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value.get("version") if isinstance(value, dict) else None


class Images:
    """The misclassified images, read one at a time (an image is 784 bytes at a known place)."""

    def __init__(self, run: Path, count: int):
        self.path, self.count = run / IMAGES, count
        try:
            with open(self.path, "rb") as f:
                if not os.path.isfile(self.path):
                    raise OSError("not a plain file")
                header = f.read(16)
                size = os.fstat(f.fileno()).st_size
        except OSError as err:
            raise EvaluationError(f"{IMAGES} cannot be read ({getattr(err, 'strerror', None) or err})") from None
        if len(header) < 16 or struct.unpack(">IIII", header) != (IDX_MAGIC, count, SIDE, SIDE):
            raise EvaluationError(f"{IMAGES} does not hold the {count} images {FILE} lists: "
                                  f"make both again with fmnist-tui eval {printable(run.name)}")  # fmt: skip
        if size < 16 + count * SIDE * SIDE:
            raise EvaluationError(f"{IMAGES} is cut short: make it again with fmnist-tui eval {printable(run.name)}")

    def pixels(self, position: int) -> bytes:
        """Image `position` of the list: 784 grey levels, row by row (OSError if the file went)."""
        with open(self.path, "rb") as f:
            f.seek(16 + position * SIDE * SIDE)
            data = f.read(SIDE * SIDE)
        if len(data) != SIDE * SIDE:
            raise OSError(f"{IMAGES} is cut short")
        return data


# -- text ------------------------------------------------------------------------------------
def confusion_text(evaluation: Evaluation) -> str:
    """The matrix with class names, per-class scores and the top confusions: 80 columns at most."""
    c = evaluation.confusion
    width = max(6, len(str(max(max(row) for row in c))) + 1)
    head = "true \\ pred"
    lines = [f"{head:<11}" + "".join(f"{s:>{width}}" for s in SHORT)]
    for t, row in enumerate(c):
        lines.append(f"{CLASSES[t]:<11}" + "".join(f"{(str(n) if n else '.'):>{width}}" for n in row))
    lines += ["", f"{'class':<11}  precision  recall      F1  images"]
    for t, score in enumerate(evaluation.per_class):
        lines.append(
            f"{CLASSES[t]:<11}  {score.precision:9.1%}  {score.recall:6.1%}  {score.f1:6.3f}  {score.support:6d}"
        )
    lines += ["", "most frequent confusions (true -> predicted):"]
    for conf in evaluation.top_confusions:
        lines.append(f"  {conf.count:5d}  {CLASSES[conf.true]} -> {CLASSES[conf.predicted]}")
    if not evaluation.top_confusions:
        lines.append("  none: every test image was classified right")
    return "\n".join(lines)
