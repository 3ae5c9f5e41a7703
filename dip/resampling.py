"""Resampling: the Lanczos kernel of the authors' code and PIL resizing of float images (the torch downsampler that
uses the kernel is `dip.physics.LanczosDownsampler`)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

from dip.errors import ConfigError, ImageError

PIL_METHODS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}


def lanczos_kernel(factor: int, phase: float = 0.5, support: int = 2) -> np.ndarray:
    """The 2-D Lanczos kernel of `get_kernel(factor, 'lanczos', phase, 2*support*factor + 1, support)`.

    As in the authors' `models/downsampler.py`: (kernel_width - 1)² taps for phase 0.5 (16×16 at ×4, 32×32 at ×8),
    kernel_width² for phase 0; float64, normalised to sum 1.
    """
    if factor < 1 or support < 1:
        raise ConfigError(f"Lanczos kernel: factor ({factor}) and support ({support}) must be positive integers")
    if phase not in (0.0, 0.5):
        raise ConfigError(f"Lanczos kernel: phase must be 0 or 0.5, got {phase}")
    kernel_width = 2 * support * factor + 1
    size = kernel_width - 1 if phase == 0.5 else kernel_width
    center = (kernel_width + 1) / 2.0
    index = np.arange(1, size + 1, dtype=np.float64)
    d = np.abs(index + phase - center) / factor
    safe = np.where(d == 0, 1.0, d)
    taps = np.where(
        d == 0, 1.0, support * np.sin(np.pi * safe) * np.sin(np.pi * safe / support) / (np.pi * np.pi * safe * safe)
    )
    kernel = np.outer(taps, taps)
    return kernel / kernel.sum()


def pil_resize(
    image: np.ndarray, size_hw: tuple[int, int], method: Literal["lanczos", "bicubic", "bilinear", "nearest"]
) -> np.ndarray:
    """Resize an (H, W, C) float image with Pillow on 8 bits, as the authors do (`Image.LANCZOS` is anti-aliased).

    The image is rounded to uint8 first and the result is k/255 exactly, so the output is byte-stable.
    """
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ImageError(f"resize: expected an (H, W, 1) or (H, W, 3) image, got shape {image.shape}")
    height, width = _checked_target(size_hw, method)
    data = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    pil = Image.fromarray(data[..., 0] if data.shape[2] == 1 else data)
    resized = np.asarray(pil.resize((width, height), PIL_METHODS[method]), dtype=np.float32) / 255.0
    return resized.reshape(height, width, image.shape[2])


def pil_resize_float(
    image: np.ndarray, size_hw: tuple[int, int], method: Literal["lanczos", "bicubic", "bilinear", "nearest"]
) -> np.ndarray:
    """Resize an (H, W, C) float image channel by channel as Pillow float ("F") images: nothing is quantised.

    Pillow's bicubic (a = −0.5, anti-aliased when shrinking) is MATLAB ``imresize``'s; the result is clipped to [0, 1].
    """
    if image.ndim != 3:
        raise ImageError(f"resize: expected an (H, W, C) image, got shape {image.shape}")
    height, width = _checked_target(size_hw, method)
    channels = [
        np.asarray(Image.fromarray(image[..., c].astype(np.float32)).resize((width, height), PIL_METHODS[method]))
        for c in range(image.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 1).astype(np.float32)


def _checked_target(size_hw: tuple[int, int], method: str) -> tuple[int, int]:
    """The target (height, width), after checking it is positive and `method` is a Pillow filter we name."""
    if method not in PIL_METHODS:
        raise ConfigError(f"resize method {method!r} is not one of {', '.join(PIL_METHODS)}")
    height, width = size_hw
    if height < 1 or width < 1:
        raise ConfigError(f"resize: target size {size_hw} must be positive")
    return height, width
