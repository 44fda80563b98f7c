"""Default folders (per-user, via platformdirs) and their environment overrides."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_config_path, user_data_path

APP = "fmnist-tui"


def _from_env(var: str, default: Path) -> Path:
    value = os.environ.get(var, "").strip()
    return Path(value).expanduser() if value else default


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """Where Fashion-MNIST is read from or downloaded to."""
    if override:
        return Path(override).expanduser()
    return _from_env("FMNIST_TUI_DATA_DIR", user_data_path(APP) / "data")


def runs_dir(override: str | os.PathLike | None = None) -> Path:
    """Where each run gets its own folder."""
    if override:
        return Path(override).expanduser()
    return _from_env("FMNIST_TUI_RUNS_DIR", user_data_path(APP) / "runs")


def user_presets_dir() -> Path:
    """Presets saved by the user (the app's "save as preset" writes here)."""
    return _from_env("FMNIST_TUI_PRESETS_DIR", user_config_path(APP) / "presets")


def builtin_presets_dir() -> Path:
    """Inside the wheel, presets/ sits in the package; in a checkout, at the top level."""
    here = Path(__file__).resolve().parent
    shipped = here / "presets"
    return shipped if shipped.is_dir() else here.parent / "presets"


def settings_file() -> Path:
    """The user's settings (settings.py)."""
    return _from_env("FMNIST_TUI_SETTINGS", user_config_path(APP) / "settings.toml")
