"""A sweep: the cross product of a few values per key, each combination a queued run. No torch.

Every combination is validated before any is queued; a bad value is named with its key
("--grid lr=abc: ..."). Each point's label ("lr=0.01 batch_size=64") ends its run folder's
name, so `fmnist-tui runs` says which point a run is.
"""

from __future__ import annotations

import itertools
from typing import Any

from fmnist_tui.config import ConfigError, RunConfig, make_config
from fmnist_tui.overrides import parse_value, split_item

MOST_WITHOUT_ASKING = 100
MOST_AT_ALL = 10_000  # a queue of more is a mistake, and checking them all would take minutes


def parse_grid(items: list[str]) -> list[tuple[str, list[Any]]]:
    """["lr=1e-3,1e-2", "model=mlp,cnn"] -> [("lr", [0.001, 0.01]), ("model", ["mlp", "cnn"])]."""
    grid: list[tuple[str, list[Any]]] = []
    for item in items:
        key, text = split_item(item, "--grid", "KEY=V1,V2,...")
        if any(key == k for k, _ in grid):
            raise ConfigError(f"--grid {key}: given twice; put all its values in one --grid")
        values = [parse_value(v.strip()) for v in text.split(",")]
        if any(v == "" for v in values):
            raise ConfigError(f"--grid {key}: an empty value; give V1,V2,... with no empty one")
        if len({repr(v) for v in values}) < len(values):
            raise ConfigError(f"--grid {key}: a value is given twice")
        grid.append((key, values))
    if not grid:
        raise ConfigError("sweep: give at least one --grid KEY=V1,V2,...")
    return grid


def label(point: dict[str, Any]) -> str:
    return " ".join(f"{k}={_text(v)}" for k, v in point.items())


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)


def expand(base: RunConfig, grid: list[tuple[str, list[Any]]]) -> list[tuple[dict[str, Any], str]]:
    """Every combination as (config values, label). ConfigError naming a value no combination can take
    ("--grid lr=abc: ..."), else the first combination that is not a config (nesterov=true, momentum=0)."""
    points, good, bad = [], [], []
    for choice in itertools.product(*(range(len(values)) for _, values in grid)):
        point = {key: values[i] for (key, values), i in zip(grid, choice, strict=True)}
        try:
            points.append((make_config({**base.model_dump(), **point}).model_dump(), label(point)))
            good.append(choice)
        except ConfigError as err:
            bad.append((choice, point, str(err).partition(": ")[2]))
    if not bad:
        return points
    for k, (key, values) in enumerate(grid):
        for i, value in enumerate(values):
            if not any(choice[k] == i for choice in good):
                why = next(why for choice, _, why in bad if choice[k] == i)
                raise ConfigError(f"--grid {key}={_text(value)}: {why.removeprefix(f'{key}: ')}")
    _, point, why = bad[0]
    raise ConfigError(f"sweep point {label(point)}: {why}")
