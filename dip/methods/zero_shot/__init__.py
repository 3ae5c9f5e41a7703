"""Zero-shot denoisers: nets fitted on the one noisy image, with no training data and no noise level (ZS-N2N,
Noise2Fast). What they share: the image as a batch on the device and back, and the seed of a fit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from dip.io import check_image
from dip.record import check_seed


def as_batch(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """A checked float32 (H, W, C) image as a (1, C, H, W) tensor on `device`."""
    check_image(image)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None].to(device)


def as_image(batch: torch.Tensor) -> np.ndarray:
    """A (1, C, H, W) tensor as a float32 (H, W, C) image clipped to [0, 1]."""
    return np.clip(batch[0].detach().float().cpu().numpy().transpose(1, 2, 0), 0, 1).astype(np.float32)


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's random state set from `seed` inside (the net's initialisation), and restored after."""
    check_seed(seed)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
