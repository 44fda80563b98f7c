"""A run's checkpoint as a model to use (`eval`, `export`), or one line saying why it cannot be."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fmnist_tui.config import ConfigError, RunConfig, make_config
from fmnist_tui.format import printable
from fmnist_tui.runs import RunStoreError, read_config

if TYPE_CHECKING:
    from fmnist_tui.engine.module import Classifier

CHOICES = ("best", "last")


@dataclass
class Weights:
    run: Path
    path: Path  # checkpoints/best.ckpt or last.ckpt
    config: RunConfig  # config.toml: what the weights were trained with
    module: Classifier  # a Classifier holding the weights, in eval mode, on the CPU
    epoch: int  # 0-based, as in summary.json
    step: int

    @property
    def label(self) -> str:
        return self.path.name


def run_config(run: Path) -> RunConfig:
    where = printable(run)
    try:
        values, _ = read_config(run)
    except (OSError, ValueError):
        raise RunStoreError(
            f"{where}: config.toml is missing or unreadable, so nothing says what network this run trained"
        ) from None
    try:
        return make_config(values, f"{where}/config.toml")
    except ConfigError as err:
        raise RunStoreError(str(err)) from None


def checkpoint_path(run: Path, which: str) -> Path:
    """The file `which` names; a clear line when the run has none."""
    if which not in CHOICES:
        raise RunStoreError(f"--checkpoint {printable(which)}: choose best or last")
    path = run / "checkpoints" / f"{which}.ckpt"
    if path.is_file():
        return path
    if os.path.lexists(path):  # a folder, a FIFO, a link to nowhere (or to itself)
        raise RunStoreError(f"{printable(path)} is not a plain file: move it away")
    if which == "best" and (run / "checkpoints" / "last.ckpt").is_file():
        raise RunStoreError(f"run {printable(run.name)} has no best.ckpt (no epoch was validated): "
                            "use --checkpoint last")  # fmt: skip
    raise RunStoreError(f"run {printable(run.name)} has no checkpoint: it ended before its first epoch was saved")


def load(run: Path, which: str = "best") -> Weights:
    """The run's config and the weights of checkpoints/`which`.ckpt in the network it describes."""
    from fmnist_tui.engine.checkpoint import read_point
    from fmnist_tui.engine.module import Classifier

    config = run_config(run)
    path = checkpoint_path(run, which)
    point = read_point(path)  # RunStoreError: truncated, not ours, or carries code
    module = Classifier(config.model_dump())
    try:
        module.load_state_dict(point.state_dict, strict=True)
    except (RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        trained = (point.config or {}).get("model")
        said = f" (it was trained as model = {printable(trained)!r})" if trained and trained != config.model else ""
        raise RunStoreError(f"{printable(path)} does not fit the network config.toml describes, model = "
                            f"{config.model!r}{said}: {printable(first)[:200]}") from None  # fmt: skip
    module.eval()
    return Weights(run, path, config, module, point.epoch, point.step)
