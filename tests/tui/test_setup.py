"""The setup screen: presets, the form and its validation, saving a preset, launch errors."""

from __future__ import annotations

import pytest
from textual.widgets import Button, Input, OptionList, Select, Static

from fmnist_tui.config import ConfigError, RunConfig
from fmnist_tui.tui.app import make_app, run_app
from fmnist_tui.tui.screens.modals import PresetNameScreen
from fmnist_tui.tui.widgets.form import ConfigForm, FieldRow

TINY_VALUES = dict(dataset="synthetic", synthetic_size=400, val_size=100, batch_size=32, epochs=2)


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
        assert "'abc' is not a number; allowed: a number above 0, at most 10" in error_of(app, "lr")
        assert start.disabled and form.config is None
        assert "lr" in str(app.screen.query_one("#form-status", Static).render())

        await type_into(pilot, "lr", "0")
        assert "0 is too small; allowed: a number above 0" in error_of(app, "lr")
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


async def test_save_preset_dialog_shows_the_whole_folder(presets_dir, private_folders, monkeypatch, wait):
    deep = private_folders / "a-rather-long-home-folder-name" / ".local" / "share" / "fmnist-tui" / "presets"
    monkeypatch.setattr("fmnist_tui.paths.user_presets_dir", lambda: deep)
    app = make_app(device="CPU (2 cores)", presets_dirs=[presets_dir], preset="tiny")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+s")
        await wait(pilot, lambda: isinstance(app.screen, PresetNameScreen))
        await pilot.pause()
        label, dialog = app.screen.query_one(".dialog-text"), app.screen.query_one(".dialog")
        assert dialog.content_region.contains_region(label.region), "drawn inside the dialog, not cut by it"
        drawn = "".join(strip.text for strip in label.render_lines(label.content_region.reset_offset))
        assert str(deep) in drawn.replace(" ", ""), drawn  # wrapped onto its own lines


async def test_options_the_model_does_not_use_are_greyed_out_with_the_reason(presets_dir):
    app = make_app(device="CPU", presets_dirs=[presets_dir], preset="tiny")  # model mlp, optimiser adam
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.screen.query_one(ConfigForm)

        def unused(key: str) -> str:
            row = form.query_one(f"#row-{key}", FieldRow)
            text = str(row.query_one(".field-unused", Static).render())
            return text if row.has_class("-unused") and form.control(key).disabled else ""

        assert unused("final_relu") == "not used: only with model = tutorial_mlp; model is mlp"
        assert unused("width").startswith("not used: only with model = cnn or resnet")
        assert unused("momentum") and unused("data_dir") and not unused("hidden") and not unused("synthetic_size")
        form.control("model").value = "cnn"
        await pilot.pause()
        assert unused("hidden") == "not used: only with model = mlp; model is cnn" and not unused("width")
        form.control("model").value = "tutorial_mlp"
        await pilot.pause()
        assert not unused("final_relu") and unused("dropout") and unused("hidden")
        # A wrong value stays editable, used or not: it must be put right before anything starts.
        form.set_values({**form.values(), "hidden": 3})
        await pilot.pause()
        assert not unused("hidden") and "hidden" in form.errors
        assert error_of(app, "hidden").endswith(
            "(unused here: only with model = mlp; model is tutorial_mlp, but it is saved with the rest)"
        )


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


async def test_start_with_bad_override_is_reported(presets_dir, wait):
    app = make_app(device="CPU", presets_dirs=[presets_dir], preset="tiny", start=True, overrides={"lr": -1.0})
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot, lambda: any("lr" in n.message for n in app._notifications), timeout=5)
        assert app.state.config is None  # nothing started
        assert "-1.0 is too small" in error_of(app, "lr")


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


# -- bad input in the form: a message at the field saying what is allowed, Start disabled ------

BAD_INPUT = {  # field -> (text, what the error at the field must say)
    "lr": [
        ("", "required; allowed: a number above 0, at most 10"),
        ("-0.5", "-0.5 is too small; allowed: a number above 0, at most 10"),
        ("10.5", "10.5 is too big; allowed: a number above 0, at most 10"),
        ("1e9", "1000000000.0 is too big"),
        ("nan", "nan is not a finite number"),
        ("0,01", "'0,01' is not a number"),
    ],
    "batch_size": [
        ("0", "0 is too small; allowed: a whole number from 1 to 65536"),
        ("-64", "-64 is too small"),
        ("sixty", "'sixty' is not a whole number"),
        ("32.5", "32.5 is not a whole number"),
        ("100000", "100000 is too big; allowed: a whole number from 1 to 65536"),
        # larger than the data set: 60,000 images, 5,000 held out for validation
        ("60000", "must be at most 55000, the training split of fashion-mnist"),
    ],
    "epochs": [
        ("", "required; allowed: a whole number from 1 to 10000"),
        ("0", "0 is too small; allowed: a whole number from 1 to 10000"),
        ("-3", "-3 is too small"),
        ("1000000000", "1000000000 is too big; allowed: a whole number from 1 to 10000"),
        ("ten", "'ten' is not a whole number"),
    ],
    "name": [
        ("", "required; allowed: letters, digits, _ . - (64 at most), starting with a letter or digit"),
        ("my run", "'my run' is not allowed; allowed: letters, digits"),
        ("x" * 65, "too long (65 characters)"),
    ],
}


