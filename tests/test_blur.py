"""dip.tasks.deblurring, physics.Blur, dip.deconvolution: kernels, A against scipy, its adjoint, the TV solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage, signal

from dip.deconvolution import divergence, gradient, tv_deconvolve
from dip.io import to_numpy, to_tensor
from dip.physics import Blur
from dip.tasks.deblurring import blur, gaussian_kernel, kernel_radius, motion_kernel


def _odd_kernel() -> np.ndarray:
    kernel = np.random.default_rng(3).random((5, 3))
    return kernel / kernel.sum()


def test_gaussian_kernel_is_scipys_gaussian_filter() -> None:
    kernel = gaussian_kernel(1.6)
    assert kernel.shape == (13, 13) and kernel.sum() == pytest.approx(1) and kernel.argmax() == 13 * 6 + 6
    image = np.random.default_rng(0).random((40, 36, 3))
    expected = ndimage.gaussian_filter(image, (1.6, 1.6, 0), mode="mirror")
    np.testing.assert_allclose(blur(image, kernel), expected, atol=1e-12)


@pytest.mark.parametrize("size", [0.3, 1, 1.6, 2.5, 3.7, 9, 12.5, 21])
def test_the_kernel_radius_is_known_before_the_kernel_is_built(size) -> None:
    """`kernel_radius` (which sizes a kernel against the image before it takes memory) is the built kernel's."""
    assert kernel_radius("gauss", size) == gaussian_kernel(size).shape[0] // 2
    for angle in np.arange(0, 180, 7.5) if size >= 1 else ():
        assert kernel_radius("motion", size, angle) == motion_kernel(size, angle).shape[0] // 2, angle


def test_motion_kernel_is_a_normalised_line() -> None:
    horizontal = motion_kernel(9, 0)
    expected = np.zeros((9, 9))
    expected[4] = 1 / 9
    np.testing.assert_allclose(horizontal, expected, atol=1e-12)
    np.testing.assert_allclose(motion_kernel(9, 90), expected.T, atol=1e-12)
    diagonal = motion_kernel(9, 45)  # up and to the right: row 0 is the top
    assert diagonal.shape == (7, 7) and np.count_nonzero(diagonal) == 7
    assert np.all(np.fliplr(diagonal).diagonal() > 0.1)
    for length, angle in ((9, 45), (15, 30), (4, 100)):
        kernel = motion_kernel(length, angle)
        assert kernel.sum() == pytest.approx(1) and kernel.min() >= 0 and kernel.shape[0] % 2 == 1
        np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-12)
        rows, cols = np.nonzero(kernel)
        extent = np.hypot(rows - kernel.shape[0] // 2, cols - kernel.shape[1] // 2).max()
        assert length / 2 - 1 <= extent <= length / 2 + 0.5


@pytest.mark.parametrize(
    "kernel", [_odd_kernel(), gaussian_kernel(1.6), motion_kernel(9, 30)], ids=["odd", "gauss", "motion"]
)
def test_blur_operator_matches_scipy_convolve2d_with_a_mirror_boundary(kernel: np.ndarray) -> None:
    image = np.random.default_rng(1).random((34, 40, 3))
    rh, rw = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = np.pad(image, ((rh, rh), (rw, rw), (0, 0)), mode="reflect")
    reference = np.stack([signal.convolve2d(padded[..., c], kernel, mode="valid") for c in range(3)], axis=-1)
    torch_a = to_numpy(Blur(kernel, 3)(to_tensor(image.astype(np.float32))))
    np.testing.assert_allclose(torch_a, reference, atol=2e-6)
    np.testing.assert_allclose(blur(image, kernel), reference, atol=1e-12)


def test_blur_adjoint_is_autograds_and_satisfies_the_inner_product_identity() -> None:
    operator = Blur(_odd_kernel(), 3)
    x, y = torch.rand(1, 3, 30, 26, requires_grad=True), torch.rand(1, 3, 30, 26)
    (operator(x) * y).sum().backward()  # the gradient of ⟨Ax, y⟩ is Aᵀy
    np.testing.assert_allclose(operator.adjoint(y).numpy(), x.grad.numpy(), atol=1e-6)
    x = x.detach()
    assert float((operator(x) * y).sum()) == pytest.approx(float((x * operator.adjoint(y)).sum()), rel=1e-5)


def test_blur_needs_odd_kernel_sides() -> None:
    with pytest.raises(ValueError, match="odd sides"):
        Blur(np.ones((4, 3)) / 12, 1)


def test_divergence_is_minus_the_adjoint_of_the_gradient() -> None:
    x, p = torch.rand(1, 2, 12, 9, dtype=torch.float64), torch.rand(2, 1, 2, 12, 9, dtype=torch.float64)
    assert float((gradient(x) * p).sum()) == pytest.approx(-float((x * divergence(p)).sum()))


def test_tv_deconvolution_inverts_a_blur_of_a_piecewise_constant_image() -> None:
    clean = np.full((32, 32, 1), 0.2, np.float32)
    clean[8:24, 10:22] = 0.8
    kernel = gaussian_kernel(1.6)
    blurred = blur(clean, kernel).astype(np.float32)
    out = tv_deconvolve(blurred, kernel, weight=1e-3)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert np.abs(out - clean).mean() < 0.6 * np.abs(blurred - clean).mean()  # 0.5 measured
