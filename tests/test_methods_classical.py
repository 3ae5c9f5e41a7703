"""dip.methods.classical and the registry of dip.methods: bicubic on Set5 as published; denoisers, inpainting and
deconvolution beat their input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dip.errors import ConfigError, ImageError
from dip.io import crop_to_multiple, read_image
from dip.methods import METHODS, run_method
from dip.methods.classical import (
    bicubic,
    bicubic_downscale,
    biharmonic,
    bm3d_vst,
    guided_filter,
    lanczos,
    median,
    nlm,
    tv,
)
from dip.metrics import psnr
from dip.tasks import TASK_TYPES, make_operator

SET5 = ("baby", "bird", "butterfly", "head", "woman")


def _set5_bicubic(set5_dir: Path, protocol: str) -> list[float]:
    """PSNR of bicubic ×4 (MATLAB-style LR of the whole modcropped image, then bicubic up) on Set5."""
    scores = []
    for name in SET5:
        hr, _ = crop_to_multiple(read_image(set5_dir / f"{name}.png"), 4)
        sr = bicubic(bicubic_downscale(hr, 4), 4)
        scores.append(psnr(sr, hr, protocol=protocol, factor=4))
    return scores


def test_set5_x4_bicubic_matlab_protocol(set5_dir: Path) -> None:
    # PROTOCOL.md: Y, shave 4. Reproduced to < 0.01 dB because y-matlab rounds Y to 8-bit levels, as MATLAB's
    # rgb2ycbcr does on uint8 images (with Y left in float, head is 0.04 dB off).
    scores = _set5_bicubic(set5_dir, "y-matlab")
    np.testing.assert_allclose(scores, [31.78, 30.18, 22.10, 31.58, 26.47], atol=0.02)
    assert np.mean(scores) == pytest.approx(28.42, abs=0.01)


def test_set5_x4_bicubic_dip_protocol(set5_dir: Path) -> None:
    # PROTOCOL.md, bicubic row of the paper's Set5 table: the y-dip region and the centre-crop offsets.
    scores = _set5_bicubic(set5_dir, "y-dip")
    np.testing.assert_allclose(scores, [31.78, 30.20, 22.13, 31.34, 26.75], atol=0.01)


def test_interpolation_shapes_and_range(rgb_image: np.ndarray, gray_image: np.ndarray) -> None:
    for image in (rgb_image, gray_image):
        for upscale in (bicubic, lanczos):
            out = upscale(image, 3)
            assert out.shape == (144, 192, image.shape[2]) and out.dtype == np.float32
            assert out.min() >= 0 and out.max() <= 1
        assert bicubic_downscale(image, 4).shape == (12, 16, image.shape[2])


def test_interpolation_reproduces_smooth_images(rgb_image: np.ndarray) -> None:
    for upscale in (bicubic, lanczos):
        assert psnr(upscale(bicubic_downscale(rgb_image, 2), 2), rgb_image) > 35


def test_interpolation_does_not_quantise() -> None:
    flat = np.full((4, 4, 1), 0.3, np.float32) + np.float32(1e-4)
    np.testing.assert_allclose(bicubic(flat, 2), 0.3001, atol=1e-6)


def test_downscale_needs_divisible_sides(rgb_image: np.ndarray) -> None:
    with pytest.raises(ImageError, match="48×64: both sides must divide by the factor 5"):
        bicubic_downscale(rgb_image, 5)
    with pytest.raises(ConfigError, match="positive integer"):
        bicubic(rgb_image, 0)


def _noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma / 255, image.shape)
    return np.clip(image + noise, 0, 1).astype(np.float32)


def test_bm3d_beats_the_noisy_input_by_3_db(textured_rgb: np.ndarray) -> None:
    pytest.importorskip("bm3d", reason="the optional bm3d extra is not installed")
    noisy = _noisy(textured_rgb, 25)
    out = run_method("bm3d", noisy, sigma=25)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert psnr(out, textured_rgb) > psnr(noisy, textured_rgb) + 3


def test_bm3d_gray(gray_image: np.ndarray) -> None:
    pytest.importorskip("bm3d", reason="the optional bm3d extra is not installed")
    noisy = _noisy(gray_image, 25)
    out = run_method("bm3d", noisy, sigma=25)
    assert out.shape == gray_image.shape and psnr(out, gray_image) > psnr(noisy, gray_image) + 3


@pytest.mark.parametrize("denoise", [nlm, tv])
def test_nlm_and_tv_beat_the_noisy_input(textured_rgb: np.ndarray, gray_image: np.ndarray, denoise) -> None:
    for clean in (textured_rgb, gray_image):
        noisy = _noisy(clean, 25)
        out = denoise(noisy, 25)
        assert out.shape == clean.shape and out.dtype == np.float32
        assert psnr(out, clean) > psnr(noisy, clean) + 2


def test_missing_bm3d_gives_install_hint(monkeypatch: pytest.MonkeyPatch, rgb_image: np.ndarray) -> None:
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'dip-bench\[bm3d\]'"):
        run_method("bm3d", rgb_image, sigma=25)


def test_biharmonic_fills_a_smooth_image(rgb_image: np.ndarray) -> None:
    mask = (np.random.default_rng(0).random((*rgb_image.shape[:2], 1)) >= 0.5).astype(np.float32)
    mask[16:28, 24:40] = 0  # and a hole
    observed = rgb_image * mask
    out = run_method("biharmonic", observed, mask=mask)
    known = mask[..., 0] == 1
    np.testing.assert_array_equal(out[known], rgb_image[known])
    assert psnr(out, rgb_image) > 40


def test_biharmonic_checks_the_mask(rgb_image: np.ndarray) -> None:
    with pytest.raises(ImageError, match="mask must be"):
        biharmonic(rgb_image, np.ones(rgb_image.shape[:2], np.float32))


def test_every_task_baseline_exists() -> None:
    assert make_operator("denoising", "25").baselines == ("bm3d", "nlm", "tv", "zs-n2n", "noise2fast", "ffdnet")
    assert TASK_TYPES["super-resolution"].baselines == ("bicubic", "lanczos")
    assert TASK_TYPES["inpainting"].baselines == ("biharmonic",)
    assert TASK_TYPES["flash-no-flash"].baselines == ("guided-filter",)
    assert TASK_TYPES["deblurring"].baselines == ("wiener", "richardson-lucy", "tv-deconvolution")
    levels = {"denoising": ["25", "impulse-2", "shot-2", "speckle-2"], "super-resolution": ["4"], "jpeg": ["10"]}
    levels |= {"inpainting": ["random50"], "flash-no-flash": ["pair"], "deblurring": ["gauss1.6-n2"]}
    assert set(levels) == set(TASK_TYPES)
    solved = {
        name for task, names in levels.items() for level in names for name in make_operator(task, level).baselines
    }
    assert solved == set(METHODS)
    assert all(name == baseline.name for name, baseline in METHODS.items())


def test_the_median_filter_removes_impulse_noise(textured_rgb: np.ndarray) -> None:
    noisy = make_operator("denoising", "impulse-3").observe(textured_rgb, 0).observed
    clean = textured_rgb[: noisy.shape[0], : noisy.shape[1]]
    assert psnr(median(noisy), clean) > psnr(noisy, clean) + 6


def test_bm3d_after_the_anscombe_transform_denoises_shot_noise_without_bias() -> None:
    pytest.importorskip("bm3d", reason="the optional bm3d extra is not installed")
    flat = np.full((32, 32, 1), 0.3, np.float32)  # grey: BM3D, quicker than CBM3D
    noisy = make_operator("denoising", "shot-3").observe(flat, 0).observed  # 12 photons at intensity 1
    restored = bm3d_vst(noisy, peak=12)
    assert abs(float(restored.mean()) - 0.3) < 0.01 and restored.std() < noisy.std() / 4
    with pytest.raises(ConfigError, match="Poisson peak must be a positive number"):
        bm3d_vst(noisy, peak=0)


def test_the_jpeg_baseline_is_the_decoded_image_itself(rgb_image: np.ndarray) -> None:
    assert np.array_equal(run_method("jpeg", rgb_image, sigma=3.0), rgb_image)


def test_run_method_rejects_bad_requests(rgb_image: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="unknown method 'dncnn'; choose one of: bm3d"):
        run_method("dncnn", rgb_image, sigma=25)
    with pytest.raises(ConfigError, match="noise sigma"):
        run_method("tv", rgb_image, sigma=-1)


def test_run_method_passes_the_factor(rgb_image: np.ndarray) -> None:
    np.testing.assert_array_equal(run_method("lanczos", rgb_image, factor=2), lanczos(rgb_image, 2))


def test_guided_filter_by_the_image_itself_with_a_tiny_eps_keeps_it(textured_rgb: np.ndarray) -> None:
    out = guided_filter(textured_rgb, textured_rgb, radius=4, eps=1e-8)
    np.testing.assert_allclose(out, textured_rgb, atol=2e-3)


def test_guided_filter_smooths_noise_where_the_guide_is_flat() -> None:
    rng = np.random.default_rng(0)
    flat = np.full((48, 48, 3), 0.5, np.float32)
    noisy = np.clip(flat + rng.normal(0, 0.1, flat.shape), 0, 1).astype(np.float32)
    out = run_method("guided-filter", noisy, guide=flat)
    assert out.std() < noisy.std() / 10
    np.testing.assert_allclose(out.mean(), noisy.mean(), atol=1e-3)


def test_guided_filter_transfers_the_guides_edge() -> None:
    guide = np.zeros((48, 48, 1), np.float32)
    guide[:, 24:] = 1
    image = np.repeat(guide, 3, axis=2) * 0.6 + 0.2
    out = guided_filter(image, guide)  # a grey guide guides every channel
    # a box filter of the same window spreads the 0.6 step over 17 px (0.035 per px); the guide keeps it in one
    np.testing.assert_array_less(0.4, out[:, 24] - out[:, 23])
    np.testing.assert_allclose(out[:, [0, -1]], image[:, [0, -1]], atol=0.03)


def test_guided_filter_checks_the_guide(rgb_image: np.ndarray) -> None:
    with pytest.raises(ImageError, match="the guide"):
        guided_filter(rgb_image, rgb_image[:-1])


@pytest.mark.parametrize("level", ["gauss1.6-n2", "motion9-45deg-n2"])
@pytest.mark.parametrize("method", ["wiener", "richardson-lucy", "tv-deconvolution"])
def test_deconvolution_baselines_beat_the_blurred_input(level: str, method: str) -> None:
    """On a 64×96 astronaut crop, with the kernel and noise σ of the task object's `baseline_arguments`."""
    from skimage import data

    clean = (data.astronaut()[140:204, 170:266] / 255).astype(np.float32)
    operator = make_operator("deblurring", level)
    obs = operator.observe(clean, seed=0)
    out = run_method(method, obs.observed, **operator.baseline_arguments(obs))
    assert out.shape == clean.shape and out.dtype == np.float32
    assert psnr(out, clean) > psnr(obs.observed, clean) + 0.5


def test_deconvolution_baselines_check_kernel_and_sigma(rgb_image: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="odd sides"):
        run_method("wiener", rgb_image, kernel=np.ones((2, 2)) / 4, sigma=2)
    with pytest.raises(ConfigError, match="sum to 1"):
        run_method("tv-deconvolution", rgb_image, kernel=np.ones((3, 3)), sigma=2)
    with pytest.raises(ConfigError, match="noise sigma"):
        run_method("richardson-lucy", rgb_image, kernel=np.ones((3, 3)) / 9, sigma=-1)
    for method in ("wiener", "richardson-lucy", "tv-deconvolution"):
        with pytest.raises(ImageError, match="exceed the blur kernel's side 49"):
            run_method(method, rgb_image, kernel=np.ones((49, 49)) / 49**2, sigma=2)
