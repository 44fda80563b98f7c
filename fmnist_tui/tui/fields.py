"""The form's view of RunConfig: which widget each field gets, and errors mapped to fields.

Everything is driven from `RunConfig.model_fields`, so a field added to the config
appears in the form (in the "Other" section if no section names it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import ValidationError

from fmnist_tui.config import RunConfig, field_help, parse_value

# Sections in display order; unknown keys are skipped, unlisted fields go to "Other".
SECTIONS: dict[str, tuple[str, ...]] = {
    "Preset": ("name", "description"),
    "Model": ("model", "final_relu", "hidden", "width", "dropout"),
    "Optimiser": ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule", "label_smoothing"),
    "Training": ("batch_size", "epochs", "eval_batch_size", "seed", "precision"),
    "Data": ("dataset", "data_dir", "val_size", "split_seed", "synthetic_size", "normalize", "norm_mean", "norm_std",
             "augment"),
    "Device and reporting": ("accelerator", "devices", "progress_hz", "stop_on_nan"),
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


def annotation(key: str) -> tuple[Any, bool]:
    """A field's type without None, and whether None (an empty field) is allowed: float | None -> (float, True)."""
    ann = RunConfig.model_fields[key].annotation
    if get_origin(ann) in (Union, UnionType) and NoneType in get_args(ann):
        rest = [a for a in get_args(ann) if a is not NoneType]
        return (rest[0] if len(rest) == 1 else ann), True
    return ann, False


@lru_cache(maxsize=None)
def spec(key: str) -> FieldSpec:
    info = RunConfig.model_fields[key]
    ann, optional = annotation(key)
    if get_origin(ann) is Literal:
        kind, choices = "choice", tuple(str(c) for c in get_args(ann))
    elif ann is bool:
        kind, choices = "bool", ()
    elif ann in (int, float):
        kind, choices = "number", ()
    else:
        kind, choices = "text", ()
    return FieldSpec(key, kind, choices, field_help(key), info.default, allowed(key), optional)


TEXT_ALLOWED = {
    "name": "letters, digits, _ . - (64 at most), starting with a letter or digit",
    "description": "one line of text, 200 characters at most",
    "data_dir": "a folder, or empty for the default",
}


def _bound(value: float, whole: bool) -> str:
    return str(int(value)) if whole else f"{value:g}"


def allowed(key: str) -> str:
    """What a field accepts, from its type and bounds in RunConfig."""
    ann, optional = annotation(key)
    text = allowed_values(key, ann)
    return f"{text}, or empty" if optional else text


def allowed_values(key: str, ann: Any) -> str:
    info = RunConfig.model_fields[key]
    if get_origin(ann) is Literal:
        return "one of " + ", ".join(str(c) for c in get_args(ann))
    if ann is bool:
        return "yes or no"
    if ann not in (int, float):
        return TEXT_ALLOWED.get(key, "text")
    whole = ann is int
    low = high = ""
    for m in info.metadata:  # annotated_types Ge/Gt/Le/Lt, as pydantic's Field(ge=...) stores them
        if getattr(m, "ge", None) is not None:
            low = f"from {_bound(m.ge, whole)}"
        elif getattr(m, "gt", None) is not None:
            low = f"above {_bound(m.gt, whole)}"
        elif getattr(m, "le", None) is not None:
            high = f"to {_bound(m.le, whole)}" if low.startswith("from") else f"at most {_bound(m.le, whole)}"
        elif getattr(m, "lt", None) is not None:
            high = f"below {_bound(m.lt, whole)}"
    if low.startswith("from") and high.startswith("to"):
        bounds = f"{low} {high}"
    else:
        bounds = ", ".join(b for b in (low, high) if b)
    return f"{'a whole number' if whole else 'a number'} {bounds}".strip()


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


def is_utf8(text: str) -> bool:
    """False for text holding lone surrogates: bytes that were not UTF-8 (a Latin-1 terminal,
    a bad paste, an argv byte), kept by Python as U+DC80..U+DCFF. They cannot be written
    to config.toml or shown on the terminal."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


NOT_UTF8 = "not valid UTF-8 text (the characters shown as \ufffd): type them again"


def input_problems(values: dict[str, Any]) -> dict[str, str]:
    """Problems found before pydantic: missing values, non-UTF-8 text, NaN or infinity."""
    problems: dict[str, str] = {}
    for key, value in values.items():
        field = spec(key) if key in RunConfig.model_fields else None
        if value is None and field is not None and field.optional:
            continue
        if value is None:
            problems[key] = f"required; allowed: {field.allowed}" if field else "required"
        elif isinstance(value, str) and not is_utf8(value):
            problems[key] = NOT_UTF8
        elif isinstance(value, float) and not math.isfinite(value) and field and field.kind == "number":
            problems[key] = f"{value} is not a finite number; allowed: {field.allowed}"
    return problems


TOO_SMALL = ("greater_than", "greater_than_equal")
TOO_BIG = ("less_than", "less_than_equal")
WRONG_TYPE = (
    "float_parsing", "float_type", "int_parsing", "int_type", "int_from_float", "string_type", "bool_type", "bool_parsing",
)  # fmt: skip


def shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else to_text(value)


def explain(error: dict) -> tuple[str, str]:
    """One pydantic error -> (key, what is wrong; what is allowed)."""
    loc = error.get("loc") or ()
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    if not loc:  # a model-level check: its message starts with the key and says what is allowed
        key, sep, text = msg.partition(": ")
        return (key, text) if sep and key in RunConfig.model_fields else ("", msg)
    key = str(loc[0])
    if key not in RunConfig.model_fields:
        return "", f"{key}: unknown key"
    field, kind, value = spec(key), error.get("type", ""), error.get("input")
    if kind in TOO_SMALL:
        what = f"{shown(value)} is too small"
    elif kind in TOO_BIG:
        what = f"{shown(value)} is too big"
    elif kind in WRONG_TYPE and field.kind == "number":
        whole = RunConfig.model_fields[key].annotation is int
        what = f"{shown(value)} is not {'a whole number' if whole else 'a number'}"
    elif kind == "literal_error":
        what = f"unknown value {shown(value)}"
    elif kind == "string_pattern_mismatch" or kind in WRONG_TYPE:
        what = f"{shown(value)} is not allowed" if value != "" else "required"
    elif kind == "string_too_long" and isinstance(value, str):
        what = f"too long ({len(value)} characters)"
    else:
        what = msg
    return key, f"{what}; allowed: {field.allowed}"


def validate(values: dict[str, Any]) -> tuple[RunConfig | None, dict[str, str]]:
    """The config, or the errors by key ("" for one no field can take)."""
    errors = input_problems(values)
    clean = {k: v for k, v in values.items() if k not in errors}
    try:
        config = RunConfig.model_validate(clean)
    except ValidationError as err:
        for item in err.errors():
            key, text = explain(item)
            errors[key] = f"{errors[key]}; {text}" if key in errors else text
        return None, errors
    return (None, errors) if errors else (config, {})


def describe(errors: dict[str, str]) -> str:
    """{'lr': '...', 'epochs': '...'} -> 'lr: ...; epochs: ...' (for a notification or the CLI)."""
    return "; ".join(f"{k}: {v}" if k else v for k, v in errors.items())
