"""The form's view of RunConfig: which widget each field gets, and errors mapped to fields.

Everything is driven from `RunConfig.model_fields`, so a field added to the config
appears in the form (in the "Other" section if no section names it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, get_args, get_origin

from fmnist_tui.config import RunConfig, allowed, annotation, field_help
from fmnist_tui.overrides import parse_value

# Sections in display order; unknown keys are skipped, unlisted fields go to "Other".
SECTIONS: dict[str, tuple[str, ...]] = {
    "Preset": ("name", "description", "for_gpu"),
    "Model": ("model", "final_relu", "hidden", "width", "dropout"),
    "Optimiser": ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule", "label_smoothing"),
    "Training": ("batch_size", "epochs", "eval_batch_size", "seed", "precision"),
    "Data": (
        "dataset",
        "data_dir",
        "val_size",
        "split_seed",
        "synthetic_size",
        "normalize",
        "norm_mean",
        "norm_std",
        "augment",
    ),
    "Device and reporting": ("accelerator", "devices", "num_nodes", "progress_hz", "stop_on_nan"),
}


@dataclass(frozen=True)
class FieldSpec:
    key: str
    kind: Literal["choice", "bool", "number", "text"]
    choices: tuple[str, ...]
    help: str
    default: Any
    allowed: str = ""  # what may be entered, for error messages: "a whole number from 1 to 10000"
    optional: bool = False  # empty is a value (None): "measured at start", "the default"


@cache
def spec(key: str) -> FieldSpec:
    info = RunConfig.model_fields[key]
    ann, optional = annotation(key)
    kind: Literal["choice", "bool", "number", "text"]
    if get_origin(ann) is Literal:
        kind, choices = "choice", tuple(str(c) for c in get_args(ann))
    elif ann is bool:
        kind, choices = "bool", ()
    elif ann in (int, float):
        kind, choices = "number", ()
    else:
        kind, choices = "text", ()
    return FieldSpec(key, kind, choices, field_help(key), info.default, allowed(key), optional)


def sections() -> list[tuple[str, list[FieldSpec]]]:
    known = set(RunConfig.model_fields)
    out: list[tuple[str, list[FieldSpec]]] = []
    placed: set[str] = set()
    for title, keys in SECTIONS.items():
        specs = [spec(k) for k in keys if k in known]
        placed.update(s.key for s in specs)
        if specs:
            out.append((title, specs))
    rest = [spec(k) for k in RunConfig.model_fields if k not in placed]
    if rest:
        out.append(("Other", rest))
    return out


def to_text(value: Any) -> str:
    """A config value as the form shows it (and parse_value reads back)."""
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else str(value)


def from_text(field: FieldSpec, text: str) -> Any:
    if field.kind == "number":
        return parse_value(text.strip()) if text.strip() else None
    return text
