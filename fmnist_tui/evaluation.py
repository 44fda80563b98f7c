"""evaluation.json: what a run's model gets right and wrong on the test images. No torch, no textual.

    <run>/evaluation.json               accuracy, loss, the confusion matrix, per-class precision,
                                        recall and F1, the top confusions, every misclassified image
    <run>/evaluation-images-<id>.idx    those images (uint8 28x28, IDX like Fashion-MNIST's own
                                        files), in the order of the list: the app shows them
                                        without the data set

The JSON names its images file, and a new evaluation writes its images under a new name
before the JSON: a kill or a full disk at any moment leaves the old pair or the new one,
never one file of each. The files of older evaluations are removed after.

The engine computes the confusion matrix (torchmetrics) and the predictions; everything
derived from them is computed here, once, so the CLI, the app and the tests agree.
Reading is strict: a file from another version, a damaged one, or numbers that contradict
each other are one EvaluationError line.
"""

from __future__ import annotations

import os
import re
import struct
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fmnist_tui.files import leftovers, write_atomic
from fmnist_tui.format import printable

FILE = "evaluation.json"
IMAGES = re.compile(r"evaluation-images-[0-9a-f]{1,32}\.idx")  # a name in the run folder, never a path
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
    images_file: Annotated[str, Field(pattern=IMAGES.pattern)]
    seconds: float | None = None
    created: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Evaluation:
        if any(len(row) != len(CLASSES) for row in self.confusion):
            raise ValueError("the confusion matrix is not 10x10")
        images = sum(map(sum, self.confusion))
        hits = sum(self.confusion[i][i] for i in range(len(CLASSES)))
        if images - hits != len(self.misclassified):
            raise ValueError(
                f"the confusion matrix counts {images - hits} mistakes but {len(self.misclassified)} are listed"
            )
        if abs(self.accuracy - (hits / images if images else 0.0)) > 1e-9:
            raise ValueError(f"accuracy {self.accuracy} is not the confusion matrix's {hits}/{images}")
        cells = Counter((m.true, m.predicted) for m in self.misclassified)
        for (t, p), n in cells.items():
            if self.confusion[t][p] != n:
                raise ValueError(f"{n} mistakes of {t} as {p} are listed but the matrix counts {self.confusion[t][p]}")
        if self.misclassified and max(m.index for m in self.misclassified) >= images:
            raise ValueError(f"a mistake's image index is beyond the {images} test images")
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
    """A new evaluation; its images file gets a name of its own (see `write`)."""
    images = sum(map(sum, confusion))
    hits = sum(confusion[i][i] for i in range(len(confusion)))
    return Evaluation(
        version=VERSION, checkpoint=checkpoint, epoch=epoch, step=step, dataset=dataset,
        accuracy=hits / images if images else 0.0, loss=loss, confusion=confusion, per_class=scores(confusion),
        top_confusions=top_confusions(confusion), misclassified=mistakes, seconds=seconds,
        images_file=f"evaluation-images-{uuid.uuid4().hex[:12]}.idx",
        created=datetime.now().isoformat(timespec="seconds"),
    )  # fmt: skip


# -- the files -----------------------------------------------------------------------------
def write(run: Path, evaluation: Evaluation, images: bytes) -> None:
    """Its images under their own new name, then the JSON naming them, then the older images go."""
    count = len(evaluation.misclassified)
    if len(images) != count * SIDE * SIDE:
        raise ValueError(f"{count} mistakes but {len(images)} bytes of images")
    write_atomic(run / evaluation.images_file, struct.pack(">IIII", IDX_MAGIC, count, SIDE, SIDE) + images)
    try:
        write_atomic(run / FILE, evaluation.model_dump_json(indent=1) + "\n")
    except BaseException:
        (run / evaluation.images_file).unlink(missing_ok=True)  # the old pair stays as it was
        raise
    # Older images, and what a kill left mid-write: the writer's to remove.
    older = [
        p for p in run.glob("evaluation-images-*.idx") if p.name != evaluation.images_file and IMAGES.fullmatch(p.name)
    ]
    for old in [*older, *leftovers(run / FILE), *run.glob(".evaluation-images-*.idx.*.tmp")]:
        try:
            old.unlink()
        except OSError:
            pass


