"""The regularised DIP variants a fit can run as options (`FitSettings`): DIP-TV's total-variation term and Bayesian
DIP's stochastic gradient Langevin dynamics with the posterior mean of the outputs."""

from __future__ import annotations

from typing import Any

import torch

TV_EPSILON = 1e-8
"""Keeps the isotropic TV differentiable where the image is flat."""


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Isotropic total variation of (N, C, H, W) images, the mean over pixels and channels of
    sqrt(Δx² + Δy² + ε) with forward differences (the last row and column take a zero difference).

    DIP-TV (Liu, Sun, Xu, Kamilov, "Image Restoration Using Total Variation Regularized Deep Image Prior", ICASSP
    2019) adds λ·TV(f(z)) to DIP's data term ‖A·f(z) − x0‖²; here both terms are means over pixels
    (`FitSettings.tv_weight` is λ on that scale)."""
    dx = torch.nn.functional.pad(image[..., :, 1:] - image[..., :, :-1], (0, 1))
    dy = torch.nn.functional.pad(image[..., 1:, :] - image[..., :-1, :], (0, 0, 0, 1))
    return torch.sqrt(dx * dx + dy * dy + TV_EPSILON).mean()


class LangevinDynamics:
    """Bayesian DIP by stochastic gradient Langevin dynamics (Cheng, Gadelha, Maji, Sheldon, "A Bayesian Perspective on
    the Deep Image Prior", CVPR 2019; their code's settings: after each Adam step, Gaussian noise of std
    `sigma` × lr (`param_noise_sigma` 2) is added to every convolution weight (the 4-dimensional parameters), Adam has
    weight decay 5e-8 (`FitSettings.weight_decay`), and the output is the posterior mean: the mean of the outputs of
    every `every`-th iteration (`MCMC_iter` 50) after `burnin` iterations (7000)).

    The noise comes from a generator of its own, so that the rest of the fit's random streams stay as they are."""

    def __init__(self, sigma: float, lr: float, burnin: int, every: int, seed: int, device: torch.device) -> None:
        self.std, self.burnin, self.every = sigma * lr, burnin, every
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.total: torch.Tensor | None = None
        self.samples = 0

    def step(self, conv_weights: list[torch.Tensor]) -> None:
        """Add the Langevin noise to the net's convolution weights, in the net's order (after the optimiser's step)."""
        with torch.no_grad():
            for weight in conv_weights:
                noise = torch.randn(weight.shape, generator=self.generator, device=weight.device, dtype=weight.dtype)
                weight.add_(noise, alpha=self.std)

    def observe(self, iteration: int, output: torch.Tensor) -> None:
        """Add the output of `iteration` to the posterior mean when it is a sample (after burn-in, every `every`)."""
        if iteration > self.burnin and (iteration - self.burnin) % self.every == 0:
            self.total = output.detach().clone() if self.total is None else self.total.add_(output.detach())
            self.samples += 1

    def mean(self) -> torch.Tensor | None:
        """The posterior mean of the outputs sampled so far; None before the first sample."""
        return None if self.total is None else self.total / self.samples

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "total": self.total, "samples": self.samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The posterior mean so far; the fit resumes the generator (`state["generator"]`) itself."""
        self.total, self.samples = state["total"], state["samples"]
