"""Two progress lines: this epoch and the whole run, with loss, speed and ETA."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar

from fmnist_tui.engine.events import RunStarted, StepProgress
from fmnist_tui.format import clock, num, rate


class RunProgress(Vertical):
    """Redrawn several times a second while training, so it never asks for a layout pass:
    its labels have fixed sizes (app.tcss), and a layout pass of the whole screen costs
    the training thread far more GIL time than repainting three labels."""

    def compose(self) -> ComposeResult:
        # show_eta=False: the bar's own ETA reads the wall clock; ours comes from the engine.
        with Horizontal(classes="progress-line"):
            yield Label("Epoch", id="epoch-label", classes="progress-label")
            yield ProgressBar(id="epoch-bar", show_eta=False)
            yield Label("", id="epoch-text", classes="progress-text")
        with Horizontal(classes="progress-line"):
            yield Label("Run", id="run-label", classes="progress-label")
            yield ProgressBar(id="run-bar", show_eta=False)
            yield Label("", id="run-text", classes="progress-text")

    def show(self, started: RunStarted | None, progress: StepProgress | None, done: bool = False) -> None:
        epoch_bar = self.query_one("#epoch-bar", ProgressBar)
        run_bar = self.query_one("#run-bar", ProgressBar)
        if progress is None and started is None:
            epoch_bar.update(total=None, progress=0)
            run_bar.update(total=None, progress=0)
            self._text("Epoch", "", "waiting for the first step" if not done else "")
            return
        epochs = started.epochs if started else 0
        if progress is None:  # started, no step yet
            progress_epoch, step, epoch_step = (started.start_epoch, started.start_step, 0)
            spe, total, loss, speed, eta = started.steps_per_epoch, started.total_steps, None, None, None
        else:
            progress_epoch, step, epoch_step = progress.epoch, progress.step, progress.epoch_step
            spe, total, loss = progress.steps_per_epoch, progress.total_steps, progress.loss
            speed, eta = progress.samples_per_s, (0.0 if done else progress.eta_s)
        epochs = epochs or max(1, total // max(spe, 1))
        epoch_bar.update(total=max(spe, 1), progress=epoch_step)
        run_bar.update(total=max(total, 1), progress=step)
        self._text(f"Epoch {progress_epoch + 1}/{epochs}", f"{epoch_step}/{spe}  loss {num(loss)}",
                   f"{step}/{total}  {rate(speed)}  ETA {clock(eta)}")  # fmt: skip

    def _text(self, label: str, epoch: str, run: str) -> None:
        for selector, text in (("#epoch-label", label), ("#epoch-text", epoch), ("#run-text", run)):
            self.query_one(selector, Label).update(text, layout=False)
