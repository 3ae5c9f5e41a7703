"""Total-variation deconvolution by Chambolle–Pock, with the deblurring task's own A (`dip.physics.Blur`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dip.io import to_numpy, to_tensor
from dip.physics import Blur

TV_ITERATIONS = 200
STEP = 0.99 / 12**0.5
"""Primal and dual step, τ = σ: τσ‖K‖² < 1 for K = (A, ∇), as ‖∇‖² ≤ 8 and ‖A‖² ≤ 4 (a normalised non-negative kernel
has norm ≤ 1, and mirror padding repeats a pixel at most 4 times, near a corner)."""


def tv_deconvolve(
    blurred: np.ndarray, kernel: np.ndarray, weight: float, iterations: int = TV_ITERATIONS
) -> np.ndarray:
    """argmin over x in [0, 1] of ½‖k ∗ x − y‖² + weight · TV(x) (Chambolle & Pock 2011, Algorithm 1, θ = 1).

    TV is isotropic per channel (forward differences, zero at the far border); k ∗ x has the mirror boundary of the
    observation, and its adjoint comes from autograd. (H, W, C) float in, float32 out; float64 inside.
    """
    observed = to_tensor(blurred)
    blur = Blur(kernel, blurred.shape[-1])
    x = observed.clone()
    x_bar = x.clone()
    dual_data = torch.zeros_like(observed)
    dual_tv = torch.zeros(2, *observed.shape, dtype=observed.dtype)
    with torch.no_grad():
        for _ in range(iterations):
            dual_data = (dual_data + STEP * (blur(x_bar) - observed)) / (1 + STEP)
            dual_tv = dual_tv + STEP * gradient(x_bar)
            dual_tv = dual_tv / torch.clamp(dual_tv.norm(dim=0, keepdim=True) / weight, min=1)
            previous = x
            x = torch.clamp(x - STEP * (blur.adjoint(dual_data) - divergence(dual_tv)), 0, 1)
            x_bar = 2 * x - previous
    return to_numpy(x)


def gradient(x: torch.Tensor) -> torch.Tensor:
    """Forward differences of (N, C, H, W) along H and W (zero at the last row / column), stacked first."""
    down = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    right = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    return torch.stack((down, right))


def divergence(p: torch.Tensor) -> torch.Tensor:
    """−∇ᵀ: the divergence of a (2, N, C, H, W) field, so that ⟨∇x, p⟩ = −⟨x, div p⟩."""
    down, right = p[0, ..., :-1, :], p[1, ..., :, :-1]
    return (
        F.pad(down, (0, 0, 0, 1)) - F.pad(down, (0, 0, 1, 0)) + F.pad(right, (0, 1, 0, 0)) - F.pad(right, (1, 0, 0, 0))
    )
