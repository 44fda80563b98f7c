"""`--set KEY=VALUE` and `--grid KEY=V1,V2` as config values: TOML literals or bare words. No torch."""

from __future__ import annotations

import tomllib
from typing import Any

from fmnist_tui.config import FIELDS, ConfigError, RunConfig


def parse_value(text: str) -> Any:
    """A --set value: a TOML literal (1e-3, 64, true, "x") or else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def split_item(item: str, flag: str = "--set", shape: str = "KEY=VALUE") -> tuple[str, str]:
    """ "lr=0.01" -> ("lr", "0.01"); ConfigError for no key, an unknown key or no value."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{flag} {item!r}: expected {shape}")
    if key not in RunConfig.model_fields:
        raise ConfigError(f"{flag} {key}: unknown key (known keys: {', '.join(FIELDS)})")
    if not text.strip():
        raise ConfigError(f"{flag} {key}: empty value")
    return key, text.strip()


def parse_set_items(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, text = split_item(item)
        out[key] = parse_value(text)
    return out
