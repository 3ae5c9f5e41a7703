"""The differentiable forward operators A of the loss ‖A·f(z) − x0‖² (torch modules; the rest of a task is numpy)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dip.resampling import lanczos_kernel


class LanczosDownsampler(nn.Module):
    """Per-channel Lanczos-2 filtering with stride `factor`: the authors' `Downsampler(kernel_type='lanczos2')`.

    With `preserve_size`, replication padding of (k - f)//2 before and k - f - (k - f)//2 after (k = kernel size,
    f = factor) makes an H×W input (H, W divisible by f) give H/f × W/f, each output centred on its f×f block.
    For phase 0.5 and even f (the paper's ×2, ×4, ×8) this is the authors' symmetric padding (6 at ×4, 12 at ×8);
    for the authors' odd kernels (phase 0) their padding of (k - 1)/2 samples at pixel i·f, not the block centre.
    """

    weight: torch.Tensor

    def __init__(self, channels: int, factor: int, phase: float = 0.5, preserve_size: bool = True) -> None:
        super().__init__()
        kernel = torch.from_numpy(lanczos_kernel(factor, phase)).to(torch.float32)
        size = kernel.shape[0]
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).clone())
        self.channels = channels
        self.factor = factor
        before = (size - factor) // 2 if preserve_size else 0
        after = size - factor - before if preserve_size else 0
        self.padding = (before, after, before, after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter and subsample `x` of shape (N, channels, H, W)."""
        if any(self.padding):
            x = F.pad(x, self.padding, mode="replicate")
        return F.conv2d(x, self.weight, stride=self.factor, groups=self.channels)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, factor={self.factor}, kernel={tuple(self.weight.shape[-2:])}"


class MaskMultiply(nn.Module):
    """A = multiplication by a fixed (1, 1, H, W) mask (1 = known pixel)."""

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Zero the missing pixels of `x` (N, C, H, W)."""
        return x * self.mask


class Blur(nn.Module):
    """A = per-channel convolution with a fixed odd-sided kernel after mirror padding (the deblurring boundary).

    The output keeps the input's size; it equals `dip.tasks.deblurring.blur` (scipy.ndimage `convolve`, mirror mode).
    """

    weight: torch.Tensor

    def __init__(self, kernel: np.ndarray, channels: int) -> None:
        super().__init__()
        side_h, side_w = kernel.shape
        if side_h % 2 == 0 or side_w % 2 == 0:
            raise ValueError(f"a blur kernel needs odd sides, not {kernel.shape}")
        flipped = torch.from_numpy(np.ascontiguousarray(kernel[::-1, ::-1])).to(torch.float32)  # conv2d correlates
        self.register_buffer("weight", flipped.expand(channels, 1, side_h, side_w).clone())
        self.channels = channels
        self.padding = (side_w // 2, side_w // 2, side_h // 2, side_h // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Blur `x` of shape (N, channels, H, W); H and W must exceed the kernel's radius."""
        return F.conv2d(F.pad(x, self.padding, mode="reflect"), self.weight, groups=self.channels)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Aᵀy: the full correlation of `y` with the kernel, its border added back onto the pixels the mirror padding
        copied (autograd's own adjoint of a depthwise conv is ~50× slower on a CPU)."""
        full = F.conv2d(F.pad(y, tuple(2 * p for p in self.padding)), self.weight.flip((-2, -1)), groups=self.channels)
        height, width = y.shape[-2:]
        rows = _mirror_index(height, self.padding[2], y.device)
        cols = _mirror_index(width, self.padding[0], y.device)
        folded = full.new_zeros((*full.shape[:-2], height, full.shape[-1])).index_add_(-2, rows, full)
        return folded.new_zeros(y.shape).index_add_(-1, cols, folded)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel={tuple(self.weight.shape[-2:])}, boundary=mirror"


def _mirror_index(size: int, pad: int, device: torch.device) -> torch.Tensor:
    """The source index of each of the `size + 2·pad` samples of a whole-sample mirror padding (`F.pad` 'reflect')."""
    index = torch.arange(-pad, size + pad, device=device).abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)
