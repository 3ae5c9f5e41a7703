"""Blur kernels and the blur of the deblurring task, in numpy (the torch A of the loss is `dip.physics.Blur`).

Boundary: whole-sample mirror reflection (`d c b | a b c d | c b a`; scipy.ndimage `mode="mirror"`, torch
`F.pad(mode="reflect")`), so the observation keeps the image's size, every metric compares it with the clean crop as
it is, and the border of the observation looks like a photograph's rather than wrapped around (circular) or dark (zero).
It is the padding of the DIP net itself (`ReflectionPad2d`).
"""

from __future__ import annotations

import math

import numpy as np

MOTION_SAMPLES = 64
"""Samples per pixel of line length when a motion kernel is rasterised."""


def kernel_radius(kind: str, size: float, angle: float = 0.0) -> int:
    """Half the side of the kernel that `gaussian_kernel(size)` (kind 'gauss') or `motion_kernel(size, angle)` builds,
    found without building it, so that a kernel too large for the image is refused before it takes the memory."""
    if kind == "gauss":
        return int(4 * size + 0.5)
    count = max(1, round(MOTION_SAMPLES * size))
    theta = math.radians(angle)
    ends = [(i + 0.5) / count * size - size / 2 for i in (0, count - 1)]  # |round(t·c)| grows with |t|
    return int(max(max(abs(np.round(t * math.cos(theta))), abs(np.round(-t * math.sin(theta)))) for t in ends))


def gaussian_kernel(sigma: float) -> np.ndarray:
    """The isotropic Gaussian exp(-r²/2σ²) on a (2r+1)² grid, r = int(4σ + 0.5) (scipy's `gaussian_filter`), sum 1."""
    radius = kernel_radius("gauss", sigma)
    line = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel = np.outer(line, line)
    return (kernel / kernel.sum()).astype(np.float64)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A straight motion blur: a centred line `length` px long at `angle` degrees (anticlockwise from the +x axis).

    Each pixel weighs the length of the line inside it (64 samples per pixel of length, each counted in the pixel it
    falls in), normalised to sum 1; the side is the smallest odd one that holds the line. A horizontal line of odd
    length L is L equal taps; every kernel is symmetric under a 180° turn.
    """
    count = max(1, round(MOTION_SAMPLES * length))
    t = (np.arange(count) + 0.5) / count * length - length / 2
    theta = math.radians(angle)
    cols = np.round(t * math.cos(theta)).astype(int)
    rows = np.round(-t * math.sin(theta)).astype(int)
    radius = int(max(np.abs(cols).max(), np.abs(rows).max()))
    kernel = np.zeros((2 * radius + 1, 2 * radius + 1))
    np.add.at(kernel, (rows + radius, cols + radius), 1.0)
    return kernel / kernel.sum()


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel of an (H, W, C) image with `kernel` (odd sides), mirror boundary; float64."""
    from scipy import ndimage  # here, not at import: every `dip` command imports the task objects

    planes = [ndimage.convolve(image[..., c].astype(np.float64), kernel, mode="mirror") for c in range(image.shape[-1])]
    return np.stack(planes, axis=-1)
