"""U-Net of the Deep Image Prior code (authors' `models/unet.py`; Ronneberger et al. 2015 layout)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from dip.errors import ConfigError
from dip.models import checks, layers

DEFAULTS: dict[str, Any] = {
    "input_depth": 32,
    "input_kind": "noise",
    "feature_scale": 4,
    "more_layers": 0,
    "upsample": "bilinear",
    "pad": "reflection",
    "norm": "batch",
    "sigmoid": True,
    "bias": True,
}
UPSAMPLES = ("nearest", "bilinear", "deconv")
NORMS = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d, "none": None}
WIDTHS = (64, 128, 256, 512, 1024)


def _conv_pair(in_channels: int, out_channels: int, norm: str, bias: bool, pad: str) -> nn.Sequential:
    """The authors' `unetConv2`: twice (3×3 conv, [norm], ReLU)."""
    modules: list[nn.Module] = []
    for cin in (in_channels, out_channels):
        modules.append(layers.conv(cin, out_channels, 3, bias=bias, pad=pad))
        if NORMS[norm] is not None:
            modules.append(NORMS[norm](out_channels))
        modules.append(nn.ReLU())
    return nn.Sequential(*modules)


class _Up(nn.Module):
    """The authors' `unetUp`: upsample (deconv, or ×2 resize + 3×3 conv), concat the skip, conv pair without norm."""

    def __init__(self, out_channels: int, in_channels: int, upsample: str, bias: bool, pad: str) -> None:
        super().__init__()
        if upsample == "deconv":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1)
        else:
            self.up = nn.Sequential(
                layers.upsample(upsample), layers.conv(in_channels, out_channels, 3, bias=bias, pad=pad)
            )
        self.conv = _conv_pair(out_channels * 2, out_channels, "none", bias, pad)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.conv(layers.cat([x, layers.center_crop(skip, x.shape[2], x.shape[3])], 1))


class UNet(nn.Module):
    """U-Net as in the DIP code (`UNet`, with `concat_x=False`), 4 + `more_layers` max-pool downsamplings.

    Widths are `(64, 128, 256, 512, 1024) // feature_scale`; the encoder's conv pairs have `norm` (`batch`,
    `instance`, `none`) and ReLU, the decoder's have no norm; `upsample` is `deconv` (4×4 transposed conv),
    `nearest` or `bilinear` (resize + 3×3 conv); a final 1×1 conv and sigmoid.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        feature_scale: int = 4,
        more_layers: int = 0,
        upsample: str = "bilinear",
        pad: str = "reflection",
        norm: str = "batch",
        sigmoid: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        w = [width // feature_scale for width in WIDTHS]
        self.start = _conv_pair(in_channels, w[0], norm, bias, pad)
        downs = [(w[i], w[i + 1]) for i in range(4)] + [(w[4], w[4])] * more_layers
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2, 2), _conv_pair(cin, cout, norm, bias, pad)) for cin, cout in downs
        )
        self.more_ups = nn.ModuleList(_Up(w[4], w[4], upsample, bias, pad) for _ in range(more_layers))
        self.ups = nn.ModuleList(_Up(w[i], w[i + 1], upsample, bias, pad) for i in (3, 2, 1, 0))
        final: list[nn.Module] = [layers.conv(w[0], out_channels, 1, bias=bias, pad=pad)]
        if sigmoid:
            final.append(nn.Sigmoid())
        self.final = nn.Sequential(*final)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.start(x)
        skips = [x]
        for down in self.downs:
            x = down(x)
            skips.append(x)
        # the authors apply the last-built extra level first
        for up, skip in zip([*reversed(self.more_ups), *self.ups], reversed(skips[:-1]), strict=True):
            x = up(x, skip)
        return self.final(x)


def check(params: Mapping[str, Any]) -> dict[str, Any]:
    """The `UNet` keyword arguments for the spec's hyper-parameters."""
    feature_scale = checks.integer("feature_scale", params["feature_scale"], 1)
    if feature_scale > WIDTHS[0]:
        raise ConfigError(
            f"model key 'feature_scale' must be at most {WIDTHS[0]} (widths are {WIDTHS} // feature_scale), "
            f"got {feature_scale}"
        )
    return {
        "feature_scale": feature_scale,
        "more_layers": checks.integer("more_layers", params["more_layers"]),
        "upsample": checks.choice("upsample", params["upsample"], UPSAMPLES),
        "pad": checks.choice("pad", params["pad"], layers.PADDINGS),
        "norm": checks.choice("norm", params["norm"], tuple(NORMS)),
        "sigmoid": checks.boolean("sigmoid", params["sigmoid"]),
        "bias": checks.boolean("bias", params["bias"]),
    }


ARCH = checks.Arch(
    build=UNet,
    defaults=DEFAULTS,
    check=check,
    scales=lambda kwargs: 4 + kwargs["more_layers"],
)
