"""The form's view of RunConfig: which widget each field gets, and errors mapped to fields.

Everything is driven from `RunConfig.model_fields`, so a field added to the config
appears in the form (in the "Other" section if no section names it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from fmnist_tui.config import ConfigError, RunConfig, field_help, make_config, parse_value

# Sections in display order; unknown keys are skipped, unlisted fields go to "Other".
SECTIONS: dict[str, tuple[str, ...]] = {
    "Preset": ("name", "description"),
    "Model": ("model", "final_relu", "hidden", "width", "dropout"),
    "Optimiser": ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule", "label_smoothing"),
    "Training": ("batch_size", "epochs", "eval_batch_size", "seed", "precision"),
    "Data": ("dataset", "data_dir", "val_size", "split_seed", "synthetic_size", "normalize", "augment"),
    "Device and reporting": ("accelerator", "devices", "progress_hz", "stop_on_nan"),
}


@dataclass(frozen=True)
class FieldSpec:
    key: str
    kind: Literal["choice", "bool", "number", "text"]
    choices: tuple[str, ...]
    help: str
    default: Any


def spec(key: str) -> FieldSpec:
    info = RunConfig.model_fields[key]
    ann = info.annotation
    if get_origin(ann) is Literal:
        kind, choices = "choice", tuple(str(c) for c in get_args(ann))
    elif ann is bool:
        kind, choices = "bool", ()
    elif ann in (int, float):
        kind, choices = "number", ()
    else:
        kind, choices = "text", ()
    return FieldSpec(key, kind, choices, field_help(key), info.default)


def sections() -> list[tuple[str, list[FieldSpec]]]:
    known = set(RunConfig.model_fields)
    out, placed = [], set()
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


def validate(values: dict[str, Any]) -> tuple[RunConfig | None, dict[str, str]]:
    """The config, or the errors by key ("" for one no field can take)."""
    missing = {k: "required: enter a number" for k, v in values.items() if v is None}
    clean = {k: v for k, v in values.items() if v is not None}
    try:
        config = make_config(clean, "form")
    except ConfigError as err:
        return None, {**split_errors(str(err)), **missing}
    return (None, missing) if missing else (config, {})


def split_errors(message: str) -> dict[str, str]:
    """'form: lr: too big; batch_size: must be ...' -> {'lr': 'too big', 'batch_size': 'must be ...'}."""
    body = message.split(": ", 1)[1] if message.startswith("form: ") else message
    keys = "|".join(sorted(map(re.escape, RunConfig.model_fields), key=len, reverse=True))
    parts = re.split(rf"(?:^|; )({keys}): ", body)
    errors: dict[str, str] = {}
    if parts[0].strip():
        errors[""] = parts[0].strip()
    for key, text in zip(parts[1::2], parts[2::2]):
        errors[key] = f"{errors[key]}; {text}" if key in errors else text
    return errors
