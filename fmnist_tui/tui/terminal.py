"""Keep the app alive when the terminal sends bytes that are not UTF-8.

Textual's input thread decodes keyboard input as strict UTF-8: one stray byte (a
terminal set to Latin-1 sending "é" as 0xE9, a bad paste, line noise over SSH) raises
UnicodeDecodeError in that thread, and the app panics and exits, run and all. Decoding
with "surrogateescape" instead turns such a byte into a lone surrogate (0xFF ->
U+DCFF); the form's text fields keep it and report "not valid UTF-8 text" at the
field, and it is drawn as U+FFFD.
"""

from __future__ import annotations

import codecs
from functools import partial


def lenient_decoder(encoding: str):
    """What `codecs.getincrementaldecoder` returns, with errors="surrogateescape" by default."""
    return partial(codecs.getincrementaldecoder(encoding), errors="surrogateescape")


def tolerate_non_utf8_input() -> None:
    """Patch the one name Textual's Linux driver uses to build its input decoder (idempotent)."""
    try:
        from textual.drivers import linux_driver
    except ImportError:  # Windows: another driver, which reads the console as text already
        return
    if getattr(linux_driver, "getincrementaldecoder", None) is not None:
        linux_driver.getincrementaldecoder = lenient_decoder
