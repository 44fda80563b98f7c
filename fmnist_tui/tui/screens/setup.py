"""Choose a preset, edit every option, start the run (in the app, or in a background process
that outlives the terminal) or save the form as a preset."""

from __future__ import annotations

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Header, OptionList, Static

from fmnist_tui import paths
from fmnist_tui.config import ConfigError, RunConfig, make_config
from fmnist_tui.lrplot import lr_text
from fmnist_tui.presets import save_preset
from fmnist_tui.tui.relay import DeviceFound
from fmnist_tui.tui.screens.base import AppScreen, QueueRun, StartRun
from fmnist_tui.tui.screens.lrfind import LrFindScreen
from fmnist_tui.tui.screens.modals import ConfirmScreen, PresetNameScreen
from fmnist_tui.tui.widgets.footer import NARROW, AppFooter
from fmnist_tui.tui.widgets.form import ConfigForm
from fmnist_tui.tui.widgets.preset_list import PresetList


class SetupScreen(AppScreen):
    TITLE = "fmnist-tui"
    SUB_TITLE = "set up a run"
    BINDINGS = [
        Binding("ctrl+r", "start", "Start", priority=True),
        Binding("ctrl+q", "app.quit", "Quit", priority=True),  # q types into the fields here
        # ctrl+b is tmux's prefix: g, as in "go on without me"
        Binding("ctrl+g", "start_background", "Background", tooltip="Start in a background process", priority=True),
        Binding(
            "ctrl+t", "queue", "Queue", tooltip="Add to the queue: it starts when a device is free", priority=True
        ),  # fmt: skip
        Binding("ctrl+s", "save", "Save", tooltip="Save the form as a new preset", priority=True),
        Binding("ctrl+l", "lr_find", "LR find", tooltip="Lightning's lr finder on the form's config", priority=True),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="setup-body"):
            yield PresetList(id="presets")
            with Vertical(id="form-pane"):
                data_hint = f"default: {paths.data_dir(self.fmnist.data_dir)}"
                yield ConfigForm(placeholders={"data_dir": data_hint}, id="form")
                with Horizontal(id="actions"):
                    yield Static("", id="form-status", markup=False)
                    yield Button("Save preset", id="save", compact=True)
                    yield Button("Queue +", id="queue", compact=True)
                    yield Button("Background", id="background", variant="primary", compact=True)
                    yield Button("Start ▶", id="start", variant="success", compact=True)
        yield AppFooter()

    def on_resize(self, event: events.Resize) -> None:
        # Short labels leave the status line (device, ready or what to fix) room to be read.
        self.query_one("#save", Button).label = "Save" if event.size.width < 100 else "Save preset"
        wide = event.size.width >= 100  # the footer names every key: the buttons can be short
        self.query_one("#background", Button).label = "Background" if wide else "Bg ▶"
        queue = self.query_one("#queue", Button)
        queue.label = "Queue +" if wide else "Queue"
        queue.display = event.size.width >= NARROW  # narrower, Start keeps its place (^t still queues)

    def on_mount(self) -> None:
        self.query_one(PresetList).show(self.fmnist.presets, self.fmnist.initial_preset)
        self.query_one(ConfigForm).set_values(self.fmnist.initial_values())
        self.show_device(self.fmnist.device)
        if self.fmnist.device is None:
            self.find_device()

    # -- device: importing torch takes seconds, so never on the first frame ------------
    @work(thread=True, exit_on_error=False, group="device")
    def find_device(self) -> None:
        try:
            from fmnist_tui.engine.runner import device_description, on_gpu

            text, gpu = device_description("auto"), on_gpu("auto")
        except Exception as err:  # noqa: BLE001 - a broken CUDA install must not stop the app
            text, gpu = f"unknown ({type(err).__name__})", None
        self.post_message(DeviceFound(text, gpu))  # non-blocking, even while the app closes

    def on_device_found(self, message: DeviceFound) -> None:
        self.fmnist.device, self.fmnist.has_gpu = message.text, message.gpu
        self.show_device(message.text)

    def show_device(self, device: str | None) -> None:
        self._device = device or "finding device…"
        self._update_status()

    # -- presets and form -----------------------------------------------------------
    @on(OptionList.OptionSelected, "#preset-options")
    def _preset_chosen(self, event: OptionList.OptionSelected) -> None:
        preset = self.fmnist.presets.presets.get(event.option.id or "")
        if preset:
            self.query_one(ConfigForm).set_values(preset.config.model_dump())
            self.notify(f"Loaded preset {preset.name}", timeout=2)

    @on(ConfigForm.Validated)
    def _validated(self, event: ConfigForm.Validated) -> None:
        start = self.query_one("#start", Button)
        if start.disabled != (event.config is None):
            for button in ("#background", "#queue"):
                self.query_one(button, Button).disabled = event.config is None
            start.disabled = event.config is None
            self.refresh_bindings()  # the footer greys out Start
        self._update_status()

    def _update_status(self) -> None:
        form = self.query_one(ConfigForm)
        status = self.query_one("#form-status", Static)
        device = getattr(self, "_device", "")
        if form.errors:
            keys = ", ".join(k or "form" for k in form.errors)
            status.update(f"✖ fix: {keys}")
            status.add_class("-bad")
        else:
            status.update(f"ready · {device}")
            status.remove_class("-bad")

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("start", "start_background", "queue", "lr_find"):
            return True if self.query_one(ConfigForm).config is not None else None
        return True

    # -- actions ----------------------------------------------------------------------
    @on(Button.Pressed, "#background")
    def action_start_background(self) -> None:
        self.action_start(background=True)

    @on(Button.Pressed, "#queue")
    def action_queue(self) -> None:
        config = self._checked()
        if config is not None:
            self.post_message(QueueRun(config))

    def _checked(self) -> RunConfig | None:
        config = self.query_one(ConfigForm).check()
        if config is None:
            self.notify("Fix the fields marked ✖ first", severity="error")
        return config

    @on(Button.Pressed, "#start")
    def action_start(self, background: bool = False) -> None:
        config = self._checked()
        if config is None:
            return
        if config.for_gpu and self.fmnist.has_gpu is False and config.accelerator != "cpu":
            question = (f"{config.name} is made for a GPU, and there is none here:\n"
                        "on this CPU it would take hours. Start it anyway?")  # fmt: skip

            def answered(yes: bool | None) -> None:
                if yes:
                    self.post_message(StartRun(config, background))

            self.app.push_screen(ConfirmScreen(question, yes="Start anyway", no="Cancel"), answered)
            return
        self.post_message(StartRun(config, background))

    def action_lr_find(self) -> None:
        config = self._checked()
        if config is None:
            return
        if self.fmnist.run_in_progress:  # it would share the device, and the run's log routing
            self.notify("Not while a run is in progress here: the lr finder would share its device and its log.",
                        severity="warning")  # fmt: skip
            return
        if config.for_gpu and self.fmnist.has_gpu is False:
            self.notify(f"{config.name} is made for a GPU and there is none here: its search would take many "
                        "minutes on this CPU (untick for_gpu to search anyway)", severity="warning", timeout=8)  # fmt: skip
            return
        self.app.push_screen(LrFindScreen(config, self.fmnist.data_dir), self._use_lr)

    def _use_lr(self, lr: float | None) -> None:
        if lr is None:
            return
        field = self.query_one(ConfigForm).control("lr")
        field.value = lr_text(lr)  # Input.Changed validates the form again
        field.focus()  # scrolled into view: the change is seen
        self.notify(f"lr set to {lr_text(lr)} (the lr finder's suggestion)", timeout=4)

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        config = self.query_one(ConfigForm).check()
        if config is None:
            self.notify("Fix the fields marked ✖ before saving", severity="error")
            return
        taken = set(self.fmnist.presets.presets)
        self.app.push_screen(PresetNameScreen(config.name, taken), self._save_as)

    def _save_as(self, name: str | None) -> None:
        form = self.query_one(ConfigForm)
        if not name or form.config is None:
            return
        try:
            config = make_config({**form.config.model_dump(), "name": name}, "preset")
            path = save_preset(config, paths.user_presets_dir())
        except (ConfigError, OSError) as err:
            self.notify(f"Could not save the preset: {err}", severity="error", timeout=8)
            return
        self.fmnist.reload_presets()
        self.query_one(PresetList).show(self.fmnist.presets, name)
        form.set_values(config.model_dump())
        self.notify(f"Saved preset {name} to {path}", timeout=6)
