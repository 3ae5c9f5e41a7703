"""Classical methods the paper compares with: interpolation, BM3D/CBM3D, NLM, TV, biharmonic inpainting; for the
non-Gaussian noise kinds and JPEG, the median filter, BM3D after the Anscombe transform, the decoded JPEG itself; the
guided filter for flash/no-flash pairs; and deconvolution (Wiener, Richardson–Lucy, TV) for deblurring.

Each method maps an observation (float32 ``(H, W, C)`` in [0, 1]) and its task's parameters (``sigma``, ``factor``,
``mask``, ``peak``, ``guide`` or ``kernel`` and ``sigma``: the task object's ``baseline_arguments``) to a restored
image of the same convention; which methods solve which task is the task object's ``baselines``; `dip.methods`
holds their registry. BM3D needs the optional ``bm3d`` extra (non-commercial licence).
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.ndimage import median_filter, uniform_filter
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, inpaint_biharmonic, richardson_lucy
from skimage.restoration import wiener as skimage_wiener

from dip.errors import ConfigError, ImageError
from dip.io import check_image, check_mask
from dip.resampling import pil_resize_float


def bicubic(lr: np.ndarray, factor: int) -> np.ndarray:
    """Upscale by ``factor`` with Pillow's bicubic filter (a = -0.5, as MATLAB ``imresize``), in float."""
    return pil_resize_float(lr, _scaled_size(lr, factor, up=True), "bicubic")


def bicubic_downscale(hr: np.ndarray, factor: int) -> np.ndarray:
    """Downscale by ``factor`` with anti-aliased bicubic (MATLAB ``imresize``-style LR for the MATLAB protocol)."""
    return pil_resize_float(hr, _scaled_size(hr, factor, up=False), "bicubic")


def lanczos(lr: np.ndarray, factor: int) -> np.ndarray:
    """Upscale by ``factor`` with Pillow's Lanczos-3 filter, in float."""
    return pil_resize_float(lr, _scaled_size(lr, factor, up=True), "lanczos")


