import gzip

import pytest
import torch

from fmnist_tui.config import make_config
from fmnist_tui.engine import data as data_mod
from fmnist_tui.engine.data import Augment, FashionData, load_fashion
from fmnist_tui.engine.idx import FILES, DataError
from tests.conftest import TINY, write_fake_fashion


@pytest.fixture
def no_network(monkeypatch):
    """torchvision's downloader, made to fail as it does offline, and counted."""
    calls = []

    class Offline:
        def __init__(self, root, train, download):
            calls.append(root)
            raise RuntimeError(
                "Error downloading train-images-idx3-ubyte.gz: <urlopen error [Errno 101] Network is unreachable>"
            )

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    return calls


@pytest.mark.parametrize("layout", ["torchvision", "flat", "flat-gz"])
def test_loads_both_layouts_without_network(tmp_path, layout, no_network):
    folder = tmp_path / "FashionMNIST" / "raw" if layout == "torchvision" else tmp_path
    write_fake_fashion(folder, n_train=300, n_test=60, gz=layout.endswith("gz"))
    raw = load_fashion(tmp_path)
    assert raw["train_images"].shape == (300, 28, 28) and raw["train_images"].dtype == torch.uint8
    assert raw["test_labels"].shape == (60,)
    assert no_network == []


def test_missing_data_error_says_where_what_and_how(tmp_path, no_network):
    with pytest.raises(DataError) as err:
        load_fashion(tmp_path / "empty")
    message = str(err.value)
    assert no_network, "it should have tried to download"
    assert str(tmp_path / "empty" / "FashionMNIST" / "raw") in message
    assert "downloading it failed (Error downloading" in message
    assert "--data-dir" in message and "FMNIST_TUI_DATA_DIR" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (lambda p: p.write_bytes(b"\x00\x00\x08\x01" + p.read_bytes()[4:]), "wrong magic number"),
        (lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated or corrupt"),
        (lambda p: p.write_bytes(b"\x00\x00"), "too short"),
    ],
)
def test_corrupt_files_are_reported_before_training(tmp_path, damage, fragment, no_network):
    write_fake_fashion(tmp_path)
    damage(tmp_path / FILES["train_images"])
    with pytest.raises(DataError, match=fragment):
        load_fashion(tmp_path)


def test_images_and_labels_must_agree(tmp_path, no_network):
    write_fake_fashion(tmp_path, n_train=300)
    other = write_fake_fashion(tmp_path / "other", n_train=200)
    (tmp_path / FILES["train_labels"]).write_bytes((other / FILES["train_labels"]).read_bytes())
    with pytest.raises(DataError, match="300 images but 200 labels"):
        load_fashion(tmp_path)


def test_truncated_gzip_is_an_error(tmp_path, no_network):
    write_fake_fashion(tmp_path, gz=True)
    path = tmp_path / (FILES["test_images"] + ".gz")
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError, match="cannot read"):
        load_fashion(tmp_path)


def test_split_batches_and_normalisation(tmp_path, no_network):
    write_fake_fashion(tmp_path, n_train=300, n_test=60)
    config = make_config({"val_size": 50, "batch_size": 64, "eval_batch_size": 100})
    config = config.model_copy(update={"dataset": "fashion-mnist"})
    dm = FashionData(config, tmp_path)
    dm.load()
    assert dm.sizes == {"train": 250, "val": 50, "test": 60}
    batches = dm.train_dataloader().batches  # one epoch; Lightning gets them in groups of steps
    assert len(batches) == 4
    seen = [(x.shape, y.shape, x.dtype) for x, y in batches]
    assert seen[0] == (torch.Size([64, 1, 28, 28]), torch.Size([64]), torch.float32)
    assert sum(s[1][0] for s in seen) == 250
    x = torch.cat([b[0] for b in dm.train_dataloader().batches])
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05
    # the split is fixed by split_seed
    again = FashionData(config, tmp_path)
    again.load()
    assert torch.equal(again._cpu["val_y"], dm._cpu["val_y"])


def test_tutorial_keeps_plain_0_to_1_pixels(tmp_path, no_network):
    write_fake_fashion(tmp_path)
    config = make_config({"val_size": 50, "normalize": False})
    dm = FashionData(config, tmp_path)
    dm.load()
    x, _ = next(iter(dm.val_dataloader()))
    assert x.min() >= 0 and x.max() <= 1


