"""The user's settings for the app (not for runs): `settings.toml` in the per-user config folder.

    alerts = false      # no bell or desktop notification when a run ends (as --no-alerts)

A missing file is the defaults; a bad one is reported and the defaults are used.
"""

from __future__ import annotations

import tomllib

from pydantic import BaseModel, ConfigDict, ValidationError

from fmnist_tui import paths
from fmnist_tui.format import printable


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    alerts: bool = True
    """Ring the terminal bell and send a desktop notification (OSC 9) when a run the app shows ends."""


def load_settings() -> tuple[Settings, str | None]:
    """The settings, and a problem with the file to show (None when it is fine or missing)."""
    path = paths.settings_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings(), None
    except (OSError, UnicodeDecodeError) as err:
        return Settings(), f"{printable(path)}: cannot be read ({err}); using the defaults"
    try:
        return Settings(**tomllib.loads(text)), None
    except (tomllib.TOMLDecodeError, ValidationError, TypeError) as err:
        first = str(err).strip().splitlines()
        return Settings(), f"{printable(path)}: {printable(' '.join(first[:3]))}; using the defaults"
