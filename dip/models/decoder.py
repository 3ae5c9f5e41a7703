"""Deep Decoder (Heckel & Hand, ICLR 2019; their `decodernw`), with a ConvDecoder-like 3×3 variant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from dip.models import checks, layers

DEFAULTS: dict[str, Any] = {
    "input_depth": 128,
    "input_kind": "noise",
    "channels": [128] * 5,
    "kernel_size": 1,
    "upsample": "bilinear",
    "pad": "reflection",
    "act": "ReLU",
    "sigmoid": True,
}


def decoder(
    in_channels: int,
    out_channels: int,
    channels: Sequence[int],
    kernel_size: int = 1,
    upsample: str = "bilinear",
    pad: str = "reflection",
    act: str = "ReLU",
    sigmoid: bool = True,
) -> nn.Sequential:
    """A decoder-only net: its input is `(1, in_channels, H / 2**k, W / 2**k)` with `k = len(channels)`.

    Layer i < k: conv `kernel_size` (no bias) to `channels[i]`, ×2 `upsample`, act, BN; one more such layer at full
    resolution with `channels[-1]` and no upsampling; a 1×1 conv (no bias) and sigmoid. Heckel & Hand's
    `decodernw(num_channels_up=c)` is `decoder(c[0], ..., channels=c[1:] + [c[-1]])`; `kernel_size=3` gives a
    ConvDecoder-like net (Darestani & Heckel 2021), still convolving before upsampling.
    """
    widths = [in_channels, *channels, channels[-1]]
    modules: list[nn.Module] = []
    for i in range(len(channels) + 1):
        modules.append(layers.conv(widths[i], widths[i + 1], kernel_size, bias=False, pad=pad))
        if i < len(channels):
            modules.append(layers.upsample(upsample))
        modules += [layers.act(act), nn.BatchNorm2d(widths[i + 1])]
    modules.append(layers.conv(widths[-1], out_channels, 1, bias=False, pad=pad))
    if sigmoid:
        modules.append(nn.Sigmoid())
    return nn.Sequential(*modules)


def check(params: Mapping[str, Any]) -> dict[str, Any]:
    """The `decoder()` keyword arguments for the spec's hyper-parameters."""
    return {
        "channels": checks.channel_list("channels", params["channels"]),
        "kernel_size": checks.odd("kernel_size", params["kernel_size"]),
        "upsample": checks.choice("upsample", params["upsample"], layers.UPSAMPLES),
        "pad": checks.choice("pad", params["pad"], layers.PADDINGS),
        "act": checks.choice("act", params["act"], layers.ACTIVATIONS),
        "sigmoid": checks.boolean("sigmoid", params["sigmoid"]),
    }


ARCH = checks.Arch(
    build=decoder,
    defaults=DEFAULTS,
    check=check,
    scales=lambda kwargs: len(kwargs["channels"]),
    low_res_input=True,
    # its input is BatchNormed only after an upsampling: a 1-pixel input is fine unless a reflection pad needs more
    coarsest_side=lambda kwargs: 1 if kwargs["kernel_size"] == 1 or kwargs["pad"] == "zero" else 2,
)
