"""Reading a run's card.json (engine/card.py writes it): no torch, so `show` and the app answer at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fmnist_tui.format import printable

FILE = "card.json"
VERSION = 1
PACKAGES = ("torch", "torchvision", "pytorch-lightning", "textual", "fmnist-tui")
LAUNCHED_BY = "FMNIST_TUI_LAUNCHED_BY"  # set for a run in a process of its own: the command that started it


def read_cards(run: Path) -> list[dict[str, Any]]:
    """The run's cards, first start first; [] when there is no card.json or it cannot be read."""
    try:
        data = json.loads((run / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return []
    cards = data.get("segments") if isinstance(data, dict) and data.get("version") == VERSION else None
    return [c for c in cards if isinstance(c, dict)] if isinstance(cards, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return printable(value if isinstance(value, str) else json.dumps(value, default=str))


def card_lines(card: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) pairs of one card, for the CLI and the app's Config tab."""
    rows = [("started", _text(card.get("started", "?"))), ("command", _text(card.get("command", "?")))]
    if card.get("launched_by"):
        rows.append(("started by", _text(card["launched_by"])))
    rows.append(("working folder", _text(card.get("cwd", "?"))))
    versions = _dict(card.get("versions"))
    rows.append(("versions", ", ".join(f"{_text(k)} {_text(v)}" for k, v in versions.items())))
    dev = _dict(card.get("device"))
    if dev.get("kind") == "gpu":
        rows.append(("device", f"{_text(dev.get('name'))} x{_text(dev.get('count'))}, CUDA {_text(dev.get('cuda'))}, "
                               f"cuDNN {_text(dev.get('cudnn'))}, driver {_text(dev.get('driver') or '?')}"))  # fmt: skip
    else:
        rows.append(("device", f"CPU {_text(dev.get('name', '?'))}, {_text(dev.get('cores', '?'))} cores"))
    data = _dict(card.get("data"))
    if "synthetic" in data:
        rows.append(("data", f"synthetic {_text(data['synthetic'])}"))
    else:
        rows.append(("data folder", _text(data.get("folder", "?"))))
        hashes = _dict(data.get("sha256"))
        rows += [(f"sha256 {_text(name)}", _text(digest)) for name, digest in hashes.items()]
    rows.append(
        ("seed", f"{_text(card.get('seed'))}, deterministic algorithms {'on' if card.get('deterministic') else 'off'}")
    )
    git = card.get("git") if isinstance(card.get("git"), dict) else None
    rows.append(
        (
            "git",
            f"{_text(git.get('commit'))}{' (with changes)' if git.get('dirty') else ''}"
            if git
            else "not a git checkout",
        )
    )
    return rows


def differences(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between a recorded card and this machine now: versions and data files."""
    said = []
    old_v = _dict(recorded.get("versions"))
    new_v = now.get("versions", {})
    for name, version in new_v.items():
        if name in old_v and old_v[name] != version:
            said.append(f"{name} {_text(old_v[name])} then, {version} now")
    old_d = _dict(recorded.get("data"))
    new_d = now.get("data", {})
    old_h = old_d.get("sha256") if isinstance(old_d.get("sha256"), dict) else None
    new_h = new_d.get("sha256")
    if old_h is not None and new_h is not None:
        for name in sorted(set(old_h) | set(new_h)):
            if old_h.get(name) != new_h.get(name):
                said.append(f"data file {_text(name)} differs from the one the run trained on (sha256)")
    return said
