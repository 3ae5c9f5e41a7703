"""dip.metrics: Y conversion, PSNR/SSIM per protocol, the regions each protocol compares."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dip.errors import ConfigError, ImageError
from dip.metrics import PROTOCOLS, _prepare, evaluate, psnr, rgb_to_y, ssim


def test_rgb_to_y_known_values() -> None:
    pixels = np.array([[[1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]], dtype=np.float32)
    y = rgb_to_y(pixels)
    assert y.shape == (1, 5, 1)
    expected = np.array([235, 16, 16 + 65.481, 16 + 128.553, 16 + 24.966]) / 255
    np.testing.assert_allclose(y[0, :, 0], expected, rtol=1e-12)
    gray = np.full((2, 2, 1), 0.25, np.float32)
    np.testing.assert_allclose(rgb_to_y(gray), (16 + 219 * 0.25) / 255, rtol=1e-12)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_grey_image_scores_as_its_three_channel_copy(protocol: str, gray_image: np.ndarray) -> None:
    """A grey file is RGB with equal channels to the authors' script and MATLAB: same PSNR and SSIM."""
    rng = np.random.default_rng(0)
    estimate = np.clip(gray_image + rng.normal(0, 0.05, gray_image.shape), 0, 1).astype(np.float32)
    grey = evaluate(estimate, gray_image, protocol=protocol, factor=2)
    rgb = evaluate(np.repeat(estimate, 3, -1), np.repeat(gray_image, 3, -1), protocol=protocol, factor=2)
    assert grey["psnr"] == pytest.approx(rgb["psnr"], abs=1e-9)
    assert grey["ssim"] == pytest.approx(rgb["ssim"], abs=1e-9)


@pytest.mark.parametrize("mse", [1e-2, 1e-4])
def test_psnr_of_known_mse(mse: float) -> None:
    reference = np.full((16, 16, 3), 0.5)
    estimate = reference + np.sqrt(mse) * np.where(np.indices((16, 16, 3)).sum(0) % 2, 1, -1)
    assert psnr(estimate, reference) == pytest.approx(10 * math.log10(1 / mse), abs=1e-9)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_psnr_is_scikit_images_on_the_region_each_protocol_compares(protocol: str, textured_rgb: np.ndarray) -> None:
    noisy = np.clip(textured_rgb + np.random.default_rng(0).normal(0, 0.05, textured_rgb.shape), 0, 1)
    estimate, reference = _prepare(noisy, textured_rgb, protocol, 2)
    expected = peak_signal_noise_ratio(reference, estimate, data_range=1.0)
    assert psnr(noisy, textured_rgb, protocol=protocol, factor=2) == pytest.approx(expected, abs=1e-9)


def test_identical_images_give_infinite_psnr_and_unit_ssim(rgb_image: np.ndarray) -> None:
    assert psnr(rgb_image, rgb_image) == math.inf
    assert ssim(rgb_image, rgb_image) == pytest.approx(1.0)


def _error_at(shape: tuple[int, int], row: int, col: int) -> tuple[np.ndarray, np.ndarray]:
    """A reference and an estimate that differ at one pixel only."""
    reference = np.full((*shape, 3), 0.5)
    estimate = reference.copy()
    estimate[row, col] += 0.2
    return estimate, reference


# 70×100 -> div-32 centre crop 64×96 at (3, 2), then its [4:-5, 4:-5]: rows 7..61, columns 6..92.
@pytest.mark.parametrize(("row", "col"), [(7, 6), (61, 92), (7, 92), (61, 6)])
def test_y_dip_region_includes_its_corners(row: int, col: int) -> None:
    assert math.isfinite(psnr(*_error_at((70, 100), row, col), protocol="y-dip"))


@pytest.mark.parametrize(("row", "col"), [(6, 50), (62, 50), (30, 5), (30, 93), (0, 0), (69, 99)])
def test_y_dip_ignores_errors_outside_its_region(row: int, col: int) -> None:
    estimate, reference = _error_at((70, 100), row, col)
    assert psnr(estimate, reference, protocol="y-dip") == math.inf
    assert ssim(estimate, reference, protocol="y-dip") == pytest.approx(1.0)


@pytest.mark.parametrize("factor", [2, 4])
def test_y_matlab_shaves_factor_pixels(factor: int) -> None:
    last = 40 - factor - 1
    for row, col in [(factor, factor), (last, last)]:
        assert math.isfinite(psnr(*_error_at((40, 40), row, col), protocol="y-matlab", factor=factor))
    for row, col in [(factor - 1, 20), (20, last + 1)]:
        assert psnr(*_error_at((40, 40), row, col), protocol="y-matlab", factor=factor) == math.inf


def test_y_matlab_rounds_y_to_8_bit_levels() -> None:
    reference = np.full((40, 40, 3), 0.5)
    estimate = reference + 0.4 / 255  # moves Y by 0.34 levels: same 8-bit Y level
    assert psnr(estimate, reference, protocol="y-matlab", factor=2) == math.inf
    assert math.isfinite(psnr(estimate, reference, protocol="y-dip"))


def test_y_protocols_use_luma_only() -> None:
    reference = np.full((64, 64, 3), 0.5)
    chroma_only = reference + np.array([0.1, -0.1 * 65.481 / 128.553, 0.0])  # Y unchanged
    assert psnr(chroma_only, reference, protocol="y-dip") > 100
    assert psnr(chroma_only, reference, protocol="rgb") < 30


def test_ssim_uses_the_gaussian_window(textured_rgb: np.ndarray) -> None:
    noisy = np.clip(textured_rgb + np.random.default_rng(1).normal(0, 0.1, textured_rgb.shape), 0, 1)
    gaussian = ssim(noisy, textured_rgb)
    wang = structural_similarity(
        textured_rgb,
        noisy,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=-1,
    )
    uniform = structural_similarity(textured_rgb, noisy, data_range=1.0, channel_axis=-1)
    assert gaussian == pytest.approx(wang, abs=1e-6)
    assert abs(gaussian - uniform) > 1e-3


def test_evaluate_reports_protocol_and_window(rgb_image: np.ndarray) -> None:
    result = evaluate(rgb_image * 0.9, rgb_image, protocol="rgb")
    assert result == {
        "psnr": psnr(rgb_image * 0.9, rgb_image),
        "ssim": ssim(rgb_image * 0.9, rgb_image),
        "protocol": "rgb",
        "ssim_window": "gaussian-1.5",
    }


def test_bad_inputs_are_refused(rgb_image: np.ndarray) -> None:
    with pytest.raises(ImageError, match="shapes must match"):
        psnr(rgb_image[:-1], rgb_image)
    with pytest.raises(ImageError, match="shapes must match"):
        ssim(rgb_image[..., :1], rgb_image)
    with pytest.raises(ConfigError, match="needs the scale factor"):
        psnr(rgb_image, rgb_image, protocol="y-matlab")
    with pytest.raises(ConfigError, match="unknown metric protocol 'y'"):
        psnr(rgb_image, rgb_image, protocol="y")
    with pytest.raises(ImageError, match="y-dip' needs both sides ≥ 32"):
        psnr(rgb_image[:20], rgb_image[:20], protocol="y-dip")
    with pytest.raises(ImageError, match="float"):
        psnr((rgb_image * 255).astype(np.uint8), (rgb_image * 255).astype(np.uint8))
    with pytest.raises(ImageError, match="at least 11×11"):
        ssim(rgb_image[:8, :8], rgb_image[:8, :8])
