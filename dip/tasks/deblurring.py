"""Deblurring: x0 = clip(k ∗ x + N(0, (s/255)²), 0, 1) for a Gaussian or straight motion kernel k; the kernels and the
blur in numpy here, A in torch (`dip.physics.Blur`).

Boundary: whole-sample mirror reflection (`d c b | a b c d | c b a`; scipy.ndimage `mode="mirror"`, torch
`F.pad(mode="reflect")`), so the observation keeps the image's size, every metric compares it with the clean crop as
it is, and the border of the observation looks like a photograph's rather than wrapped around (circular) or dark (zero).
It is the padding of the DIP net itself (`ReflectionPad2d`).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from dip.errors import ConfigError, ImageError
from dip.tasks.base import NUMBER, Observation, Operator, PaperFit

if TYPE_CHECKING:
    import torch
    from torch import nn

BLUR_KERNELS = ("gauss", "motion")
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


class Deblurring(Operator):
    """Blur plus noise: x0 = clip(k ∗ x + N(0, (s/255)²), 0, 1), k a Gaussian or a straight motion kernel.

    The convolution has a mirror boundary (`blur` above), so x0 keeps the crop's size, and A (`dip.physics.Blur`) is
    the same convolution in torch. There is no DIP paper setting for deblurring (see `paper_fit`).
    """

    task = "deblurring"
    level_form = (
        "'gaussS-nN' (a Gaussian kernel of σ = S px and noise σ = N on the 0–255 scale, e.g. 'gauss1.6-n2') or "
        "'motionL-Adeg-nN' (a straight motion blur L px long at A degrees anticlockwise, 0 ≤ A < 180, e.g. "
        "'motion9-45deg-n2')"
    )
    baselines = ("wiener", "richardson-lucy", "tv-deconvolution")

    def __init__(self, kernel: str, size: float, noise: float, angle: float = 0.0) -> None:
        if kernel not in BLUR_KERNELS:
            raise ConfigError(f"deblurring: kernel {kernel!r} is not one of {', '.join(BLUR_KERNELS)}")
        if not (math.isfinite(size) and size > 0) or (kernel == "motion" and size < 1):
            raise ConfigError(f"deblurring: the {kernel} kernel needs a size of at least 1 px, not {size!r}")
        if not (math.isfinite(noise) and noise >= 0):
            raise ConfigError(f"deblurring: noise σ must be a number ≥ 0 (0–255 scale), not {noise!r}")
        if not (0 <= angle < 180) or (kernel == "gauss" and angle != 0):
            raise ConfigError(f"deblurring: angle {angle!r} must be in [0, 180) and only given for a motion kernel")
        self.kernel_kind = kernel
        self.size = float(size)
        self.noise = float(noise)
        self.angle = float(angle)

    @classmethod
    def parse(cls, level: str, *, mask_path: str | None = None) -> Deblurring:
        if not isinstance(level, str):
            raise cls._bad_level(level)
        gauss = re.fullmatch(rf"gauss{NUMBER}-n{NUMBER}", level)
        motion = re.fullmatch(rf"motion{NUMBER}-{NUMBER}deg-n{NUMBER}", level)
        if gauss and float(gauss[1]) > 0:
            return cls("gauss", float(gauss[1]), float(gauss[2]))
        if motion and float(motion[1]) >= 1 and float(motion[2]) < 180:
            return cls("motion", float(motion[1]), float(motion[3]), float(motion[2]))
        raise cls._bad_level(level)

    @property
    def level(self) -> str:
        if self.kernel_kind == "gauss":
            return f"gauss{self.size:g}-n{self.noise:g}"
        return f"motion{self.size:g}-{self.angle:g}deg-n{self.noise:g}"

    @property
    def label(self) -> str:
        if self.kernel_kind == "gauss":
            return f"Gaussian σ={self.size:g}, noise σ={self.noise:g}"
        return f"motion {self.size:g} px {self.angle:g}°, noise σ={self.noise:g}"

    @property
    def kernel_radius(self) -> int:
        """Half the side of `kernel`, known before it is built (`kernel_radius`)."""
        return kernel_radius(self.kernel_kind, self.size, self.angle)

    @property
    def kernel(self) -> np.ndarray:
        """The blur kernel (odd sides, sum 1): `gaussian_kernel` or `motion_kernel`."""
        if self.kernel_kind == "gauss":
            return gaussian_kernel(self.size)
        return motion_kernel(self.size, self.angle)

    def params(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel_kind,
            "size": self.size,
            "angle": self.angle,
            "noise_sigma": self.noise,
            "boundary": "mirror",
        }

    def _degrade(self, clean, rng, box, source_hw):
        radius = self.kernel_radius
        if min(clean.shape[:2]) <= radius:
            raise ImageError(f"image is {clean.shape[:2]}: a side must exceed the blur kernel's radius {radius}")
        kernel = self.kernel
        blurred = blur(clean, kernel) + rng.normal(0.0, self.noise / 255.0, size=clean.shape)
        return np.clip(blurred, 0.0, 1.0).astype(np.float32), None, {"kernel_shape": list(kernel.shape)}

    def forward_model(self, observation: Observation, device: torch.device | str = "cpu") -> nn.Module:
        from dip.physics import Blur

        return Blur(self.kernel, observation.observed.shape[2]).to(device)

    def paper_fit(self) -> PaperFit:
        """No published DIP setting for deblurring: the super-resolution notebook's (×4), whose A is also a blur."""
        return {"iterations": 2000, "lr": 0.01, "reg_noise_std": 0.03, "ema": 0.0, "backtrack_db": None}

    @property
    def paper_preset(self) -> str:
        return "paper"

    def baseline_arguments(self, observation: Observation) -> dict[str, Any]:
        return {"kernel": self.kernel, "sigma": self.noise}
