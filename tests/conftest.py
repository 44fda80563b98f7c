"""Shared fixtures: isolated per-user folders, tiny configs and generated IDX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fmnist_tui.config import make_config

TINY = {
    "name": "tiny", "description": "a few hundred synthetic images", "dataset": "synthetic",
    "synthetic_size": 400, "val_size": 100, "batch_size": 32, "epochs": 2, "model": "mlp",
    "optimizer": "adam", "lr": 3e-3, "accelerator": "cpu",
}  # fmt: skip


@pytest.fixture(autouse=True)
def isolated_folders(tmp_path_factory, monkeypatch):
    """Never read or write the real per-user folders, never download."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("FMNIST_TUI_PRESETS_DIR", str(home / "presets"))
    monkeypatch.setenv("FMNIST_TUI_RUNS_DIR", str(home / "runs"))
    monkeypatch.setenv("FMNIST_TUI_DATA_DIR", str(home / "data"))
    return home


@pytest.fixture
def tiny_config():
    return make_config(TINY)


def write_fake_fashion(folder: Path, n_train: int = 300, n_test: int = 60, gz: bool = False) -> Path:
    """Four IDX files with learnable (class-dependent brightness) images."""
    from fmnist_tui.engine.idx import FILES, write_idx

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = (labels[:, None, None] * 20 + rng.integers(0, 40, (n, 28, 28))).astype(np.uint8)
        write_idx(folder / (FILES[f"{split}_images"] + suffix), images)
        write_idx(folder / (FILES[f"{split}_labels"] + suffix), labels)
    return folder


@pytest.fixture
def full_disk_at(monkeypatch):
    """`full_disk_at("last.ckpt")`: from then on, writing that file meets a full disk (ENOSPC from
    /dev/full, through the temporary file `files.write_atomic` opens for it)."""
    import os
    import tempfile

    from fmnist_tui import files

    armed: set[str] = set()
    real = tempfile.mkstemp

    def mkstemp(dir, prefix, suffix):
        if prefix.strip(".") not in armed:
            return real(dir=dir, prefix=prefix, suffix=suffix)
        link = Path(dir) / f"{prefix}on-a-full-disk{suffix}"
        link.symlink_to("/dev/full")
        return os.open(link, os.O_WRONLY), str(link)

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    return armed.add


@pytest.fixture
def runs(tmp_path):
    """A runs folder whose queue's scheduler lock this test holds, as a running scheduler would:
    adding to the queue starts no process."""
    import fcntl
    import os

    root = tmp_path / "queue-runs"
    (root / ".queue").mkdir(parents=True)
    fd = os.open(root / ".queue" / "scheduler.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield root
    os.close(fd)
