"""Noise2Fast (Lequyer, Philip, Sharma, Hsu & Pelletier, "A fast blind zero-shot denoiser", Nature Machine
Intelligence 4, 2022).

As the paper and the authors' code (github.com/jason-lequyer/Noise2Fast, `N2F.py`; colour images channel by channel
as its `N2F_4D.py`) have it, for each channel:

- the channel is min–max normalised to [0, 1];
- chequerboard downsampling: the even rows' and the odd rows' pixels taken alternately along each row give two
  half-height images, and the same along columns two half-width ones: four images, each to be predicted from its
  partner (two pairs, both ways);
- the net: four blocks of two 3×3 convolutions of 64 channels with ReLU, a 1×1 convolution and a sigmoid, trained
  with binary cross-entropy and Adam (learning rate 0.001), one randomly chosen pair per step;
- its own stopping: after each step the net denoises the whole channel; training stops when the mean squared
  difference of that output to the noisy channel has not improved for 100 steps;
- its own averaging: the result is the mean of the outputs of the last 105 steps before the final one, mapped back to
  the channel's range.

Chosen here: the authors' list of the last outputs starts as 105 zeros and their first entry is an all-zero image,
so a fit shorter than 105 steps would average zeros in; ours averages only outputs the net made. A fit stops after
`MAX_STEPS` at the latest (the authors' loop has no bound); the random pairs come from the run's seed. A constant
channel is returned as it is.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dip.errors import ImageError
from dip.methods import check_count
from dip.methods.zero_shot import as_batch, as_image, seeded

LR = 0.001
PATIENCE = 100
"""Steps without a better fit to the noisy image before the fit stops (the authors' `tsince`)."""
AVERAGED = 105
"""Outputs averaged into the result (the authors' `last10`)."""
MAX_STEPS = 20_000
WIDTH = 64

log = logging.getLogger(__name__)


class Noise2FastNet(nn.Module):
    """Four blocks of two 3×3 convolutions with ReLU, then a 1×1 convolution and a sigmoid; one channel in and out."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for block in range(4):
            layers += [nn.Conv2d(1 if block == 0 else width, width, 3, padding=1), nn.ReLU()]
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Conv2d(width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(x))


def chequerboard_pairs(channel: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The four (input, target) pairs of a (1, 1, H, W) channel (an odd side loses its last row or column): the two
    half-height images each from the other, then the two half-width ones."""
    h, w = channel.shape[-2] // 2 * 2, channel.shape[-1] // 2 * 2
    z = channel[..., :h, :w]
    even_column = (torch.arange(w, device=z.device) % 2 == 0).view(1, 1, 1, w)
    even_row = (torch.arange(h, device=z.device) % 2 == 0).view(1, 1, h, 1)
    top, bottom = z[..., 0::2, :], z[..., 1::2, :]
    half_height = torch.where(even_column, bottom, top), torch.where(even_column, top, bottom)
    left, right = z[..., :, 0::2], z[..., :, 1::2]
    half_width = torch.where(even_row, right, left), torch.where(even_row, left, right)
    return [
        (half_height[1], half_height[0]),
        (half_height[0], half_height[1]),
        (half_width[0], half_width[1]),
        (half_width[1], half_width[0]),
    ]


def denoise_channel(
    channel: torch.Tensor, rng: np.random.Generator, max_steps: int = MAX_STEPS
) -> tuple[torch.Tensor, int]:
    """Noise2Fast of one normalised (1, 1, H, W) channel: the averaged output and the steps it took."""
    pairs = chequerboard_pairs(channel)
    net = Noise2FastNet().to(channel.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    outputs: deque[torch.Tensor] = deque(maxlen=AVERAGED)
    best, since, steps, output = -np.inf, 0, 0, None
    while since <= PATIENCE and steps < max_steps:
        inputs, target = pairs[int(rng.integers(len(pairs)))]
        loss = F.binary_cross_entropy(net(inputs), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        with torch.no_grad():
            if output is not None:
                outputs.append(output)
            output = net(channel)
            score = -float(torch.mean((channel - output) ** 2))
        if score > best:
            best, since = score, 0
        else:
            since += 1
    return torch.stack(list(outputs) or [output]).mean(dim=0), steps


def noise2fast(
    noisy: np.ndarray, *, device: torch.device, seed: int, iterations: int = MAX_STEPS, **noise: Any
) -> np.ndarray:
    """Denoise a float32 (H, W, C) image in [0, 1] by Noise2Fast, channel by channel, from `seed`, each channel's fit
    stopping by its own rule or after `iterations` steps; the task's noise parameters (`noise`) are not used: the
    method is blind."""
    iterations = check_count(iterations, "Noise2Fast's iterations")
    if min(noisy.shape[:2]) < 2:
        raise ImageError(f"Noise2Fast needs an image of at least 2×2 pixels, not {noisy.shape[:2]}")
    image = as_batch(noisy, device)
    rng = np.random.default_rng(seed)
    restored = torch.empty_like(image)
    with seeded(seed, device):
        for c in range(image.shape[1]):
            channel = image[:, c : c + 1]
            low, span = channel.min(), channel.max() - channel.min()
            if span == 0:
                restored[:, c : c + 1] = channel
                continue
            averaged, steps = denoise_channel((channel - low) / span, rng, iterations)
            log.info("Noise2Fast, channel %d: %d steps (%s)", c, steps, "its rule" if steps < iterations else "the cap")
            restored[:, c : c + 1] = averaged * span + low
    return as_image(restored)