def read(run: Path) -> Evaluation:
    """The run's evaluation, or EvaluationError saying why not and what to do."""
    path = run / FILE
    redo = f"fmnist-tui eval {printable(run.name)}"
    if not path.exists():
        raise EvaluationError(f"no {FILE} yet: runs are evaluated when they finish or stop; for this one: {redo}")
    try:
        if not path.is_file():
            raise OSError(f"{FILE} is not a plain file")
        raw = path.read_bytes()
    except OSError as err:
        raise EvaluationError(
            f"{FILE} cannot be read ({printable(err.strerror or err)}): move it away, then {redo}"
        ) from None
    try:
        evaluation = Evaluation.model_validate_json(raw)
    except ValidationError as err:
        version = _version_of(raw)
        if version is not None and version != VERSION:
            raise EvaluationError(f"{FILE} is from another version of fmnist-tui (format {printable(version)[:20]}, "
                                  f"this one reads {VERSION}): make it again with {redo}") from None  # fmt: skip
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        raise EvaluationError(f"{FILE} is damaged ({printable(where)[:60]}: {printable(first['msg'])[:160]}): "
                              f"make it again with {redo}") from None  # fmt: skip
    except (RecursionError, MemoryError, UnicodeError):
        raise EvaluationError(f"{FILE} is damaged (not JSON this program wrote): make it again with {redo}") from None
    if evaluation.version != VERSION:
        raise EvaluationError(f"{FILE} is from another version of fmnist-tui (format {evaluation.version}, this one "
                              f"reads {VERSION}): make it again with {redo}")  # fmt: skip
    return evaluation


def _version_of(raw: bytes) -> object:
    import json

    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value.get("version") if isinstance(value, dict) else None


class Images:
    """The misclassified images of one evaluation, read whole when it is read (a few MB at most):
    what is shown stays what the evaluation listed, whatever is written to the folder later."""

    def __init__(self, run: Path, evaluation: Evaluation):
        name, count = evaluation.images_file, len(evaluation.misclassified)
        redo = f"make it again with fmnist-tui eval {printable(run.name)}"
        path = run / name
        try:
            with open(path, "rb") as f:
                if not os.path.isfile(path):
                    raise OSError("not a plain file")
                data = f.read(16 + count * SIDE * SIDE + 1)
        except OSError as err:
            raise EvaluationError(
                f"{name} cannot be read ({printable(getattr(err, 'strerror', None) or err)}): {redo}"
            ) from None
        if len(data) < 16 or struct.unpack(">IIII", data[:16]) != (IDX_MAGIC, count, SIDE, SIDE):
            raise EvaluationError(f"{name} does not hold the {count} images {FILE} lists: {redo}")
        if len(data) != 16 + count * SIDE * SIDE:
            raise EvaluationError(
                f"{name} is {'cut short' if len(data) < 16 + count * SIDE * SIDE else 'too long'}: {redo}"
            )
        self.data, self.count = data, count

    def pixels(self, position: int) -> bytes:
        """Image `position` of the list: 784 grey levels, row by row."""
        start = 16 + position * SIDE * SIDE
        return self.data[start : start + SIDE * SIDE]


def read_with_images(run: Path) -> tuple[Evaluation, Images]:
    """Both files; once more if a new evaluation replaced them between the two reads."""
    for attempt in range(2):
        evaluation = read(run)
        try:
            return evaluation, Images(run, evaluation)
        except EvaluationError:
            if attempt or not (run / FILE).exists() or read(run).images_file == evaluation.images_file:
                raise
    raise AssertionError("unreachable")


def outdated(evaluation: Evaluation, run: Path) -> str:
    """Why the evaluation no longer describes the checkpoint it names ('' when it does): a resume
    found a new best, or trained on. From metrics.csv, without loading the checkpoint."""
    from fmnist_tui.metrics import FILE as METRICS
    from fmnist_tui.metrics import best_step, read_rows

    rows = read_rows(run / METRICS)
    if evaluation.checkpoint == "best.ckpt":
        now = best_step(rows)
    else:
        steps = [int(r["step"]) for r in rows if r["kind"] in ("step", "epoch")]
        now = max(steps) if steps else None
    if now is None or now == evaluation.step:
        return ""
    return (f"{evaluation.checkpoint} has changed since this evaluation (step {evaluation.step}, now {now}): "
            f"fmnist-tui eval {printable(run.name)} evaluates it as it is")  # fmt: skip


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
