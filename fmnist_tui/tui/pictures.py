"""Test images as pictures in the terminal, through textual-image.

textual-image asks the terminal what it can draw (Sixel, Kitty's graphics protocol) when it
is imported, and that works only before Textual owns the terminal: `detect` runs in `run_app`
before the app starts. Where the terminal has no graphics (tmux, most SSH sessions), a
picture is drawn in half blocks: "▀" with the upper pixel as its colour and the lower one as
its background, so a 28x28 image takes 28 columns by 14 rows, pixel for pixel.
FMNIST_TUI_IMAGES=halfcell|sixel|kitty chooses by hand.

Half-block pictures are rendered once per size and kept (`Picture` draws cached strips):
moving through the gallery or a progress tick never renders an image again.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache

from PIL import Image as PILImage
from rich.console import Console
from rich.segment import Segment
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

from fmnist_tui.evaluation import SIDE

MODES = ("halfcell", "sixel", "kitty")
ENV = "FMNIST_TUI_IMAGES"
_mode = "halfcell"


def detect() -> str:
    """Choose how pictures are drawn, asking the terminal if need be (call before the app starts)."""
    global _mode
    chosen = os.environ.get(ENV, "auto").strip().lower()
    if chosen in MODES:
        _mode = chosen
    elif sys.__stdout__ is not None and sys.__stdout__.isatty() and sys.__stdin__ is not None:
        try:
            from textual_image.renderable import Image, SixelImage, TGPImage

            _mode = "sixel" if Image is SixelImage else "kitty" if Image is TGPImage else "halfcell"
        except Exception:  # noqa: BLE001 - a terminal that answers oddly still gets half blocks
            _mode = "halfcell"
    if _mode != "halfcell":
        import textual_image.widget  # noqa: F401 - asks the terminal its cell size: now, not once Textual reads stdin
    return _mode


def mode() -> str:
    return _mode


def image_of(pixels: bytes) -> PILImage.Image:
    """784 grey levels, white clothes on black, as an RGB picture."""
    return PILImage.frombytes("L", (SIDE, SIDE), pixels).convert("RGB")


@lru_cache(maxsize=512)
def halfcell_strips(pixels: bytes, width: int, height: int) -> tuple[Strip, ...]:
    """The picture in `width` x `height` cells of half blocks (textual-image's renderer), as strips."""
    from textual_image.renderable import HalfcellImage

    console = Console(width=width, height=height, color_system="truecolor", force_terminal=True, legacy_windows=False)
    options = console.options.update_dimensions(width, height)
    lines = console.render_lines(HalfcellImage(image_of(pixels), width=width, height=height), options, pad=False)
    # Runs of one colour (the black around a garment) as one segment: far less for Textual to cut and compose.
    return tuple(Strip(Segment.simplify(line), width) for line in lines[:height])


class Picture(Widget):
    """One test image, drawn to the widget's size: half blocks from the cache, or the terminal's graphics."""

    DEFAULT_CSS = "Picture { width: 28; height: 14; }"

    def __init__(self, pixels: bytes | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pixels = pixels
        self._graphic: Widget | None = None

    def compose(self):
        if mode() != "halfcell":
            from textual_image.widget import SixelImage, TGPImage

            kind = SixelImage if mode() == "sixel" else TGPImage
            self._graphic = kind(image_of(self.pixels) if self.pixels else None)
            self._graphic.styles.width = self._graphic.styles.height = "100%"
            yield self._graphic

    def show(self, pixels: bytes | None) -> None:
        if pixels == self.pixels:
            return
        self.pixels = pixels
        if self._graphic is not None:
            self._graphic.image = image_of(pixels) if pixels else None  # type: ignore[attr-defined]
        else:
            self.refresh()

    def render_line(self, y: int) -> Strip:
        if self._graphic is not None or not self.pixels:
            return Strip.blank(self.size.width, self.rich_style)
        strips = halfcell_strips(self.pixels, self.size.width, self.size.height)
        return strips[y] if y < len(strips) else Strip.blank(self.size.width, self.rich_style)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return SIDE

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return SIDE // 2
