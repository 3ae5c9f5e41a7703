"""Zero-Shot Noise2Noise (ZS-N2N; Mansour & Heckel, "Zero-Shot Noise2Noise: Efficient Image Denoising without any
Data", CVPR 2023).

As the paper (Section 3) and the authors' code (the Colab notebook linked from the paper, also reproduced in
github.com/Li-Tong-621/ZS-N2N `util.py`) have it:

- the net: two 3×3 convolutions of 48 channels, each followed by a leaky ReLU (slope 0.2), then a 1×1 convolution back
  to the image's channels; it predicts the noise, so the denoised image is y − f(y);
- the pair downsampler: two fixed stride-2 convolutions of each channel with [[0, ½], [½, 0]] and [[½, 0], [0, ½]],
  which make two half-size images D1(y), D2(y) of the same content with independent noise;
- the loss: the residual loss ½(‖D1(y) − f̂(D2(y))‖² + ‖D2(y) − f̂(D1(y))‖²), with f̂(x) = x − f(x), plus the
  consistency loss ½(‖f̂(D1(y)) − D1(f̂(y))‖² + ‖f̂(D2(y)) − D2(f̂(y))‖²) (mean squared errors);
- Adam, learning rate 0.001 halved after 1500 of the 2000 iterations (`StepLR(step_size=1500, gamma=0.5)`), each
  iteration on the whole image; the output y − f(y) of the last iteration, clipped to [0, 1].

Chosen here: the image is taken as it comes (no normalisation, as the authors' code on images in [0, 1]); an odd
side loses its last row or column in the downsampler only (the conv net restores the whole image); the net's
initialisation is PyTorch's default from the run's seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dip.errors import ImageError
from dip.methods import check_count
from dip.methods.zero_shot import as_batch, as_image, seeded

ITERATIONS = 2000
LR = 0.001
LR_STEP, LR_GAMMA = 1500, 0.5
"""The learning rate is multiplied by LR_GAMMA after LR_STEP iterations."""
CHANNELS = 48


class ZSN2NNet(nn.Module):
    """The two-layer net of ZS-N2N: conv 3×3 → leaky ReLU → conv 3×3 → leaky ReLU → conv 1×1; it predicts the
    noise."""

    def __init__(self, channels: int, width: int = CHANNELS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, channels, 1)
        self.act = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))


def pair_downsample(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two half-size images of a (N, C, H, W) batch: each 2×2 block's anti-diagonal mean and diagonal mean."""
    channels = image.shape[1]
    anti = image.new_tensor([[0.0, 0.5], [0.5, 0.0]]).repeat(channels, 1, 1, 1)
    diagonal = image.new_tensor([[0.5, 0.0], [0.0, 0.5]]).repeat(channels, 1, 1, 1)
    return F.conv2d(image, anti, stride=2, groups=channels), F.conv2d(image, diagonal, stride=2, groups=channels)


def zs_n2n_loss(net: nn.Module, noisy: torch.Tensor) -> torch.Tensor:
    """The residual loss plus the consistency loss of ZS-N2N on one noisy batch."""
    noisy1, noisy2 = pair_downsample(noisy)
    denoised1, denoised2 = noisy1 - net(noisy1), noisy2 - net(noisy2)
    residual = (F.mse_loss(noisy1, denoised2) + F.mse_loss(noisy2, denoised1)) / 2
    down1, down2 = pair_downsample(noisy - net(noisy))
    consistency = (F.mse_loss(denoised1, down1) + F.mse_loss(denoised2, down2)) / 2
    return residual + consistency


def zs_n2n(
    noisy: np.ndarray, *, device: torch.device, seed: int, iterations: int = ITERATIONS, **noise: Any
) -> np.ndarray:
    """Denoise a float32 (H, W, C) image in [0, 1] by ZS-N2N fitted on it for `iterations` (the paper's 2000) from
    `seed`; the task's noise parameters (`noise`) are not used: the method is blind."""
    iterations = check_count(iterations, "ZS-N2N's iterations")
    if min(noisy.shape[:2]) < 2:
        raise ImageError(f"ZS-N2N needs an image of at least 2×2 pixels, not {noisy.shape[:2]}")
    y = as_batch(noisy, device)
    with seeded(seed, device):
        net = ZSN2NNet(y.shape[1]).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=LR_STEP, gamma=LR_GAMMA)
    for _ in range(iterations):
        loss = zs_n2n_loss(net, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        return as_image(y - net(y))
