"""The reproducibility card: how a run (and each resume of it) was made, written at its start.

    <run>/card.json   {"version": 1, "segments": [card, ...]}: one card per start and resume

A card holds the command line, the versions of Python and the libraries that decide the
numbers, the device, the sha256 of the data files, the seed and whether deterministic
algorithms were on, the git commit of the working folder when it is a checkout, and the
resolved config. Reading it needs no torch (fmnist_tui/cards.py).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import sys
import threading
from datetime import datetime
from importlib import metadata
from pathlib import Path

from fmnist_tui.cards import FILE, LAUNCHED_BY, PACKAGES, VERSION, read_cards
from fmnist_tui.config import RunConfig
from fmnist_tui.files import write_atomic

HASH_CHUNK = 1 << 20


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def device(accelerator: str) -> dict:
    import torch

    if accelerator != "cpu" and torch.cuda.is_available():
        driver = ""
        try:  # the kernel module's version line: "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15 ..."
            line = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
            driver = next((w for w in line.split() if w[:1].isdigit() and "." in w), "")
        except (OSError, IndexError):
            pass
        return {"kind": "gpu", "name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "driver": driver}  # fmt: skip
    name = platform.processor() or platform.machine()
    try:  # Linux names the CPU model here; platform.processor() is often empty
        name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        pass
    return {"kind": "cpu", "name": name, "cores": os.cpu_count()}


def data_files(config: RunConfig, folder: Path) -> dict:
    """What the run trained on: the four files' sha256, or the synthetic set's recipe."""
    if config.dataset == "synthetic":
        return {"synthetic": {"size": config.synthetic_size, "split_seed": config.split_seed}}
    from fmnist_tui.engine.idx import find_files

    files = find_files(folder) or {}
    return {"folder": str(folder), "sha256": {path.name: sha256(path) for path in files.values()}}


def git_commit(folder: Path) -> dict | None:
    """The commit of the working folder when it is a git checkout (and whether it has changes)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=5,
                              env=env, check=True).stdout.strip()  # fmt: skip

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty, "folder": str(folder)}


def make_card(config: RunConfig, data_folder: Path, step: int = 0) -> dict:
    import torch

    return {
        "started": datetime.now().isoformat(timespec="seconds"), "step": step,
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]), "launched_by": os.environ.get(LAUNCHED_BY),
        "cwd": os.getcwd(),
        "versions": versions(), "device": device(config.accelerator), "data": data_files(config, data_folder),
        "seed": config.seed, "deterministic": torch.are_deterministic_algorithms_enabled(),
        "git": git_commit(Path.cwd()), "config": config.model_dump(),
    }  # fmt: skip


def record(run: Path, config: RunConfig, data_folder: Path, step: int = 0) -> None:
    """Add this start's card to the run's card.json (a card that cannot be read is started anew)."""
    import json

    cards = read_cards(run)
    cards.append(make_card(config, data_folder, step))
    write_atomic(run / FILE, json.dumps({"version": VERSION, "segments": cards}, indent=1, default=str) + "\n")


class Recording(threading.Thread):
    """`record` beside the run: hashing the 55 MB of data takes a second here (1.2 s on 2 cores),
    which the run's start should not wait for. `finish` waits for it and says what went wrong."""

    def __init__(self, run: Path, config: RunConfig, data_folder: Path, step: int) -> None:
        super().__init__(name="card", daemon=True)
        self.args, self.problem = (run, config, data_folder, step), ""

    def run(self) -> None:
        try:
            record(*self.args)
        except Exception as err:  # noqa: BLE001 - a card that cannot be written never fails the run
            self.problem = f"card.json not written: {type(err).__name__}: {err}"

    def finish(self, timeout_s: float = 60.0) -> str:
        self.join(timeout_s)
        return "card.json not written: hashing the data took too long" if self.is_alive() else self.problem
