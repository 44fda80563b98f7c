"""Checkpoints written atomically inside the run folder.

Lightning's default writes through a temporary file elsewhere and moves it; across
filesystems that move is a copy that a kill can leave half-done. Here the temporary
file sits next to the target, and a rename (atomic on one filesystem) publishes it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
