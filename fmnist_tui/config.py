"""The run configuration: every option of a training run, validated.

Imports neither torch nor textual. Field docstrings are the help text of the
app's form and of `fmnist-tui run --help-keys`, so keep them short and useful.
"""

from __future__ import annotations

import math
import os
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fmnist_tui.format import CONTROL, printable

FASHION_TRAIN_SIZE = 60_000

MODELS = ("tutorial_mlp", "mlp", "cnn", "resnet")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "onecycle", "cosine")
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
ACCELERATORS = ("auto", "cpu", "gpu")
DATASETS = ("fashion-mnist", "synthetic")
AUGMENTS = ("none", "flip", "crop_flip", "crop_flip_erase")


# What a resume may change: how long and where to train, never what is trained.
# Not devices or num_nodes: each process takes batch_size images a step, so they change what a step is.
RESUMABLE = ("epochs", "description", "data_dir", "eval_batch_size", "accelerator", "precision", "progress_hz",
             "stop_on_nan")  # fmt: skip


class ConfigError(ValueError):
    """A bad configuration value; the message names the source, the key and what is allowed."""


class RunConfig(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True, validate_default=True
    )

    name: str = Field("custom", max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Preset name (letters, digits, _ . -): shown in lists and in the run folder's name."""
    description: str = Field("", max_length=200)
    """One line saying what this preset is for."""
    for_gpu: bool = False
    """Made for a GPU: marked so in the preset list; started where there is none, it asks first."""

    model: Literal["tutorial_mlp", "mlp", "cnn", "resnet"] = "mlp"
    """Network: tutorial_mlp (the quickstart's 784-512-512-10), mlp (batch norm + dropout), cnn (two conv stages), resnet (ResNet-9: the GPU presets)."""
    final_relu: bool = True
    """tutorial_mlp only: keep the quickstart's ReLU after the last layer (it clips the logits at 0)."""
    hidden: int = Field(512, ge=16, le=8192)
    """mlp only: width of the two hidden layers."""
    width: int = Field(32, ge=4, le=512)
    """cnn/resnet only: channels of the first convolution; later stages double it."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout probability before the classifier layers (mlp, cnn, resnet)."""

    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    """Optimiser: sgd, adam or adamw."""
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    """Learning rate (the peak rate when a schedule is used)."""
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    """sgd only: momentum (0 = plain SGD, as in the quickstart)."""
    nesterov: bool = False
    """sgd only: Nesterov momentum (needs momentum > 0)."""
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    """L2 penalty (decoupled for adamw)."""
    schedule: Literal["none", "onecycle", "cosine"] = "none"
    """Learning-rate schedule, stepped every batch: none, onecycle or cosine. A resume to a new epoch count fits the rest of it to the new end: the lr never jumps."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    """Label smoothing of the cross-entropy loss (0 = none)."""
    batch_size: int = Field(64, ge=1, le=65_536)
    """Training images per step."""
    eval_batch_size: int = Field(2048, ge=1, le=65_536)
    """Images per step for validation and test (larger is faster; no effect on results)."""
    epochs: int = Field(10, ge=1, le=10_000)
    """Passes over the training split (a resume may change it: see schedule)."""

    dataset: Literal["fashion-mnist", "synthetic"] = "fashion-mnist"
    """fashion-mnist (the real set) or synthetic (generated patterns, for demos and tests)."""
    data_dir: str = ""
    """Folder holding or receiving Fashion-MNIST; empty = --data-dir, $FMNIST_TUI_DATA_DIR or the per-user data folder."""
    val_size: int = Field(5_000, ge=1, le=50_000)
    """Training images held out for validation (the quickstart's Lightning version holds out 5,000 of 60,000)."""
    split_seed: int = Field(42, ge=0, le=2**32 - 1)
    """Seed of the fixed train/validation split (separate from the training seed)."""
    synthetic_size: int = Field(60_000, ge=20, le=200_000)
    """synthetic only: generated training images, 60,000 as in Fashion-MNIST (and a sixth as many test images)."""
    normalize: bool = True
    """Standardise pixels with the training mean/std (the quickstart only scales to 0..1)."""
    norm_mean: float | None = Field(None, ge=0.0, le=1.0)
    """normalize only: pixel mean on the 0..1 scale; empty = the training split's, measured at start and recorded in the run."""
    norm_std: float | None = Field(None, gt=0.0, le=1.0)
    """normalize only: pixel standard deviation on the 0..1 scale; empty = the training split's, measured and recorded."""
    augment: Literal["none", "flip", "crop_flip", "crop_flip_erase"] = "none"
    """Training augmentation, per batch on the device: none, flip, crop_flip (pad-2 random crop + flip), crop_flip_erase (+ random erasing)."""
    tta_flip: bool = False
    """Validate and test on the mean logits of each image and its mirror image (test-time flip)."""

    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"
    """Numeric precision: 32, bf16-mixed or 16-mixed (16-mixed needs a GPU)."""
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    """Where to train: auto (GPU if present), cpu or gpu."""
    devices: int = Field(1, ge=-1, le=1024)
    """Devices (GPUs, or CPU processes) to train on; -1 = every GPU (on a CPU machine, one process per core). Above 1, Lightning's DDP in the run's own process: each device takes batch_size images a step (a step sees batch_size x devices), and the loss shown is the first device's."""
    num_nodes: int = Field(1, ge=1, le=1024)
    """Machines training the run together, each with `devices` devices, started by torchrun or SLURM on every node (see the README)."""
    seed: int = Field(0, ge=0, le=2**32 - 1)
    """Seed for weights, shuffling and augmentation."""

    progress_hz: float = Field(20.0, gt=0.0, le=1_000.0)
    """Most step-progress reports per second (each one reads the loss off the device)."""
    stop_on_nan: bool = True
    """Stop the run as diverged when the training loss turns NaN or infinite."""

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        # `precision = 32` in TOML is an int; accept it as "32".
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, value: str) -> str:
        # The same for a flag, --set, a preset and the form: "~/fm" is the home folder, never "./~/fm".
        return os.path.expanduser(value)

    @field_validator("name", "description", "data_dir")
    @classmethod
    def _printable(cls, value: str) -> str:
        if CONTROL.search(value):
            raise ValueError("control characters (escape codes, line breaks) are not allowed")
        return value

    @model_validator(mode="after")
    def _fits_the_data(self) -> RunConfig:
        if not self.normalize and (self.norm_mean is not None or self.norm_std is not None):
            raise ValueError("norm_mean: norm_mean and norm_std apply only with normalize = true")
        if self.devices == 0:
            raise ValueError("devices: 0 is not allowed; allowed: 1 or more, or -1 for all")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov: needs optimizer = sgd and momentum > 0")
        pool = FASHION_TRAIN_SIZE if self.dataset == "fashion-mnist" else self.synthetic_size
        if self.val_size >= pool:
            raise ValueError(f"val_size: must be below the {pool} training images of {self.dataset}")
        train = pool - self.val_size
        if self.batch_size > train:
            raise ValueError(f"batch_size: must be at most {train}, the training split of {self.dataset}")
        return self

    @property
    def train_size(self) -> int:
        pool = FASHION_TRAIN_SIZE if self.dataset == "fashion-mnist" else self.synthetic_size
        return pool - self.val_size

    @property
    def world_size(self) -> int:
        """Processes training the run (devices = -1 counts once the run has resolved it)."""
        return max(self.devices, 1) * self.num_nodes

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.train_size // (self.batch_size * self.world_size))


FIELDS = tuple(RunConfig.model_fields)


# Options that only some choices use: key -> (the option that decides, the values it applies to).
# The form disables the others and says why; the help texts say the same ("mlp only: ...").
APPLIES_WHEN: dict[str, tuple[str, tuple[Any, ...]]] = {
    "final_relu": ("model", ("tutorial_mlp",)),
    "hidden": ("model", ("mlp",)),
    "width": ("model", ("cnn", "resnet")),
    "dropout": ("model", ("mlp", "cnn", "resnet")),
    "momentum": ("optimizer", ("sgd",)),
    "nesterov": ("optimizer", ("sgd",)),
    "data_dir": ("dataset", ("fashion-mnist",)),
    "synthetic_size": ("dataset", ("synthetic",)),
    "norm_mean": ("normalize", (True,)),
    "norm_std": ("normalize", (True,)),
}


def not_applicable(values: dict[str, Any]) -> dict[str, str]:
    """Options the other values leave unused, with why: {"hidden": "only with model = mlp; model is cnn"}."""
    out = {}
    for key, (decider, used_with) in APPLIES_WHEN.items():
        value = values.get(decider)
        if value not in used_with:
            wanted = " or ".join(_plain(v) for v in used_with)
            out[key] = f"only with {decider} = {wanted}; {decider} is {_plain(value)}"
    return out


def _plain(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else printable(value)


def field_help(key: str) -> str:
    return RunConfig.model_fields[key].description or ""


# -- one vocabulary for config errors: the CLI, preset files and the form all speak it ----------


def annotation(key: str) -> tuple[Any, bool]:
    """A field's type without None, and whether None (empty) is allowed: float | None -> (float, True)."""
    ann = RunConfig.model_fields[key].annotation
    if get_origin(ann) in (Union, UnionType) and NoneType in get_args(ann):
        rest = [a for a in get_args(ann) if a is not NoneType]
        return (rest[0] if len(rest) == 1 else ann), True
    return ann, False


TEXT_ALLOWED = {
    "name": "letters, digits, _ . - (64 at most), starting with a letter or digit",
    "description": "one line of text, 200 characters at most",
    "data_dir": "a folder, or empty for the default",
}


def _bound(value: float, whole: bool) -> str:
    return str(int(value)) if whole else f"{value:g}"


def allowed(key: str) -> str:
    """What a key accepts, from its type and bounds in RunConfig: "a whole number from 1 to 10000"."""
    ann, optional = annotation(key)
    info = RunConfig.model_fields[key]
    if get_origin(ann) is Literal:
        text = "one of " + ", ".join(str(c) for c in get_args(ann))
    elif ann is bool:
        text = "true or false"
    elif ann not in (int, float):
        text = TEXT_ALLOWED.get(key, "text")
    else:
        whole, low, high = ann is int, "", ""
        for m in info.metadata:  # annotated_types Ge/Gt/Le/Lt, as pydantic's Field(ge=...) stores them
            if getattr(m, "ge", None) is not None:
                low = f"from {_bound(m.ge, whole)}"
            elif getattr(m, "gt", None) is not None:
                low = f"above {_bound(m.gt, whole)}"
            elif getattr(m, "le", None) is not None:
                high = f"to {_bound(m.le, whole)}" if low.startswith("from") else f"at most {_bound(m.le, whole)}"
            elif getattr(m, "lt", None) is not None:
                high = f"below {_bound(m.lt, whole)}"
        bounds = (
            f"{low} {high}"
            if low.startswith("from") and high.startswith("to")
            else ", ".join(b for b in (low, high) if b)
        )
        text = f"{'a whole number' if whole else 'a number'} {bounds}".strip()
    return f"{text}, or empty" if optional else text


def is_utf8(text: str) -> bool:
    """False for text holding lone surrogates: bytes that were not UTF-8 (a Latin-1 terminal, a bad
    paste, an argv byte), kept by Python as U+DC80..U+DCFF. They cannot be written to a file or shown."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


NOT_UTF8 = "not valid UTF-8 text (the characters shown as \ufffd): type them again"


def shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if is_utf8(value) else value.encode("utf-8", "replace").decode())
    return str(value)


def input_problems(values: dict[str, Any]) -> dict[str, str]:
    """Problems found before pydantic: missing values, non-UTF-8 text, NaN or infinity."""
    problems: dict[str, str] = {}
    for key, value in values.items():
        if key not in RunConfig.model_fields:
            continue  # pydantic names it as an unknown key
        ann, optional = annotation(key)
        if value is None and not optional:
            problems[key] = f"required; allowed: {allowed(key)}"
        elif isinstance(value, str) and not is_utf8(value):
            problems[key] = NOT_UTF8
        elif isinstance(value, float) and not math.isfinite(value) and ann in (int, float):
            problems[key] = f"{value} is not a finite number; allowed: {allowed(key)}"
    return problems


TOO_SMALL = ("greater_than", "greater_than_equal")
TOO_BIG = ("less_than", "less_than_equal")
WRONG_TYPE = (
    "float_parsing", "float_type", "int_parsing", "int_type", "int_from_float", "string_type", "bool_type", "bool_parsing",
)  # fmt: skip


def explain(error: dict) -> tuple[str, str]:
    """One pydantic error -> (key, what is wrong; what is allowed). Key "" for the model as a whole."""
    loc = error.get("loc") or ()
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    if not loc:  # a model-level check: its message starts with the key and says what is allowed
        key, sep, text = msg.partition(": ")
        return (key, text) if sep and key in RunConfig.model_fields else ("", msg)
    key = str(loc[0])
    if key not in RunConfig.model_fields:
        return key, f"unknown key (known keys: {', '.join(FIELDS)})"
    kind, value = error.get("type", ""), error.get("input")
    ann, _ = annotation(key)
    if kind in TOO_SMALL:
        what = f"{shown(value)} is too small"
    elif kind in TOO_BIG:
        what = f"{shown(value)} is too big"
    elif kind in WRONG_TYPE and ann in (int, float):
        what = f"{shown(value)} is not {'a whole number' if ann is int else 'a number'}"
    elif kind == "literal_error":
        what = f"unknown value {shown(value)}"
    elif kind == "string_pattern_mismatch" or kind in WRONG_TYPE:
        what = f"{shown(value)} is not allowed" if value != "" else "required"
    elif kind == "string_too_long" and isinstance(value, str):
        what = f"too long ({len(value)} characters)"
    else:
        return key, msg
    return key, f"{what}; allowed: {allowed(key)}"


def check(values: dict[str, Any]) -> tuple[RunConfig | None, dict[str, str]]:
    """The config, or what is wrong by key ("" for what no single key can take)."""
    errors = input_problems(values)
    clean = {k: v for k, v in values.items() if k not in errors}
    try:
        config = RunConfig.model_validate(clean)
    except ValidationError as err:
        for item in err.errors():
            key, text = explain(dict(item))
            errors[key] = f"{errors[key]}; {text}" if key in errors else text
        return None, errors
    return (None, errors) if errors else (config, {})


def describe(errors: dict[str, str]) -> str:
    """{'lr': '...', 'epochs': '...'} -> 'lr: ...; epochs: ...' (one line, for the CLI or a notification)."""
    return "; ".join(f"{k}: {v}" if k else v for k, v in errors.items())


def make_config(values: dict[str, Any], source: str = "config") -> RunConfig:
    config, errors = check(values)
    if config is None:
        raise ConfigError(f"{source}: {describe(errors)}")
    return config


def with_overrides(config: RunConfig, overrides: dict[str, Any], source: str = "--set") -> RunConfig:
    if not overrides:
        return config
    return make_config({**config.model_dump(), **overrides}, source)


def check_resume_overrides(overrides: dict[str, Any]) -> None:
    """A resume continues one run: it may train longer or elsewhere, not something else."""
    refused = [k for k in overrides if k not in RESUMABLE]
    if refused:
        raise ConfigError(
            f"--set {', '.join(refused)}: cannot change when resuming, it would change what is trained "
            f"(start a new run instead); a resume may change {', '.join(RESUMABLE)}"
        )


def to_dict(config: RunConfig) -> dict[str, Any]:
    """The config as TOML can hold it: unset optional values (None) are left out."""
    return {k: v for k, v in config.model_dump().items() if v is not None}
