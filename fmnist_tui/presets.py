"""Preset files: one human-editable TOML file per preset.

Read from the built-in folder, the per-user folder and any --presets-dir. A broken
file is reported (file, line or key, what is allowed) and the others still load.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from fmnist_tui import paths
from fmnist_tui.config import ConfigError, RunConfig, make_config, to_dict

REQUIRED = ("name", "description")


@dataclass(frozen=True)
class Preset:
    config: RunConfig
    path: Path

    @property
    def name(self) -> str:
        return self.config.name


@dataclass
class PresetSet:
    presets: dict[str, Preset] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def get(self, name: str) -> RunConfig:
        if name not in self.presets:
            known = ", ".join(self.presets) or "none"
            raise ConfigError(f"unknown preset {name!r} (known: {known})")
        return self.presets[name].config


def load_file(path: Path) -> RunConfig:
    try:
        raw = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        values = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as err:
        # The decoder's message already ends with "(at line N, column M)".
        raise ConfigError(f"{path}: TOML syntax error: {err}") from None
    missing = [k for k in REQUIRED if k not in values]
    if missing:
        raise ConfigError(f"{path}: {', '.join(missing)}: required key is missing")
    return make_config(values, str(path))


def preset_dirs(extra: list[Path] | None = None) -> list[Path]:
    return [paths.builtin_presets_dir(), paths.user_presets_dir(), *(extra or [])]


def load_presets(extra: list[Path] | None = None) -> PresetSet:
    """Every preset in the folders, first name wins; problems are collected, not raised."""
    result = PresetSet()
    for folder in preset_dirs(extra):
        if not folder.is_dir():
            if folder in (extra or []):
                result.errors.append(f"{folder}: presets folder not found")
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                config = load_file(path)
            except ConfigError as err:
                result.errors.append(str(err))
                continue
            if config.name in result.presets:
                first = result.presets[config.name].path
                result.errors.append(f"{path}: name {config.name!r} is already used by {first}; skipped")
                continue
            result.presets[config.name] = Preset(config, path)
    return result


def save_preset(config: RunConfig, folder: Path | None = None) -> Path:
    """Write a preset file (only keys that differ from the defaults, plus name and description)."""
    folder = folder or paths.user_presets_dir()
    folder.mkdir(parents=True, exist_ok=True)
    defaults = to_dict(RunConfig())
    values = {k: v for k, v in to_dict(config).items() if k in REQUIRED or v != defaults[k]}
    path = folder / f"{config.name}.toml"
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(values), encoding="utf-8")
    tmp.replace(path)
    return path
