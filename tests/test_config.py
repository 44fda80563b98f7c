import pytest

from fmnist_tui.config import ConfigError, make_config, with_overrides
from fmnist_tui.overrides import parse_set_items
from fmnist_tui.presets import load_file, load_presets, save_preset


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"lr": "0.1"}, "lr: '0.1' is not a number; allowed: a number above 0, at most 10"),
        ({"lr": 0}, "lr: 0 is too small; allowed: a number above 0, at most 10"),
        ({"lr": 11.0}, "lr: 11.0 is too big; allowed: a number above 0, at most 10"),
        ({"lr": float("nan")}, "lr: nan is not a finite number; allowed: a number above 0, at most 10"),
        ({"batch_size": 0}, "batch_size: 0 is too small; allowed: a whole number from 1 to 65536"),
        ({"batch_size": 56_000}, "batch_size: must be at most 55000"),
        ({"epochs": 10**9}, "epochs: 1000000000 is too big; allowed: a whole number from 1 to 10000"),
        ({"model": "vgg"}, "model: unknown value 'vgg'; allowed: one of tutorial_mlp, mlp, cnn, resnet"),
        ({"optimizer": "lion"}, "optimizer: unknown value 'lion'; allowed: one of sgd, adam, adamw"),
        ({"precision": "64"}, "precision: unknown value '64'; allowed: one of 32, bf16-mixed, 16-mixed"),
        ({"colour": "red"}, "colour: unknown key (known keys: name, description, for_gpu, model"),
        ({"epochs": 2.5}, "epochs: 2.5 is not a whole number; allowed: a whole number from 1 to 10000"),
        ({"nesterov": True}, "nesterov: needs optimizer = sgd and momentum > 0"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(values, fragment):
    with pytest.raises(ConfigError) as err:
        make_config(values, "preset.toml")
    assert str(err.value).startswith("preset.toml: ")
    assert fragment in str(err.value)


def test_defaults_and_int_for_float():
    config = make_config({"lr": 1, "precision": 32})
    assert config.lr == 1.0 and config.precision == "32"
    assert config.train_size == 55_000 and config.steps_per_epoch == 860


def test_set_items_parse_like_toml():
    assert parse_set_items(["lr=1e-3", "model=cnn", "epochs=3", "normalize=false"]) == {
        "lr": 1e-3, "model": "cnn", "epochs": 3, "normalize": False,
    }  # fmt: skip
    for bad, fragment in [("lr", "expected KEY=VALUE"), ("nope=1", "unknown key"), ("lr=", "empty value")]:
        with pytest.raises(ConfigError, match=fragment):
            parse_set_items([bad])
    config = with_overrides(make_config({}), parse_set_items(["batch_size=128", "optimizer=adam"]))
    assert (config.batch_size, config.optimizer) == (128, "adam")
    with pytest.raises(ConfigError, match="--set: lr: -1 is too small; allowed: a number above 0, at most 10"):
        with_overrides(config, parse_set_items(["lr=-1"]))


def test_builtin_presets_all_load():
    found = load_presets()
    assert {"tutorial", "mlp", "cnn_fast", "best"} <= set(found.presets)
    assert found.errors == []
    tutorial = found.get("tutorial")
    assert (tutorial.model, tutorial.final_relu, tutorial.optimizer) == ("tutorial_mlp", True, "sgd")
    assert (tutorial.lr, tutorial.momentum, tutorial.batch_size, tutorial.epochs) == (1e-3, 0.0, 64, 10)
    assert (tutorial.val_size, tutorial.normalize) == (5000, False)


def test_broken_preset_files_are_reported_and_the_rest_load(tmp_path):
    (tmp_path / "good.toml").write_text('name = "good"\ndescription = "fine"\nepochs = 2\n')
    (tmp_path / "syntax.toml").write_text('name = "s"\ndescription = "x"\nepochs = \n')
    (tmp_path / "unknown.toml").write_text('name = "u"\ndescription = "x"\nepoch = 2\n')
    (tmp_path / "type.toml").write_text('name = "t"\ndescription = "x"\nlr = "fast"\n')
    (tmp_path / "missing.toml").write_text('name = "m"\n')
    (tmp_path / "zz_dup.toml").write_text('name = "good"\ndescription = "again"\n')
    (tmp_path / "binary.toml").write_bytes(b"name = \xff\xfe\n")
    found = load_presets([tmp_path])
    assert "good" in found.presets and "tutorial" in found.presets
    errors = "\n".join(found.errors)
    assert "syntax.toml: TOML syntax error" in errors and "line 3" in errors
    assert "unknown.toml: epoch: unknown key" in errors
    assert "type.toml: lr: 'fast' is not a number; allowed: a number above 0, at most 10" in errors
    assert "missing.toml: description: required key is missing" in errors
    assert "zz_dup.toml: name 'good' is already used" in errors
    assert "binary.toml: not UTF-8 text" in errors
    assert len(found.errors) == 6


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown preset 'nope' \(known: .*tutorial"):
        load_presets().get("nope")


def test_saved_preset_round_trips(tmp_path):
    config = make_config({"name": "mine", "description": "d", "model": "cnn", "lr": 0.01})
    path = save_preset(config, tmp_path)
    assert load_file(path) == config
    assert "batch_size" not in path.read_text()  # only what differs from the defaults


def test_home_is_expanded_in_data_dir_wherever_it_comes_from(tmp_path, monkeypatch):
    from fmnist_tui.config import check as validate

    monkeypatch.setenv("HOME", str(tmp_path))
    home = str(tmp_path)
    assert make_config({"data_dir": "~/fm"}).data_dir == f"{home}/fm"  # a preset or config.toml
    assert with_overrides(make_config({}), parse_set_items(["data_dir=~/fm"])).data_dir == f"{home}/fm"  # --set
    assert validate({"data_dir": "~/fm"})[0].data_dir == f"{home}/fm"  # the form
    preset = tmp_path / "p.toml"
    preset.write_text('name = "p"\ndescription = "d"\ndata_dir = "~/fm"\n')
    assert load_file(preset).data_dir == f"{home}/fm"
    assert make_config({"data_dir": "data/~x"}).data_dir == "data/~x"  # only a leading ~ means home


@pytest.mark.parametrize("key", ["description", "data_dir"])  # name: letters, digits, _ . - only
def test_text_with_control_characters_is_refused(key):
    with pytest.raises(ConfigError, match=f"{key}: control characters"):
        make_config({key: "x\x1b[2Jy"}, "preset.toml")
