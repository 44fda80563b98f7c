"""Finding, checking and reading Fashion-MNIST's raw IDX files (torch, no torchvision)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# magic number -> number of dimensions, for unsigned bytes (type code 0x08)
MAGIC = {"images": 0x00000803, "labels": 0x00000801}


class DataError(RuntimeError):
    """The data set cannot be found, fetched or read; the message says what to do."""


def candidate_folders(root: Path) -> list[Path]:
    """torchvision's layout (root/FashionMNIST/raw) first, then the files directly in root."""
    return [root / "FashionMNIST" / "raw", root]


def find_files(root: Path) -> dict[str, Path] | None:
    """The four files in one folder, each plain or .gz; None if any is missing."""
    for folder in candidate_folders(root):
        found = {}
        for key, name in FILES.items():
            for path in (folder / name, folder / f"{name}.gz"):
                if path.is_file():
                    found[key] = path
                    break
        if len(found) == len(FILES):
            return found
    return None


def read_idx(path: Path, kind: str) -> torch.Tensor:
    """An IDX file as a uint8 tensor, with its header checked against its length."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    if len(data) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if magic != MAGIC[kind]:
        raise DataError(f"{path}: wrong magic number {magic:#010x} for {kind} (expected {MAGIC[kind]:#010x})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(f"{path}: {len(data)} bytes but its header {shape} needs {expected} (truncated or corrupt)")
    if kind == "images" and shape[1:] != (28, 28):
        raise DataError(f"{path}: images are {shape[1:]}, expected 28x28")
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
    return torch.from_numpy(array.copy())


def read_all(files: dict[str, Path]) -> dict[str, torch.Tensor]:
    out = {key: read_idx(path, "images" if key.endswith("images") else "labels") for key, path in files.items()}
    for split in ("train", "test"):
        n_img, n_lab = len(out[f"{split}_images"]), len(out[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(f"{files[f'{split}_images']}: {n_img} images but {n_lab} labels")
        if n_lab and int(out[f"{split}_labels"].max()) > 9:
            raise DataError(f"{files[f'{split}_labels']}: labels above 9")
    return out


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as IDX (used by tests and the synthetic data set's fixtures)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x00000800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