def test_shuffle_depends_on_seed_and_epoch_only():
    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1).expand(100, 28, 28).contiguous()
    labels = torch.zeros(100, dtype=torch.uint8)
    ident = lambda x: x  # noqa: E731
    a = data_mod.DeviceBatches(images, labels, 10, ident, True, seed=1, position_fn=lambda: (3, 0))
    b = data_mod.DeviceBatches(images, labels, 10, ident, True, seed=1, position_fn=lambda: (3, 0))
    first = torch.cat([x[:, 0, 0] for x, _ in a])
    assert torch.equal(first, torch.cat([x[:, 0, 0] for x, _ in b]))
    assert sorted(first.tolist()) == list(range(100))
    resumed = data_mod.DeviceBatches(images, labels, 10, ident, True, seed=1, position_fn=lambda: (3, 4))
    assert torch.equal(torch.cat([x[:, 0, 0] for x, _ in resumed]), first[40:])  # carries on after batch 4


def test_step_groups_cover_every_batch_once():
    groups = list(data_mod.StepGroups(list(range(19)), 8))
    assert [len(g) for g in groups] == [8, 8, 3] and sum(groups, []) == list(range(19))
    assert len(data_mod.StepGroups(list(range(19)), 8)) == 3


def test_augment_keeps_shapes_and_content():
    x = torch.rand(16, 1, 28, 28)
    out = Augment("crop_flip")(x)
    assert out.shape == x.shape
    flipped = Augment("flip")(x)
    assert all(torch.equal(f, o) or torch.equal(f, o.flip(-1)) for f, o in zip(flipped, x, strict=True))


def test_erasing_blanks_one_rectangle_in_about_half_the_images():
    torch.manual_seed(0)
    aug = Augment("crop_flip_erase")
    mask = aug.erase_mask(4000, 28, 28, "cpu")[:, 0]
    hit = mask.flatten(1).any(1)
    assert 0.45 < hit.float().mean() < 0.55
    area = mask.flatten(1).sum(1)[hit].float() / (28 * 28)
    assert area.min() >= 0.01 and area.max() <= 0.40
    for m in mask[hit][:50]:  # each erased region is one solid rectangle
        rows, cols = m.any(1).nonzero()[:, 0], m.any(0).nonzero()[:, 0]
        assert m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
        assert m.sum() == len(rows) * len(cols)
    x = torch.rand(64, 1, 28, 28) + 1  # no zeros before erasing
    out = aug(x)
    assert out.shape == x.shape and (out == 0).any() and not (out == 0).all()


def test_synthetic_is_deterministic_and_labelled():
    a, b = data_mod.make_synthetic(600, 5), data_mod.make_synthetic(600, 5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert set(a["train_labels"].tolist()) == set(range(10))
    assert a["test_images"].shape == (100, 28, 28) and a["train_images"].dtype == torch.uint8
    assert not torch.equal(a["train_images"], data_mod.make_synthetic(600, 6)["train_images"])


def test_every_shipped_preset_runs_on_synthetic_data():
    from fmnist_tui.config import with_overrides
    from fmnist_tui.presets import load_presets

    for name, preset in load_presets().presets.items():
        config = with_overrides(preset.config, {"dataset": "synthetic"})  # the README's demo path
        assert config.train_size == 55_000, name


@pytest.mark.slow
def test_the_mlp_preset_learns_the_synthetic_set_in_two_epochs(tmp_path):
    from fmnist_tui.config import with_overrides
    from fmnist_tui.engine.events import EpochEnd
    from fmnist_tui.engine.runner import run
    from fmnist_tui.presets import load_presets

    config = with_overrides(load_presets().get("mlp"), {"dataset": "synthetic", "epochs": 2, "accelerator": "cpu"})
    epochs = []
    end = run(config, lambda e: epochs.append(e) if isinstance(e, EpochEnd) else None, runs_dir=tmp_path)
    assert end.status == "finished" and max(e.val_acc for e in epochs) > 0.8


def test_gz_files_written_are_real_gzip(tmp_path):
    write_fake_fashion(tmp_path, gz=True)
    with gzip.open(tmp_path / (FILES["train_labels"] + ".gz")) as f:
        assert f.read(4) == b"\x00\x00\x08\x01"


def test_tiny_config_fits():
    assert make_config(TINY).train_size == 300