@pytest.mark.parametrize("key", list(BAD_INPUT))
async def test_bad_input_is_reported_at_the_field_and_nothing_starts(presets_dir, key):
    app = make_app(device="CPU", presets_dirs=[presets_dir], preset="tiny",
                   overrides={"dataset": "fashion-mnist", "val_size": 5_000})  # fmt: skip
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.screen.query_one(ConfigForm)
        field, start = form.control(key), app.screen.query_one("#start", Button)
        good = field.value
        assert form.config is not None and not start.disabled
        for text, expected in BAD_INPUT[key]:
            field.value = text
            await pilot.pause()
            assert expected in error_of(app, key), (text, error_of(app, key))
            assert form.config is None and start.disabled, text
            assert key in str(app.screen.query_one("#form-status", Static).render())
        await pilot.press("ctrl+r")  # refused: nothing starts
        assert app.state.config is None and app.is_running
        field.value = good
        await pilot.pause()
        assert error_of(app, key) == "" and not start.disabled
        if key == "name":
            form.control("description").value = "x" * 201
            await pilot.pause()
            assert "too long (201 characters); allowed: one line of text, 200 characters at most" in error_of(
                app, "description"
            )


async def test_text_that_is_not_utf8_is_reported_not_a_crash(presets_dir, keys):
    """A byte that is not UTF-8 arrives as a lone surrogate (0xFF -> U+DCFF, see tui/terminal.py)."""
    app = make_app(device="CPU", presets_dirs=[presets_dir], preset="tiny")
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.screen.query_one(ConfigForm)
        form.control("dataset").value = "fashion-mnist"  # data_dir is greyed out for synthetic data
        await pilot.pause()
        for key in ("name", "description", "data_dir"):
            field = form.control(key)
            field.focus()
            field.action_end()
            before = field.value
            await keys(pilot, "\udcff")  # typed (pilot.press cannot send it): a plain Input would drop it unseen
            await pilot.pause()
            assert field.value == before + "\udcff", key
            assert "not valid UTF-8 text" in error_of(app, key), key
            assert form.config is None and app.screen.query_one("#start", Button).disabled
            await pilot.press("ctrl+r")
            assert app.state.config is None
            assert "\ufffd" in app.export_screenshot()  # drawing it works: as U+FFFD
            assert "\ufffd" in field.render_line(0).text, key
            await pilot.press("backspace")
            assert field.value == before and error_of(app, key) == "", key
        field.value = "a\udce9b"  # pasted or set, in the middle of the text
        await pilot.pause()
        assert "not valid UTF-8 text" in error_of(app, "data_dir")
        assert app.is_running


async def test_unknown_choices_and_wrong_types_from_set_are_reported(presets_dir):
    overrides = {"model": "transformer", "optimizer": "rmsprop", "precision": 64, "normalize": 5}
    app = make_app(device="CPU", presets_dirs=[presets_dir], preset="tiny", overrides=overrides)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        form = app.screen.query_one(ConfigForm)
        assert "unknown value 'transformer'; allowed: one of tutorial_mlp, mlp, cnn, resnet" in error_of(app, "model")
        assert "unknown value 'rmsprop'; allowed: one of sgd, adam, adamw" in error_of(app, "optimizer")
        assert "unknown value '64'; allowed: one of 32, bf16-mixed, 16-mixed" in error_of(app, "precision")
        assert "5 is not allowed; allowed: true or false" in error_of(app, "normalize")
        assert form.config is None and app.screen.query_one("#start", Button).disabled
        model = form.control("model")
        assert model.value is Select.NULL  # shown blank, not silently replaced by an option
        model.value = "cnn"  # choosing any option fixes that field only
        await pilot.pause()
        assert error_of(app, "model") == "" and "rmsprop" in error_of(app, "optimizer")


async def test_unknown_choice_with_start_starts_nothing(presets_dir, wait):
    app = make_app(device="CPU", presets_dirs=[presets_dir], preset="tiny", start=True, overrides={"model": "gpt"})
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot, lambda: any("unknown value 'gpt'" in n.message for n in app._notifications), timeout=5)
        assert app.state.config is None


@pytest.mark.parametrize("preset", ["tiny", None])
def test_run_app_rejects_unknown_names_and_bad_text_before_drawing(presets_dir, preset):
    with pytest.raises(ConfigError, match=r"--set: model: unknown value 'transformer'; allowed: one of tutorial_mlp"):
        run_app(preset, False, None, None, [presets_dir], {"model": "transformer"})
    with pytest.raises(ConfigError, match="optimizer: unknown value 'rmsprop'"):
        run_app(preset, False, None, None, [presets_dir], {"optimizer": "rmsprop"})
    with pytest.raises(ConfigError, match="description: not valid UTF-8 text"):
        # "café" in Latin-1 on the command line: Python keeps the byte 0xE9 as U+DCE9
        run_app(preset, False, None, None, [presets_dir], {"description": "caf\udce9"})


