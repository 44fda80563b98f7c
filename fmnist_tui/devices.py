"""Which GPUs this machine has, without importing torch (the scheduler and `queue add` ask it).

CUDA_VISIBLE_DEVICES, when set, is the answer (its names are passed on as they are, so a
run is pinned to a subset of what the user allowed). Otherwise the NVIDIA driver's own list
in /proc, or `nvidia-smi -L`. The engine counts again with torch before a run starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from fmnist_tui.config import ConfigError, RunConfig

PROC = Path("/proc/driver/nvidia/gpus")


def visible_gpus() -> list[str]:
    """The GPUs as CUDA_VISIBLE_DEVICES names them ("0", "1", ... or UUIDs); [] on a CPU machine."""
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is not None:
        names = [n.strip() for n in chosen.split(",") if n.strip()]
        return [] if names and names[0].startswith("-") else names  # "-1": none
    try:
        count = sum(1 for _ in PROC.iterdir())
    except OSError:
        count = 0
    if not count and shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
            count = sum(1 for line in out.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.SubprocessError):
            count = 0
    return [str(i) for i in range(count)]


def check_runnable(config: RunConfig) -> None:
    """What this machine cannot run is refused when queued, not hours later when its turn comes."""
    check_devices(config)
    if config.num_nodes > 1:
        raise ConfigError("num_nodes: a queued run trains on this machine only; start a several-node run with "
                          "torchrun or SLURM on every node (see the README)")  # fmt: skip


def check_devices(config: RunConfig, gpus: int | None = None) -> None:
    """A GPU config without a GPU, or `devices` beyond what this machine has: one line, before anything
    starts. `gpus`: the count, when the caller has it (the engine asks torch)."""
    gpus = len(visible_gpus()) if gpus is None else gpus
    if (config.accelerator == "gpu" or config.precision == "16-mixed") and gpus == 0:
        what = "accelerator = gpu" if config.accelerator == "gpu" else "precision = 16-mixed"
        raise ConfigError(f"{what} needs a GPU, and none is visible here: "
                          "use accelerator = auto or cpu, precision = 32 or bf16-mixed")  # fmt: skip
    have = per_node(config.model_copy(update={"devices": -1}), gpus)
    if config.devices > have:
        what = (
            f"{have} GPU{'s' if have != 1 else ''}" if on_gpu(config, gpus) else f"{have} CPU cores (one process each)"
        )
        raise ConfigError(f"devices: {config.devices} asked for, and this machine has {what}; "
                          f"allowed: 1 to {have}, or -1 for all")  # fmt: skip


def on_gpu(config: RunConfig, gpus: int) -> bool:
    return config.accelerator != "cpu" and gpus > 0


def per_node(config: RunConfig, gpus: int) -> int:
    """The processes on this machine: `devices`, with -1 as every GPU (on a CPU machine, every core)."""
    if config.devices != -1:
        return config.devices
    return gpus if on_gpu(config, gpus) else os.cpu_count() or 1
