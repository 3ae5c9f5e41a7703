"""PSNR and SSIM under named protocols (docs/reproduction.md, "Two LR conventions, two protocols").

- ``rgb``: all channels, whole image, peak 1.0 (denoising, inpainting).
- ``y-matlab``: the common SR protocol of MATLAB scripts: BT.601 Y rounded to 8-bit levels (``rgb2ycbcr`` on uint8
  images), whole image shaved by ``factor`` pixels on every side.
- ``y-dip``: Y channel over the centre crop whose sides divide by 32, shaved ``[4:-5, 4:-5]``, as the authors'
  ``super-resolution_eval_script.py`` ("used to get the numbers in the paper").

The Y protocols read a grey image as RGB with equal channels, as that script and MATLAB do, so a grey image and its
three-channel copy score the same under every protocol.

SSIM uses Wang et al.'s settings: Gaussian window σ = 1.5, no sample-covariance correction.
"""

from __future__ import annotations

import math

import numpy as np

from dip.errors import ConfigError, ImageError
from dip.io import check_image, ensure_channels

PROTOCOLS = ("rgb", "y-matlab", "y-dip")
SSIM_WINDOW = "gaussian-1.5"
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])  # 219 × (0.299, 0.587, 0.114), ITU-R BT.601
_DIP_MULTIPLE, _DIP_SHAVE = 32, (4, 5)  # div-32 centre crop, then [4:-5, 4:-5]


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of a [0, 1] RGB image, ``(16 + 65.481 R + 128.553 G + 24.966 B) / 255``, as ``(H, W, 1)``.

    Values lie in [16/255, 235/255]. A grey ``(H, W, 1)`` image is RGB with equal channels, as the authors' script and
    MATLAB read a grey file: ``Y = (16 + 219 g) / 255`` (65.481 + 128.553 + 24.966 = 219).
    """
    rgb = ensure_channels(image, 3).astype(np.float64)
    return ((16 + rgb @ _Y_WEIGHTS) / 255)[..., None]


def psnr(estimate: np.ndarray, reference: np.ndarray, *, protocol: str = "rgb", factor: int | None = None) -> float:
    """PSNR in dB (peak 1.0) of ``estimate`` against ``reference`` under ``protocol``: 10·log10(1 / MSE) in float64,
    as scikit-image's ``peak_signal_noise_ratio`` with ``data_range=1`` (tested to agree; not called, since it imports
    scipy.stats, 1.4 s of every `dip evaluate` job); ``inf`` if they are equal."""
    a, b = _prepare(estimate, reference, protocol, factor)
    mse = float(np.mean((a - b) ** 2))
    with np.errstate(divide="ignore"):
        return float(10 * np.log10(1.0 / mse)) if mse > 0 else math.inf


def ssim(estimate: np.ndarray, reference: np.ndarray, *, protocol: str = "rgb", factor: int | None = None) -> float:
    """SSIM (Wang et al. 2004: Gaussian window σ = 1.5, population covariance) under ``protocol``."""
    from skimage.metrics import structural_similarity

    a, b = _prepare(estimate, reference, protocol, factor)
    if min(a.shape[:2]) < 11:
        raise ImageError(f"SSIM needs at least 11×11 pixels to compare, got {a.shape[0]}×{a.shape[1]}")
    return float(
        structural_similarity(
            b,
            a,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
    )


def evaluate(
    estimate: np.ndarray, reference: np.ndarray, *, protocol: str, factor: int | None = None
) -> dict[str, float | str]:
    """PSNR and SSIM of ``estimate`` under ``protocol``, with the protocol and SSIM window named."""
    return {
        "psnr": psnr(estimate, reference, protocol=protocol, factor=factor),
        "ssim": ssim(estimate, reference, protocol=protocol, factor=factor),
        "protocol": protocol,
        "ssim_window": SSIM_WINDOW,
    }


def _prepare(
    estimate: np.ndarray, reference: np.ndarray, protocol: str, factor: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate the pair and return the float64 arrays the protocol compares."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown metric protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    check_image(estimate, "estimate")
    check_image(reference, "reference")
    if estimate.shape != reference.shape:
        raise ImageError(f"estimate is {estimate.shape} but reference is {reference.shape}: shapes must match")
    a, b = estimate.astype(np.float64), reference.astype(np.float64)
    if protocol == "rgb":
        return a, b
    a, b = rgb_to_y(a), rgb_to_y(b)
    h, w = a.shape[:2]
    if protocol == "y-matlab":
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ConfigError(f"protocol 'y-matlab' needs the scale factor (a positive integer), got {factor!r}")
        if min(h, w) <= 2 * factor:
            raise ImageError(f"image is {h}×{w}: too small to shave {factor} px from every side")
        region = np.s_[factor:-factor, factor:-factor]
        a, b = np.round(a * 255) / 255, np.round(b * 255) / 255
    else:
        if min(h, w) < _DIP_MULTIPLE:
            raise ImageError(f"image is {h}×{w} but protocol 'y-dip' needs both sides ≥ {_DIP_MULTIPLE}")
        top, left = (h % _DIP_MULTIPLE) // 2, (w % _DIP_MULTIPLE) // 2
        bottom, right = top + h - h % _DIP_MULTIPLE, left + w - w % _DIP_MULTIPLE
        first, last = _DIP_SHAVE
        region = np.s_[top + first : bottom - last, left + first : right - last]
    return a[region], b[region]
