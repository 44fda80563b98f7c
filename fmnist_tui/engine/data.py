"""Fashion-MNIST (or a synthetic stand-in) held as uint8 tensors on the training device.

The whole set is 47 MB, so there is no DataLoader, no worker process and no per-image
Python: each epoch slices batches from a permutation, and scaling, normalisation and
augmentation run per batch on the device.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from fmnist_tui.config import RunConfig
from fmnist_tui.engine.idx import DataError, candidate_folders, find_files, read_all

log = logging.getLogger("fmnist_tui.data")

STEPS_PER_CALL = 8  # optimiser steps per Lightning training_step call (see StepGroups)


def seed_device(device: torch.device, seed: int) -> None:
    """Seed the generator that random ops on `device` draw from. (torch.manual_seed seeds every
    backend there is: 90 µs a call here, against 1 µs for the one generator in use.)"""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.default_generators[index].manual_seed(seed)
    elif device.type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


def position_seed(seed: int, *position: int | str) -> int:
    """A seed for one place in a run (a batch, a step): the same there whatever came before,
    so a run stopped and resumed anywhere draws exactly the random numbers it would have."""
    value = seed
    for part in position:
        value = (value * 1_000_003 + (part if isinstance(part, int) else sum(map(ord, part)))) % (2**63 - 1)
    return value


def download(root: Path) -> None:
    """Fetch through torchvision; any failure becomes one DataError saying what to do."""
    looked = " and ".join(str(p) for p in candidate_folders(root))
    try:
        root.mkdir(parents=True, exist_ok=True)
        from torchvision.datasets import FashionMNIST

        chatter = io.StringIO()  # torchvision prints progress; keep it off the terminal
        with contextlib.redirect_stdout(chatter):
            for train in (True, False):
                FashionMNIST(root=str(root), train=train, download=True)
        for line in chatter.getvalue().splitlines():
            if line.strip():
                log.info(line.strip())
    except Exception as err:  # noqa: BLE001 - network, disk, checksum: all end the same way for the user
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        reason = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"  # torchvision: what, then why
        raise DataError(
            f"Fashion-MNIST is not in {looked}, and downloading it failed ({reason}). "
            f"Copy the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
            f"t10k-labels-idx1-ubyte, .gz or not) into {root}, or point --data-dir or FMNIST_TUI_DATA_DIR at a folder holding them."
        ) from None


def load_fashion(root: Path, allow_download: bool = True) -> dict[str, torch.Tensor]:
    files = find_files(root)
    if files is None:
        if not allow_download:
            raise DataError(f"Fashion-MNIST is not in {root}")
        download(root)
        files = find_files(root)
        if files is None:
            raise DataError(f"downloaded Fashion-MNIST but cannot find its files under {root}")
    return read_all(files)


def make_synthetic(size: int, seed: int) -> dict[str, torch.Tensor]:
    """Fashion-MNIST's stand-in for demos and tests: `size` training images and a sixth as many test images.

    Ten classes of sharp random shapes on a shared silhouette, each image shifted by up to
    two pixels, scaled in brightness and noisy, with 10% of the labels drawn at random: a
    net learns it as it learns the real set (the `mlp` preset passes 90% in one epoch, the
    quickstart MLP climbs slowly), and nothing learns it perfectly. 70,000 images take about
    a second; the same seed gives the same images.
    """
    gen = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(11, 1, 7, 7, generator=gen), size=(28, 28), mode="bicubic", align_corners=False)
    shapes = torch.sigmoid(12 * (coarse[:, 0] - 0.5))  # sharp edges: pixel values that tell classes apart
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 28), torch.linspace(-1, 1, 28), indexing="ij")
    silhouette = (1 - xx**2 - yy**2).clamp(0, 1)
    padded = F.pad((0.2 * shapes[10] + 0.8 * shapes[:10]) * silhouette * 255, (2, 2, 2, 2))

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 10, (n,), generator=gen)
        shift = torch.randint(0, 25, (n,), generator=gen)
        images = torch.empty(n, 28, 28)
        for s in range(25):  # 25 shifts: one slice each, not a gather per pixel
            chosen = (shift == s).nonzero().squeeze(1)
            images[chosen] = padded[labels[chosen], s // 5 : s // 5 + 28, s % 5 : s % 5 + 28]
        images.mul_(0.7 + 0.6 * torch.rand(n, 1, 1, generator=gen)).add_(
            torch.randn(n, 28, 28, generator=gen), alpha=50.0
        )
        noisy = torch.rand(n, generator=gen) < 0.1
        labels = torch.where(noisy, torch.randint(0, 10, (n,), generator=gen), labels)
        return images.clamp_(0, 255).to(torch.uint8), labels.to(torch.uint8)

    train_x, train_y = draw(size)
    test_x, test_y = draw(max(10, size // 6))
    return {"train_images": train_x, "train_labels": train_y, "test_images": test_x, "test_labels": test_y}


class DeviceBatches:
    """One epoch of (images, labels) batches sliced from device tensors; re-iterable."""

    def __init__(self, images, labels, batch_size: int, prepare, shuffle: bool, seed: int, position_fn=None,
                 seeded: bool = False, rank: int = 0, world: int = 1):  # fmt: skip
        self.images, self.labels = images, labels
        self.batch_size, self.prepare, self.shuffle = batch_size, prepare, shuffle
        # Under DDP each step takes batch_size x world images of the permutation, and process `rank`
        # every world-th of them: the processes see different images, the same number of steps.
        self.rank, self.world = rank, world
        # position_fn() -> (epoch, batches already done in it). The permutation depends on
        # (seed, epoch) only, so a run resumed mid-epoch carries on where it stopped; with
        # `seeded`, so does the augmentation of each batch (it draws from the global RNG).
        self.seed, self.position_fn, self.calls, self.seeded = seed, position_fn, 0, seeded
        self.start = 0  # the batch the last iteration started at

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / (self.batch_size * self.world))

    def __iter__(self):
        n = len(self.labels)
        epoch, done = self.position_fn() if self.position_fn else (self.calls, 0)
        if self.shuffle:
            gen = torch.Generator(device=self.images.device).manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(n, device=self.images.device, generator=gen)
        else:
            order = None
        self.calls += 1
        self.start = done
        step = self.batch_size * self.world
        for start in range(done * step, n, step):
            if self.seeded:
                seed_device(self.images.device, position_seed(self.seed, "batch", epoch, start // step))
            if order is None and self.world == 1:
                x, y = self.images[start : start + step], self.labels[start : start + step]
            else:
                idx = order[start : start + step] if order is not None else torch.arange(start, min(n, start + step))
                if self.world > 1:
                    if len(idx) < self.world:  # every process needs an image: the last step wraps round
                        idx = torch.cat(
                            [idx, (order if order is not None else torch.arange(n))[: self.world - len(idx)]]
                        )
                    idx = idx[self.rank :: self.world]
                x, y = self.images[idx], self.labels[idx]
            yield self.prepare(x), y.long()


def eval_index(batch_idx: int, n: int, batch_size: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """The test-set positions of an evaluation batch (see FashionData._eval: process `rank` takes
    every world-th image, in order, batch_size at a time)."""
    return rank + world * (batch_idx * batch_size + torch.arange(n))


class StepGroups:
    """Hands Lightning K training batches at a time; the module takes K optimiser steps per call.

    Lightning's per-batch machinery costs a fraction of a millisecond, which is most of a
    step for a small model on a GPU; grouping pays it once per K steps. The batches,
    their order and the optimiser steps are the same as without grouping.
    """

    def __init__(self, batches: DeviceBatches, k: int):
        self.batches, self.k = batches, k

    def __len__(self) -> int:
        return math.ceil(len(self.batches) / self.k)

    def __iter__(self):
        # Groups keep their places in the epoch when a resume starts mid-group: Lightning counts
        # groups, and validates at the end only if the count comes out right.
        group, index = [], None
        for batch in self.batches:
            if index is None:
                index = getattr(self.batches, "start", 0)
            group.append(batch)
            index += 1
            if index % self.k == 0:
                yield group
                group = []
        if group:
            yield group


class Augment:
    """Per-batch random pad-2 crop, flip and erasing, vectorised on the device."""

    ERASE_P, ERASE_AREA, ERASE_RATIO = 0.5, (0.02, 0.33), (0.3, 3.3)  # torchvision's RandomErasing defaults

    def __init__(self, mode: str):
        self.flip = mode != "none"  # every mode flips
        self.crop = "crop" in mode
        self.erase = "erase" in mode

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 1, 28, 28) float
        n = x.shape[0]
        if self.crop:
            padded = F.pad(x, (2, 2, 2, 2))
            dy = torch.randint(0, 5, (n, 1), device=x.device) + torch.arange(28, device=x.device)
            dx = torch.randint(0, 5, (n, 1), device=x.device) + torch.arange(28, device=x.device)
            rows = torch.arange(n, device=x.device)[:, None, None]
            x = padded[rows, 0, dy[:, :, None], dx[:, None, :]].unsqueeze(1)
        if self.flip:
            mask = torch.rand(n, 1, 1, 1, device=x.device) < 0.5
            x = torch.where(mask, x.flip(-1), x)
        if self.erase:
            x = x.masked_fill(self.erase_mask(n, x.shape[-2], x.shape[-1], x.device), 0.0)
        return x

    def erase_mask(self, n: int, h: int, w: int, device) -> torch.Tensor:
        """(N, 1, H, W) True inside one random rectangle per chosen image (0 is the mean pixel once normalised)."""
        u = torch.rand(n, 4, device=device)
        area = (self.ERASE_AREA[0] + (self.ERASE_AREA[1] - self.ERASE_AREA[0]) * u[:, 0]) * h * w
        lo, hi = math.log(self.ERASE_RATIO[0]), math.log(self.ERASE_RATIO[1])
        ratio = torch.exp(lo + (hi - lo) * u[:, 1])
        eh = (area * ratio).sqrt().round().clamp(1, h)
        ew = (area / ratio).sqrt().round().clamp(1, w)
        top = ((h - eh + 1) * u[:, 2]).floor()
        left = ((w - ew + 1) * u[:, 3]).floor()
        rows = torch.arange(h, device=device)[None, :]
        cols = torch.arange(w, device=device)[None, :]
        in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
        in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
        chosen = torch.rand(n, device=device) < self.ERASE_P
        return (in_rows[:, :, None] & in_cols[:, None, :] & chosen[:, None, None]).unsqueeze(1)


class FashionData(pl.LightningDataModule):
    def __init__(self, config: RunConfig, data_dir: Path):
        super().__init__()
        self.config, self.data_dir = config, Path(data_dir)
        self._cpu: dict[str, torch.Tensor] | None = None
        self._device_cache: dict[str, torch.Tensor] = {}
        self.mean, self.std = 0.0, 1.0
        self.augment = Augment(config.augment) if config.augment != "none" else None

    def load(self) -> None:
        """Read (or fetch) and split the data; errors surface here, before any training."""
        if self._cpu is not None:
            return
        c = self.config
        if c.dataset == "synthetic":
            raw = make_synthetic(c.synthetic_size, c.split_seed)
        else:
            raw = load_fashion(self.data_dir)
        pool_x, pool_y = raw["train_images"], raw["train_labels"]
        if len(pool_y) <= c.val_size:
            raise DataError(f"the training set has {len(pool_y)} images, fewer than val_size={c.val_size} + 1")
        order = torch.randperm(len(pool_y), generator=torch.Generator().manual_seed(c.split_seed))
        val_idx, train_idx = order[: c.val_size], order[c.val_size :]
        self._cpu = {
            "train_x": pool_x[train_idx], "train_y": pool_y[train_idx],
            "val_x": pool_x[val_idx], "val_y": pool_y[val_idx],
            "test_x": raw["test_images"], "test_y": raw["test_labels"],
        }  # fmt: skip
        if c.normalize:  # the config's values if set (a resumed run's are), else the training split's
            pixels = self._cpu["train_x"].float() / 255
            self.mean = c.norm_mean if c.norm_mean is not None else pixels.mean().item()
            self.std = c.norm_std if c.norm_std is not None else pixels.std().item()

    def splits(self) -> dict[str, torch.Tensor]:
        """The images and labels of each split, on the CPU (loaded on first use)."""
        self.load()
        assert self._cpu is not None
        return self._cpu

    @property
    def sizes(self) -> dict[str, int]:
        return {split: len(self.splits()[f"{split}_y"]) for split in ("train", "val", "test")}

    def prepare_data(self) -> None:
        self.load()

    def setup(self, stage: str | None = None) -> None:
        self.load()

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        device = self._device()
        for key in (f"{split}_x", f"{split}_y"):
            cached = self._device_cache.get(key)
            if cached is None or cached.device != device:
                self._device_cache[key] = self.splits()[key].to(device, non_blocking=True)
        return self._device_cache[f"{split}_x"], self._device_cache[f"{split}_y"]

    def _prepare(self, train: bool):
        mean, std, augment = self.mean, self.std, self.augment

        def prepare(x: torch.Tensor) -> torch.Tensor:
            x = x.unsqueeze(1).float().div_(255)
            if mean or std != 1.0:
                x = x.sub_(mean).div_(std)
            return augment(x) if (train and augment is not None) else x

        return prepare

    def train_dataloader(self):
        x, y = self._tensors("train")
        position = None
        if self.trainer is not None:
            trainer, steps = self.trainer, self.config.steps_per_epoch
            position = lambda: (trainer.current_epoch, max(0, trainer.global_step - trainer.current_epoch * steps))  # noqa: E731
        rank, world = self._rank()
        batches = DeviceBatches(x, y, self.config.batch_size, self._prepare(True), True, self.config.seed, position,
                                seeded=self.augment is not None, rank=rank, world=world)  # fmt: skip
        return StepGroups(batches, STEPS_PER_CALL)

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _eval(self, split: str):
        x, y = self._tensors(split)
        rank, world = self._rank()
        if world > 1:  # each process evaluates every world-th image; the metrics add up across processes
            x, y = x[rank::world], y[rank::world]
        return DeviceBatches(x, y, self.config.eval_batch_size, self._prepare(False), shuffle=False, seed=0)

    def val_dataloader(self):
        return self._eval("val")

    def test_dataloader(self):
        return self._eval("test")
