"""The setup screen: presets, the form and its validation, saving a preset, launch errors."""

from __future__ import annotations

import pytest
from textual.widgets import Button, Input, OptionList, Static

from fmnist_tui.config import ConfigError, RunConfig
from fmnist_tui.tui.app import make_app, run_app
from fmnist_tui.tui.screens.modals import PresetNameScreen
from fmnist_tui.tui.widgets.form import ConfigForm, FieldRow



def error_of(app, key: str) -> str:
    return str(app.screen.query_one(f"#row-{key}", FieldRow).query_one(".field-error", Static).render())


async def choose_preset(pilot, name: str) -> None:
    options = pilot.app.screen.query_one("#preset-options", OptionList)
    options.focus()
    options.highlighted = options.get_option_index(name)
    await pilot.press("enter")
    await pilot.pause()


async def type_into(pilot, key: str, text: str) -> None:
    field = pilot.app.screen.query_one(f"#field-{key}", Input)
    field.focus()
    field.clear()
    await pilot.press(*text)
    await pilot.pause()


async def test_form_has_every_field_with_help(presets_dir):
    app = make_app(device="CPU (2 cores)", presets_dirs=[presets_dir])
    async with app.run_test(size=(80, 24)):
        for key, info in RunConfig.model_fields.items():
            row = app.screen.query_one(f"#row-{key}", FieldRow)
            assert str(row.query_one(".field-help", Static).render()) == info.description


async def test_choose_preset_bad_value_disables_start(presets_dir):
    app = make_app(device="CPU (2 cores)", presets_dirs=[presets_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await choose_preset(pilot, "tiny")
        form = app.screen.query_one(ConfigForm)
        assert form.values()["synthetic_size"] == 400 and form.config is not None
        start = app.screen.query_one("#start", Button)
        assert not start.disabled

        await type_into(pilot, "lr", "abc")
        assert "valid number" in error_of(app, "lr")
        assert start.disabled and form.config is None
        assert "lr" in str(app.screen.query_one("#form-status", Static).render())

        await type_into(pilot, "lr", "0")
        assert "greater than 0" in error_of(app, "lr")
        await type_into(pilot, "lr", "0.01")
        assert error_of(app, "lr") == "" and not start.disabled

        # a model-level error names its key first and lands on that field
        await type_into(pilot, "batch_size", "301")
        assert "must be at most 300" in error_of(app, "batch_size")
        assert start.disabled
        await pilot.press("ctrl+r")  # refused, nothing starts
        assert app.state.config is None
        await type_into(pilot, "batch_size", "")
        assert "required" in error_of(app, "batch_size")
        await type_into(pilot, "batch_size", "64")
        assert not start.disabled


async def test_save_preset_refuses_existing_name(presets_dir, private_folders, wait):
    app = make_app(device="CPU (2 cores)", presets_dirs=[presets_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await choose_preset(pilot, "tiny")
        await type_into(pilot, "epochs", "7")
        await pilot.press("ctrl+s")
        await wait(pilot, lambda: isinstance(app.screen, PresetNameScreen))
        name = app.screen.query_one("#preset-name", Input)
        assert name.value == "tiny-2"  # a free name is suggested
        name.value = "tiny"
        await pilot.pause()
        assert "already exists" in str(app.screen.query_one("#name-error", Static).render())
        assert app.screen.query_one("#ok", Button).disabled
        name.value = "tiny7"
        await pilot.pause()
        await pilot.press("enter")
        await wait(pilot, lambda: not isinstance(app.screen, PresetNameScreen))
        saved = private_folders / "user-presets" / "tiny7.toml"
        assert saved.is_file() and "epochs = 7" in saved.read_text()
        assert "tiny7" in app.presets.presets


async def test_preset_errors_are_shown_not_fatal(presets_dir):
    (presets_dir / "broken.toml").write_text('name = "broken"\ndescription = "x"\nlr = -1\n')
    app = make_app(device="CPU (2 cores)", presets_dirs=[presets_dir])
    async with app.run_test(size=(80, 24)):
        errors = str(app.screen.query_one("#preset-errors", Static).render())
        assert "broken.toml" in errors and "lr" in errors
        assert "tiny" in app.presets.presets


async def test_device_is_found_in_a_worker(presets_dir, wait):
    app = make_app(presets_dirs=[presets_dir])  # no device given: the setup screen looks it up
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot, lambda: app.device is not None, timeout=60)
        assert "CPU" in app.device or "GiB" in app.device
        await pilot.pause()
        assert app.device in str(app.screen.query_one("#form-status", Static).render())


async def test_start_with_bad_override_is_reported(presets_dir):
    app = make_app(device="CPU", presets_dirs=[presets_dir], preset="tiny", start=True, overrides={"lr": -1.0})
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert app.state.config is None  # nothing started
        assert any("lr" in n.message for n in app._notifications)
        assert "greater than 0" in error_of(app, "lr")


def test_run_app_rejects_unknown_preset_and_bad_values(presets_dir):
    with pytest.raises(ConfigError, match="unknown preset"):
        run_app("nope", False, None, None, [presets_dir], {})
    with pytest.raises(ConfigError, match="batch_size"):
        run_app("tiny", True, None, None, [presets_dir], {"batch_size": 10_000})


async def test_user_preset_folder_is_listed(presets_dir, private_folders, make_preset):
    make_preset(private_folders / "user-presets", "mine", "Saved earlier", epochs=2)
    app = make_app(device="CPU", presets_dirs=[presets_dir])
    async with app.run_test(size=(80, 24)):
        assert "mine" in app.presets.presets
