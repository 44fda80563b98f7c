"""The networks. Each takes (N, 1, 28, 28) images and returns (N, 10) logits."""

from __future__ import annotations

from torch import nn

from fmnist_tui.config import RunConfig


def tutorial_mlp(final_relu: bool = True) -> nn.Sequential:
    """The quickstart's network exactly: 784-512-512-10 with a ReLU after every layer, the last included."""
    layers = [nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)]
    if final_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def mlp(hidden: int = 512, dropout: float = 0.2) -> nn.Sequential:
    """The quickstart MLP corrected: no final ReLU, batch norm, dropout."""

    def block(n_in: int) -> list[nn.Module]:
        return [nn.Linear(n_in, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout)]

    return nn.Sequential(nn.Flatten(), *block(784), *block(hidden), nn.Linear(hidden, 10))


def conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def cnn(width: int = 32, dropout: float = 0.0) -> nn.Sequential:
    """Small and fast: two conv stages (28->14->7) and a linear head."""
    w = width
    return nn.Sequential(
        *conv_bn(1, w), nn.MaxPool2d(2),
        *conv_bn(w, 2 * w), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * w * 7 * 7, 10),
    )  # fmt: skip


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(channels, channels), *conv_bn(channels, channels))

    def forward(self, x):
        return x + self.body(x)


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def resnet(width: int = 64, dropout: float = 0.0) -> nn.Sequential:
    """ResNet-9 style (as in the fast CIFAR-10 records), sized for 28x28: 28 -> 14 -> 7 -> 3.

    As there, the logits are scaled by 1/8: max-pooled features make large logits, and
    without the scale the first steps at a high learning rate blow them up.
    """
    w = width
    return nn.Sequential(
        *conv_bn(1, w),
        *conv_bn(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w),
        *conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
        *conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), Residual(8 * w),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(8 * w, 10), Scale(0.125),
    )  # fmt: skip


def build(config: RunConfig) -> nn.Module:
    if config.model == "tutorial_mlp":
        return tutorial_mlp(config.final_relu)
    if config.model == "mlp":
        return mlp(config.hidden, config.dropout)
    if config.model == "cnn":
        return cnn(config.width, config.dropout)
    if config.model == "resnet":
        return resnet(config.width, config.dropout)
    raise ValueError(f"unknown model {config.model!r}")
