"""Full-resolution residual net of the Deep Image Prior code (authors' `models/resnet.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from dip.models import checks, layers

DEFAULTS: dict[str, Any] = {
    "input_depth": 32,
    "input_kind": "noise",
    "num_blocks": 10,
    "channels": 16,
    "residual": True,
    "act": "LeakyReLU",
    "pad": "reflection",
    "sigmoid": True,
}


class _Residual(nn.Sequential):
    """`x + body(x)` (the authors' `ResidualSequential`; the body keeps the size, so no crop is needed)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


class ResNet(nn.Module):
    """The DIP code's `ResNet`: no downsampling, so any image size works.

    3×3 conv in (`pad`), act; `num_blocks` blocks of (3×3 conv, BN, act, 3×3 conv, BN) with `channels` channels,
    zero-padded and without bias, added to their input when `residual`; 3×3 conv, BN; 3×3 conv out (`pad`), sigmoid.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int = 10,
        channels: int = 16,
        residual: bool = True,
        act: str = "LeakyReLU",
        pad: str = "reflection",
        sigmoid: bool = True,
    ) -> None:
        super().__init__()
        block = _Residual if residual else nn.Sequential
        modules: list[nn.Module] = [layers.conv(in_channels, channels, 3, bias=True, pad=pad), layers.act(act)]
        for _ in range(num_blocks):
            modules.append(
                block(
                    nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
                    nn.BatchNorm2d(channels),
                    layers.act(act),
                    nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
                    nn.BatchNorm2d(channels),
                )
            )
        modules += [nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels)]
        modules.append(layers.conv(channels, out_channels, 3, bias=True, pad=pad))
        if sigmoid:
            modules.append(nn.Sigmoid())
        self.model = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def check(params: Mapping[str, Any]) -> dict[str, Any]:
    """The `ResNet` keyword arguments for the spec's hyper-parameters."""
    return {
        "num_blocks": checks.integer("num_blocks", params["num_blocks"]),
        "channels": checks.channels("channels", params["channels"]),
        "residual": checks.boolean("residual", params["residual"]),
        "act": checks.choice("act", params["act"], layers.ACTIVATIONS),
        "pad": checks.choice("pad", params["pad"], layers.PADDINGS),
        "sigmoid": checks.boolean("sigmoid", params["sigmoid"]),
    }


ARCH = checks.Arch(
    build=ResNet,
    defaults=DEFAULTS,
    check=check,
    scales=lambda kwargs: 0,
)
