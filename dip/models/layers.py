"""Building blocks shared by the nets, after the authors' `models/common.py` (Ulyanov et al., deep-image-prior)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = ("LeakyReLU", "ReLU", "ELU", "none")
PADDINGS = ("reflection", "zero")
DOWNSAMPLES = ("stride", "avg", "max", "lanczos2")
UPSAMPLES = ("nearest", "bilinear")


def act(name: str) -> nn.Module:
    """Activation by name: `LeakyReLU` (slope 0.2, as the authors), `ReLU`, `ELU` or `none` (identity)."""
    if name == "LeakyReLU":
        return nn.LeakyReLU(0.2, inplace=True)
    if name == "ReLU":
        return nn.ReLU(inplace=True)
    if name == "ELU":
        return nn.ELU()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")


def downsampler(mode: str, channels: int, factor: int) -> nn.Module:
    """`avg`/`max` pooling by `factor`, or the authors' size-preserving Lanczos-2 downsampler (phase 0.5)."""
    if mode == "avg":
        return nn.AvgPool2d(factor, factor)
    if mode == "max":
        return nn.MaxPool2d(factor, factor)
    if mode == "lanczos2":
        from dip.physics import LanczosDownsampler

        return LanczosDownsampler(channels, factor, phase=0.5, preserve_size=True)
    raise ValueError(f"unknown downsample mode {mode!r}; known: {', '.join(DOWNSAMPLES)}")


class ReflectionPad2d(nn.ReflectionPad2d):
    """`nn.ReflectionPad2d` that keeps its input's dtype under autocast.

    CPU autocast runs reflection padding in fp32, so in a bf16 net every padded conv paid two full copies of its input
    (bf16 → fp32 → bf16) forward and backward. Padding only moves values: bf16 in, bf16 out is exact.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_meta or not torch.is_autocast_enabled(x.device.type):  # meta: `dip.memory`'s shapes-only forward
            return super().forward(x)
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x)


def conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    bias: bool = True,
    pad: str = "reflection",
    downsample: str = "stride",
) -> nn.Sequential:
    """The authors' `conv`: [`ReflectionPad2d`] + `Conv2d` [+ downsampler].

    With `pad="zero"` the conv pads itself; a 1×1 conv has no pad layer. With stride > 1 and `downsample` other than
    `stride`, the conv has stride 1 and `downsampler(downsample, out_channels, stride)` follows it.
    """
    if pad not in PADDINGS:
        raise ValueError(f"unknown pad {pad!r}; known: {', '.join(PADDINGS)}")
    layers: list[nn.Module] = []
    to_pad = (kernel_size - 1) // 2
    if pad == "reflection" and to_pad > 0:
        layers.append(ReflectionPad2d(to_pad))
        to_pad = 0
    conv_stride = stride if downsample == "stride" else 1
    layers.append(nn.Conv2d(in_channels, out_channels, kernel_size, conv_stride, padding=to_pad, bias=bias))
    if stride != 1 and downsample != "stride":
        layers.append(downsampler(downsample, out_channels, stride))
    return nn.Sequential(*layers)


def upsample(mode: str) -> nn.Upsample:
    """Factor-2 `nn.Upsample` (`align_corners=False` for bilinear, as the authors' torch defaults)."""
    if mode not in UPSAMPLES:
        raise ValueError(f"unknown upsample mode {mode!r}; known: {', '.join(UPSAMPLES)}")
    return nn.Upsample(scale_factor=2, mode=mode, align_corners=False if mode == "bilinear" else None)


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The centre `height × width` window of an `(N, C, H, W)` tensor (offsets rounded down, as the authors)."""
    top = (x.shape[2] - height) // 2
    left = (x.shape[3] - width) // 2
    return x[:, :, top : top + height, left : left + width]


def _channels_last_gradient(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


def cat(tensors: Sequence[torch.Tensor], dim: int) -> torch.Tensor:
    """`torch.cat` whose backward hands each channels_last input a channels_last gradient.

    cat's backward gives each input a slice of the output gradient; in channels_last a channel slice is strided, and
    kernels behind it (e.g. `upsample_bilinear2d_backward`) run several times slower on it (benchmarks/NOTES.md).
    """
    for tensor in tensors:
        # a contiguous tensor first: inside `vmap` (batched fits, NCHW) only that layout can be queried
        channels_last = not tensor.is_contiguous() and tensor.is_contiguous(memory_format=torch.channels_last)
        if tensor.requires_grad and channels_last:
            tensor.register_hook(_channels_last_gradient)
    return torch.cat(list(tensors), dim=dim)


class Concat(nn.Module):
    """Runs each branch on the same input and concatenates along `dim`, centre-cropping to the smallest H, W.

    The authors' `Concat` (models/common.py).
    """

    def __init__(self, dim: int, *branches: nn.Module) -> None:
        super().__init__()
        self.dim = dim
        for index, branch in enumerate(branches):
            self.add_module(str(index), branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [branch(x) for branch in self.children()]
        height = min(out.shape[2] for out in outputs)
        width = min(out.shape[3] for out in outputs)
        return cat([center_crop(out, height, width) for out in outputs], dim=self.dim)