def test_the_terminal_input_decoder_keeps_bytes_that_are_not_utf8(monkeypatch):
    """Textual decodes keys as strict UTF-8: one stray byte used to crash the app (see tui/terminal.py)."""
    from textual._xterm_parser import XTermParser
    from textual.drivers import linux_driver

    from fmnist_tui.tui.terminal import tolerate_non_utf8_input

    monkeypatch.setattr(linux_driver, "getincrementaldecoder", linux_driver.getincrementaldecoder)  # restored after
    tolerate_non_utf8_input()
    decode = linux_driver.getincrementaldecoder("utf-8")().decode
    text = decode(b"caf\xe9 \xc3") + decode(b"\xa9", final=True)  # Latin-1 e-acute; then UTF-8 split across reads
    assert text == "caf\udce9 é"
    keys = [e.character for e in XTermParser().feed(text)]
    assert "\udce9" in keys  # a key event the form can take, not an exception in the input thread


# -- preset files: every kind of broken file is listed; the others load; the app starts -------


async def test_broken_preset_files_are_listed_and_the_rest_load(tmp_path, no_builtin_presets, make_preset, wait):
    folder = tmp_path / "many-presets"
    folder.mkdir()
    make_preset(folder, "good", "Loads fine", **TINY_VALUES)
    make_preset(folder, "also-good", "Loads fine too", **TINY_VALUES)
    (folder / "syntax.toml").write_text('name = "syntax"\ndescription = "x"\nlr = 0.1\nepochs = = 3\n')
    (folder / "unknown-key.toml").write_text('name = "unknown-key"\ndescription = "x"\nlearning_rate = 0.1\n')
    (folder / "types.toml").write_text('name = "types"\ndescription = "x"\nepochs = "ten"\n')
    (folder / "no-name.toml").write_text('description = "no name"\nlr = 0.1\n')
    (folder / "zz-same-name.toml").write_text('name = "good"\ndescription = "a second preset named good"\n')
    (folder / "a-folder.toml").mkdir()  # unreadable as a file (chmod 000 does not stop root)
    (folder / "latin1.toml").write_bytes(b'name = "latin1"\ndescription = "caf\xe9"\n')
    (folder / "bad-model.toml").write_text('name = "bad-model"\ndescription = "x"\nmodel = "transformer"\n')

    app = make_app(device="CPU", presets_dirs=[folder])
    async with app.run_test(size=(80, 24)) as pilot:
        assert set(app.presets.presets) == {"good", "also-good"}
        assert app.presets.presets["good"].path.name == "good.toml"  # the first one wins
        shown = str(app.screen.query_one("#preset-errors", Static).render())
        expected = {
            "syntax.toml": "line 4", "unknown-key.toml": "learning_rate: unknown key",
            "types.toml": "epochs", "no-name.toml": "name: required key is missing",
            "zz-same-name.toml": "already used by", "a-folder.toml": "cannot read",
            "latin1.toml": "not UTF-8", "bad-model.toml": "model",
        }  # fmt: skip
        assert "8 preset files not loaded" in shown
        assert f"{folder}/\n" in shown  # the folder once, then its files
        for name, problem in expected.items():
            (line,) = [e for e in app.presets.errors if f"{folder}/{name}:" in e]
            (listed,) = [s for s in shown.splitlines() if s.startswith(f"• {name}: ")]
            assert problem in line and problem in listed, (name, line, listed)
        options = app.screen.query_one("#preset-options", OptionList)
        assert options.option_count == 2
        await choose_preset(pilot, "also-good")
        assert app.screen.query_one(ConfigForm).config.name == "also-good"
        assert not app.screen.query_one("#start", Button).disabled


async def test_gpu_presets_are_marked_and_starting_one_without_a_gpu_asks_first(presets_dir, make_preset, wait, keys):
    from fmnist_tui.tui.screens.modals import ConfirmScreen
    from fmnist_tui.tui.screens.run import RunScreen

    make_preset(presets_dir, "big", "Made for a GPU", for_gpu=True, **{**TINY_VALUES, "epochs": 1})
    app = make_app(device="CPU (2 cores)", presets_dirs=[presets_dir], preset="big")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        options = app.screen.query_one("#preset-options")
        prompts = {
            options.get_option_at_index(i).id: str(options.get_option_at_index(i).prompt)
            for i in range(options.option_count)
        }
        assert "GPU preset" in prompts["big"] and "GPU preset" not in prompts["tiny"]
        await keys(pilot, "ctrl+r")
        await wait(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "made for a GPU, and there is none here" in str(app.screen.query_one(".dialog-text").render())
        await pilot.press("n")
        await wait(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert app.state.config is None  # nothing started
        await keys(pilot, "ctrl+r")
        await wait(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait(pilot, lambda: isinstance(app.screen, RunScreen) and app.state.ended is not None, timeout=60)


def test_the_app_opens_on_the_quickstart_preset(presets_dir):
    app = make_app(device="CPU", presets_dirs=[presets_dir])
    assert app.initial_preset == "tutorial"
