"""Two progress lines: this epoch and the whole run, with loss, speed and ETA."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from fmnist_tui.engine.events import RunStarted, StepProgress
from fmnist_tui.format import clock, num, rate

TEXT_W = 36  # the same on both lines, so the bars line up
PCT_W = 6  # " 100%" and a gap
NARROW = 64  # below this the bar gives way to the figures, and the percentage goes


def bar(fraction: float, width: int, done: Style, back: Style) -> Text:
    """A bar in half-cell steps, drawn like Textual's ProgressBar."""
    halves = round(max(0.0, min(1.0, fraction)) * width * 2)
    full, half = divmod(halves, 2)
    text = Text()
    text.append("━" * full + "╸" * half, style=done)
    rest = width - full - half
    if rest > 0:
        text.append(("╺" if full and not half else "━") + "━" * (rest - 1), style=back)
    return text


class RunProgress(Widget):
    """Redrawn several times a second while training, so it is one widget drawing two lines
    of text, not a tree of labels and bars: each widget repainted costs the UI thread time,
    and that is GIL time the training thread waits for (bench/startup.py, ui_thread_cpu).
    Its size never depends on its text, so a redraw never asks for a layout pass."""

    COMPONENT_CLASSES = {"run-progress--bar", "run-progress--complete"}
    DEFAULT_CSS = """
    RunProgress {
        height: 2;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        & > .run-progress--bar { color: $primary; background: $surface; }
        & > .run-progress--complete { color: $success; background: $surface; }
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._lines: tuple[tuple[str, float | None, str], ...] = (
            ("Epoch", None, "waiting for the first step"),
            ("Run", None, ""),
        )

    def show(self, started: RunStarted | None, progress: StepProgress | None, done: bool = False) -> None:
        lines: tuple[tuple[str, float | None, str], ...]
        if progress is None and started is None:
            lines = (("Epoch", None, "" if done else "waiting for the first step"), ("Run", None, ""))
        else:
            if progress is None:  # started, no step yet
                assert started is not None
                epoch, step, epoch_step = started.start_epoch, started.start_step, 0
                spe, total, loss, speed, eta = started.steps_per_epoch, started.total_steps, None, None, None
            else:
                epoch, step, epoch_step = progress.epoch, progress.step, progress.epoch_step
                spe, total, loss = progress.steps_per_epoch, progress.total_steps, progress.loss
                speed, eta = progress.samples_per_s, progress.eta_s
                if done:  # finished: nothing left; stopped or failed: no ETA to give
                    eta = 0.0 if step >= total else None
            epochs = (started.epochs if started else 0) or max(1, total // max(spe, 1))
            lines = (
                (f"Epoch {epoch + 1}/{epochs}", epoch_step / max(spe, 1), f"{epoch_step}/{spe}  loss {num(loss)}"),
                ("Run", step / max(total, 1), f"{step}/{total}  {rate(speed)}  ETA {clock(eta)}"),
            )
        if lines != self._lines:
            self._lines = lines
            self.refresh()  # a repaint of this widget only

    def render(self) -> Text:
        width = max(1, self.size.width)
        label_w = max(len(label) for label, _, _ in self._lines) + 1  # "Epoch 12/146 ": both bars start together
        pct_w = PCT_W if width >= NARROW else 0
        bar_w = max(4, width - label_w - pct_w - TEXT_W)
        out = Text(no_wrap=True, overflow="ellipsis", end="")
        for i, (label, fraction, detail) in enumerate(self._lines):
            if i:
                out.append("\n")
            out.append(f"{label:<{label_w}}")
            if fraction is None:
                out.append(" " * (bar_w + pct_w))
            else:
                style = self.get_component_rich_style(
                    "run-progress--complete" if fraction >= 1 else "run-progress--bar", partial=True
                )
                out.append_text(bar(fraction, bar_w, Style(color=style.color), Style(color=style.bgcolor)))
                if pct_w:
                    out.append(f"{int(fraction * 100):>5}%")
            out.append(f" {detail}")
        return out
