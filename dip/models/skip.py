"""The hourglass with skip connections of Deep Image Prior (Ulyanov et al., CVPR 2018; authors' `models/skip.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from dip.models import checks, layers

DEFAULTS: dict[str, Any] = {
    "input_depth": 32,
    "input_kind": "noise",
    "channels_down": [128] * 5,
    "channels_up": [128] * 5,
    "channels_skip": [4] * 5,
    "filter_size_down": 3,
    "filter_size_up": 3,
    "filter_size_skip": 1,
    "upsample": "bilinear",
    "downsample": "stride",
    "pad": "reflection",
    "act": "LeakyReLU",
    "sigmoid": True,
    "bias": True,
    "need1x1_up": True,
}


def skip(
    in_channels: int,
    out_channels: int,
    channels_down: Sequence[int],
    channels_up: Sequence[int],
    channels_skip: Sequence[int],
    filter_size_down: Sequence[int],
    filter_size_up: Sequence[int],
    upsample: Sequence[str],
    downsample: Sequence[str],
    filter_size_skip: int = 1,
    pad: str = "reflection",
    act: str = "LeakyReLU",
    sigmoid: bool = True,
    bias: bool = True,
    need1x1_up: bool = True,
) -> nn.Sequential:
    """The authors' `skip()` net, module for module (same order, same parameter count).

    Per-scale lists (index 0 = the finest scale) all have `len(channels_down)` entries. Scale i is
    `Concat(skip_i, deeper_i)` (or `deeper_i` alone when `channels_skip[i] == 0`), BN, conv `filter_size_up[i]`, BN,
    act, [1×1 conv, BN, act]; `skip_i` = 1×1 conv, BN, act; `deeper_i` = stride-2 conv (or conv + pooling per
    `downsample[i]`), BN, act, conv, BN, act, scale i+1, ×2 upsampling. A final 1×1 conv and sigmoid.
    """
    n_scales = len(channels_down)
    model = nn.Sequential()
    level = model
    depth = in_channels
    for i in range(n_scales):
        deeper, skip_branch = nn.Sequential(), nn.Sequential()
        level.append(layers.Concat(1, skip_branch, deeper) if channels_skip[i] else deeper)
        deeper_out = channels_up[i + 1] if i < n_scales - 1 else channels_down[i]
        level.append(nn.BatchNorm2d(channels_skip[i] + deeper_out))
        if channels_skip[i]:
            skip_branch.append(layers.conv(depth, channels_skip[i], filter_size_skip, bias=bias, pad=pad))
            skip_branch.append(nn.BatchNorm2d(channels_skip[i]))
            skip_branch.append(layers.act(act))
        deeper.append(layers.conv(depth, channels_down[i], filter_size_down[i], 2, bias, pad, downsample=downsample[i]))
        deeper.append(nn.BatchNorm2d(channels_down[i]))
        deeper.append(layers.act(act))
        deeper.append(layers.conv(channels_down[i], channels_down[i], filter_size_down[i], bias=bias, pad=pad))
        deeper.append(nn.BatchNorm2d(channels_down[i]))
        deeper.append(layers.act(act))
        deeper_main = nn.Sequential()
        if i < n_scales - 1:
            deeper.append(deeper_main)
        deeper.append(layers.upsample(upsample[i]))
        level.append(layers.conv(channels_skip[i] + deeper_out, channels_up[i], filter_size_up[i], bias=bias, pad=pad))
        level.append(nn.BatchNorm2d(channels_up[i]))
        level.append(layers.act(act))
        if need1x1_up:
            level.append(layers.conv(channels_up[i], channels_up[i], 1, bias=bias, pad=pad))
            level.append(nn.BatchNorm2d(channels_up[i]))
            level.append(layers.act(act))
        depth = channels_down[i]
        level = deeper_main
    model.append(layers.conv(channels_up[0], out_channels, 1, bias=bias, pad=pad))
    if sigmoid:
        model.append(nn.Sigmoid())
    return model


def check(params: Mapping[str, Any]) -> dict[str, Any]:
    """The `skip()` keyword arguments for the spec's hyper-parameters (scalars broadcast per scale)."""
    down = checks.channel_list("channels_down", params["channels_down"])
    n = len(down)
    return {
        "channels_down": down,
        "channels_up": checks.per_scale("channels_up", params["channels_up"], n, checks.channels),
        "channels_skip": checks.per_scale("channels_skip", params["channels_skip"], n, checks.skip_channels),
        "filter_size_down": checks.per_scale("filter_size_down", params["filter_size_down"], n, checks.odd),
        "filter_size_up": checks.per_scale("filter_size_up", params["filter_size_up"], n, checks.odd),
        "filter_size_skip": checks.odd("filter_size_skip", params["filter_size_skip"]),
        "upsample": checks.per_scale("upsample", params["upsample"], n, checks.one_of(layers.UPSAMPLES)),
        "downsample": checks.per_scale("downsample", params["downsample"], n, checks.one_of(layers.DOWNSAMPLES)),
        "pad": checks.choice("pad", params["pad"], layers.PADDINGS),
        "act": checks.choice("act", params["act"], layers.ACTIVATIONS),
        "sigmoid": checks.boolean("sigmoid", params["sigmoid"]),
        "bias": checks.boolean("bias", params["bias"]),
        "need1x1_up": checks.boolean("need1x1_up", params["need1x1_up"]),
    }


ARCH = checks.Arch(
    build=skip,
    defaults=DEFAULTS,
    check=check,
    scales=lambda kwargs: len(kwargs["channels_down"]),
)