def bm3d_denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D (grey) or CBM3D (colour; Dabov et al. 2007) with the known noise level ``sigma`` on the 0–255 scale."""
    check_image(noisy)
    return _finish(_bm3d(noisy.astype(np.float64), _sigma(sigma) / 255))


def _bm3d(noisy: np.ndarray, sigma_psd: float) -> np.ndarray:
    """(C)BM3D of a float64 (H, W, C) image at noise std ``sigma_psd`` (the image's own scale), unclipped."""
    try:
        import bm3d
    except ImportError:
        raise ConfigError(
            "BM3D needs the optional `bm3d` package (non-commercial licence): pip install 'dip-bench[bm3d]'"
        ) from None
    if noisy.shape[-1] == 3:
        return np.reshape(bm3d.bm3d_rgb(noisy, sigma_psd), noisy.shape)
    return np.reshape(bm3d.bm3d(noisy[..., 0], sigma_psd), noisy.shape)


def bm3d_vst(noisy: np.ndarray, peak: float) -> np.ndarray:
    """Poisson (shot) noise: BM3D after the Anscombe transform (Mäkitalo & Foi 2011).

    The counts k = ``peak``·x0 become 2·√(k + 3/8), whose noise is near N(0, 1); (C)BM3D denoises them at σ = 1 and
    the closed-form approximation of the exact unbiased inverse, ¼D² + ¼√(3/2)D⁻¹ − 11/8 D⁻² + 5/8 √(3/2)D⁻³ − 1/8,
    maps them back (to 0 below D = 2√(3/8), the transform of k = 0); divided by ``peak``.
    """
    check_image(noisy)
    if isinstance(peak, bool) or not isinstance(peak, numbers.Real) or not 0 < peak < np.inf:
        raise ConfigError(f"the Poisson peak must be a positive number, not {peak!r}")
    stabilised = 2 * np.sqrt(noisy.astype(np.float64) * peak + 3 / 8)
    floor = 2 * np.sqrt(3 / 8)
    d = np.maximum(_bm3d(stabilised, 1.0), floor)
    root = np.sqrt(1.5)
    counts = d**2 / 4 + root / (4 * d) - 11 / (8 * d**2) + 5 * root / (8 * d**3) - 1 / 8
    return _finish(np.where(d > floor, np.maximum(counts, 0), 0) / peak)


def median(noisy: np.ndarray) -> np.ndarray:
    """The 3×3 median filter of each channel (``scipy.ndimage.median_filter``, mirrored borders): impulse noise."""
    check_image(noisy)
    return _finish(median_filter(noisy, size=(3, 3, 1), mode="mirror"))


def decoded(observed: np.ndarray, **arguments: object) -> np.ndarray:
    """The observation itself as the restored image (the decoded JPEG): the row every restoration must beat."""
    check_image(observed)
    return _finish(observed)


def nlm(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Non-local means (fast mode, 5×5 patches, 13×13 search) with h = 0.6 σ and the known σ subtracted.

    These are scikit-image's documented settings for fast mode with a known σ (``plot_nonlocal_means``).
    """
    check_image(noisy)
    s = _sigma(sigma) / 255
    out = denoise_nl_means(noisy, patch_size=5, patch_distance=6, h=0.6 * s, sigma=s, fast_mode=True, channel_axis=-1)
    return _finish(np.reshape(out, noisy.shape))  # a one-channel input comes back as (H, W)


def tv(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Total-variation denoising (Chambolle 2004) with weight σ/255, near the best on natural images at σ = 25, 50."""
    check_image(noisy)
    return _finish(denoise_tv_chambolle(noisy, weight=_sigma(sigma) / 255, channel_axis=-1))


def biharmonic(observed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill the missing pixels (``mask == 0``) by biharmonic inpainting; known pixels are kept as they are."""
    check_image(observed)
    if not isinstance(mask, np.ndarray) or mask.shape != (*observed.shape[:2], 1):
        shape = getattr(mask, "shape", type(mask).__name__)
        raise ImageError(f"mask must be (H, W, 1) matching the image {observed.shape[:2]}, got {shape}")
    check_mask(mask, "the biharmonic baseline's mask")
    known = mask[..., 0] >= 0.5
    filled = inpaint_biharmonic(observed, ~known, channel_axis=-1)
    return _finish(np.where(known[..., None], observed, filled))


GUIDED_RADIUS, GUIDED_EPS = 8, 0.2**2
"""The guided filter's window radius (a (2r+1)² box) and regularisation ε on [0, 1] intensities."""


def guided_filter(
    observed: np.ndarray, guide: np.ndarray, radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS
) -> np.ndarray:
    """He et al.'s guided filter (ECCV 2010), channel by channel: in each (2r+1)² window the output is a·I + b, the
    least-squares fit of the observed image p by the guide I with ridge ε on a; a and b are averaged over the windows
    that hold a pixel. A grey guide guides every channel; windows are mirrored at the borders."""
    check_image(observed)
    check_image(guide)
    if guide.shape[:2] != observed.shape[:2] or guide.shape[2] not in (1, observed.shape[2]):
        raise ImageError(
            f"the guide {guide.shape} must have the image's size {observed.shape[:2]} and 1 or its channels"
        )
    size = (2 * radius + 1, 2 * radius + 1, 1)
    p, i = observed.astype(np.float64), np.broadcast_to(guide, observed.shape).astype(np.float64)

    def mean(x: np.ndarray) -> np.ndarray:
        return uniform_filter(x, size=size, mode="reflect")

    mean_i, mean_p = mean(i), mean(p)
    a = (mean(i * p) - mean_i * mean_p) / (mean(i * i) - mean_i**2 + eps)
    b = mean_p - a * mean_i
    return _finish(mean(a) * i + mean(b))


# Deconvolution settings, chosen on 256² crops of scikit-image's astronaut, camera and coffee at the schema's levels
# (Gaussian σ 1.6, motion 9 px 45°; noise σ 2) and Gaussian σ 3: each beats the observation there. Longer motion
# blurs (15 px) would need a larger Wiener balance and fewer Richardson–Lucy iterations.
WIENER_BALANCE_PER_VARIANCE = 2000.0
"""Wiener balance per (σ/255)² of noise, at least ``WIENER_BALANCE_MIN``."""
WIENER_BALANCE_MIN = 1e-3
RL_ITERATIONS = 15
"""Richardson–Lucy iterations (its only regularisation: stopping early)."""
TV_WEIGHT_PER_SIGMA = 0.5
"""TV deconvolution weight λ per σ/255 of noise, at least ``TV_WEIGHT_MIN``."""
TV_WEIGHT_MIN = 1e-3


def wiener(blurred: np.ndarray, kernel: np.ndarray, sigma: float) -> np.ndarray:
    """Wiener–Hunt deconvolution with a Laplacian regulariser (scikit-image ``wiener``), balance
    ``WIENER_BALANCE_PER_VARIANCE`` · (σ/255)², at least ``WIENER_BALANCE_MIN``; on the mirror-padded image."""
    padded, crop = _mirror_pad(blurred, kernel)
    balance = max(WIENER_BALANCE_PER_VARIANCE * (_noise_sigma(sigma) / 255) ** 2, WIENER_BALANCE_MIN)
    planes = [skimage_wiener(padded[..., c], kernel, balance, clip=False) for c in range(padded.shape[-1])]
    return _finish(np.stack(planes, axis=-1)[crop])


def richardson_lucy_deconvolution(blurred: np.ndarray, kernel: np.ndarray, sigma: float) -> np.ndarray:
    """Richardson–Lucy (scikit-image), ``RL_ITERATIONS`` iterations, on the mirror-padded image; ``sigma`` is not
    used."""
    _noise_sigma(sigma)
    padded, crop = _mirror_pad(blurred, kernel)
    planes = [richardson_lucy(padded[..., c], kernel, num_iter=RL_ITERATIONS) for c in range(padded.shape[-1])]
    return _finish(np.stack(planes, axis=-1)[crop])


def tv_deconvolution(blurred: np.ndarray, kernel: np.ndarray, sigma: float) -> np.ndarray:
    """Total-variation deconvolution (Chambolle–Pock, `dip.deconvolution.tv_deconvolve`, its `TV_ITERATIONS`) with
    weight λ = ``TV_WEIGHT_PER_SIGMA`` · σ/255, at least ``TV_WEIGHT_MIN``."""
    from dip.deconvolution import tv_deconvolve

    weight = max(TV_WEIGHT_PER_SIGMA * _noise_sigma(sigma) / 255, TV_WEIGHT_MIN)
    return _finish(tv_deconvolve(blurred, _kernel_for(blurred, kernel), weight))


def _scaled_size(image: np.ndarray, factor: int, *, up: bool) -> tuple[int, int]:
    """The ``(height, width)`` of ``image`` scaled by ``factor`` (down: the sides must divide by it)."""
    check_image(image)
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ConfigError(f"scale factor must be a positive integer, not {factor!r}")
    h, w = image.shape[:2]
    if up:
        return h * factor, w * factor
    if h % factor or w % factor:
        raise ImageError(f"image is {h}×{w}: both sides must divide by the factor {factor} (crop it first)")
    return h // factor, w // factor


def _sigma(sigma: float) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 < sigma < np.inf:
        raise ConfigError(f"noise sigma must be a positive number on the 0–255 scale, not {sigma!r}")
    return float(sigma)


def _noise_sigma(sigma: float) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 <= sigma < np.inf:
        raise ConfigError(f"noise sigma must be a number ≥ 0 on the 0–255 scale, not {sigma!r}")
    return float(sigma)


def _kernel(kernel: np.ndarray) -> np.ndarray:
    """A blur kernel checked: 2-D, odd sides, finite, sum 1."""
    array = np.asarray(kernel, dtype=np.float64)
    if array.ndim != 2 or not all(side % 2 for side in array.shape) or not np.isfinite(array).all():
        raise ConfigError(f"a blur kernel must be a finite 2-D array with odd sides, not shape {array.shape}")
    if abs(array.sum() - 1) > 1e-6:
        raise ConfigError(f"a blur kernel must sum to 1, not {array.sum():g}")
    return array


def _kernel_for(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The checked kernel of a checked image whose sides exceed the kernel's."""
    check_image(image)
    array = _kernel(kernel)
    side = max(array.shape)
    if min(image.shape[:2]) <= side:
        raise ImageError(f"image is {image.shape[:2]}: both sides must exceed the blur kernel's side {side}")
    return array


def _mirror_pad(image: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, tuple[slice, slice]]:
    """`image` mirror-padded by the kernel's side on every border (the task's boundary), and the slices back."""
    pad = max(_kernel_for(image, kernel).shape)
    padded = np.pad(image.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    return padded, (slice(pad, pad + image.shape[0]), slice(pad, pad + image.shape[1]))


def _finish(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0, 1).astype(np.float32)
