"""Denoising: Gaussian noise of σ (the DIP paper's) or the non-Gaussian noise kinds of ES-WMV (impulse, shot,
speckle at an ImageNet-C severity); A is the identity."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from dip.errors import ConfigError
from dip.tasks.base import NUMBER, Observation, Operator, PaperFit

if TYPE_CHECKING:
    import torch
    from torch import nn

NOISE_SEVERITIES: dict[str, tuple[float, ...]] = {
    "impulse": (0.03, 0.06, 0.09, 0.17, 0.27),
    "shot": (60, 25, 12, 5, 3),
    "speckle": (0.15, 0.2, 0.35, 0.45, 0.6),
}
"""The non-Gaussian noise kinds of denoising and their constant at ImageNet-C severities 1–5 (Hendrycks & Dietterich
2019, `corruptions.py`): the salt-and-pepper amount, the Poisson photon count at intensity 1, the speckle std."""

ZERO_SHOT = ("zs-n2n", "noise2fast")
"""The zero-shot denoisers of `dip.methods.zero_shot`: blind, for any zero-mean noise."""


class Denoising(Operator):
    """Noise on the clean image x in [0, 1], one of:

    - Gaussian (a plain number σ): x0 = clip(x + N(0, (σ/255)²), 0, 1), as the authors' `get_noisy_image`;
    - the non-Gaussian kinds of ES-WMV (Wang et al., TMLR 2023), which take ImageNet-C's definitions and constants
      (`NOISE_SEVERITIES`; level 'KIND-S', severity S): impulse, `skimage.util.random_noise(x, 's&p', amount=c)` (a
      fraction c of the values set to 0 or 1, half each); shot, x0 = clip(Poisson(c·x)/c, 0, 1); speckle,
      x0 = clip(x + x·N(0, c²), 0, 1). ES-WMV runs severities 2, 3 and 4 (its data sets `*_Noise_2` … `*_Noise_4`).
    """

    task = "denoising"
    level_form = (
        "σ on the 0–255 scale written as a plain number, e.g. '25' or '50' (Gaussian), or a noise kind and its "
        "ImageNet-C severity 1–5: 'impulse-2', 'shot-3', 'speckle-4'"
    )

    def __init__(self, sigma: float | None = None, *, kind: str = "gaussian", severity: int | None = None) -> None:
        if kind == "gaussian":
            if sigma is None or not (math.isfinite(sigma) and sigma > 0) or severity is not None:
                raise ConfigError(f"denoising: σ must be a positive number (0–255 scale), not {sigma!r}")
        elif kind not in NOISE_SEVERITIES:
            raise ConfigError(f"denoising: noise kind {kind!r} is not one of gaussian, {', '.join(NOISE_SEVERITIES)}")
        elif sigma is not None or severity not in range(1, len(NOISE_SEVERITIES[kind]) + 1):
            raise ConfigError(f"denoising: {kind} noise takes a severity 1–5 and no σ, not {severity!r}")
        self.kind = kind
        self.sigma = None if sigma is None else float(sigma)
        self.severity = severity

    @classmethod
    def parse(cls, level: str, *, mask_path: str | None = None) -> Denoising:
        if isinstance(level, str) and re.fullmatch(NUMBER, level) and float(level) != 0:
            return cls(float(level))
        match = re.fullmatch(rf"({'|'.join(NOISE_SEVERITIES)})-([1-5])", level) if isinstance(level, str) else None
        if not match:
            raise cls._bad_level(level)
        return cls(kind=match[1], severity=int(match[2]))

    @property
    def noise_sigma(self) -> float | None:
        return self.sigma

    @property
    def constant(self) -> float | None:
        """The noise kind's ImageNet-C constant at this severity (None for Gaussian noise)."""
        return None if self.severity is None else NOISE_SEVERITIES[self.kind][self.severity - 1]

    @property
    def level(self) -> str:
        return f"{self.sigma:g}" if self.kind == "gaussian" else f"{self.kind}-{self.severity}"

    @property
    def label(self) -> str:
        return f"σ={self.level}" if self.kind == "gaussian" else f"{self.kind} noise, severity {self.severity}"

    def params(self) -> dict[str, Any]:
        if self.kind == "gaussian":
            return {"sigma": self.sigma}
        return {"noise": self.kind, "severity": self.severity, "noise_constant": self.constant}

    def _degrade(self, clean, rng, box, source_hw):
        if self.kind == "gaussian":
            noisy = clean + rng.normal(0.0, self.sigma / 255.0, size=clean.shape)
        elif self.kind == "impulse":
            from skimage.util import random_noise

            noisy = random_noise(clean, mode="s&p", amount=self.constant, rng=rng)
        elif self.kind == "shot":
            noisy = rng.poisson(clean.astype(np.float64) * self.constant) / self.constant
        else:
            noisy = clean + clean * rng.normal(0.0, self.constant, size=clean.shape)
        return np.clip(noisy, 0.0, 1.0).astype(np.float32), None, {}

    def forward_model(self, observation: Observation, device: torch.device | str = "cpu") -> nn.Module:
        from torch import nn

        return nn.Identity().to(device)

    def paper_fit(self) -> PaperFit:
        """Gaussian: the paper's text (Section 4): 1800 iterations, output averaging (EMA 0.99), reg-noise 1/30
        (σ=25; the notebook's 1/20 from σ=50), backtracking on a 5 dB drop. The F16 notebook runs 3000 iterations
        instead. Non-Gaussian kinds: the ES-WMV authors' notebook (`ES_WMV.ipynb`: Adam, lr 0.01, 5000 iterations,
        ES-WMV with window 100 and patience 1000, the last output), with DIP's reg-noise 1/30 and no backtracking."""
        if self.kind != "gaussian":
            return {
                "iterations": 5000,
                "lr": 0.01,
                "reg_noise_std": 1 / 30,
                "ema": 0.0,
                "backtrack_db": 0.0,
                "stopping": "es-wmv",
            }
        assert self.sigma is not None
        return {
            "iterations": 1800,
            "lr": 0.01,
            "reg_noise_std": 1 / 20 if self.sigma >= 50 else 1 / 30,
            "ema": 0.99,
            "backtrack_db": 5.0,
        }

    @property
    def paper_preset(self) -> str:
        return "paper"

    @property
    def baselines(self) -> tuple[str, ...]:  # type: ignore[override]  # each noise kind has its own
        """Gaussian: BM3D, NLM, TV and FFDNet at the known σ; impulse: the median filter; shot: BM3D after the
        Anscombe transform; speckle: NLM at the noise's mean σ (`baseline_arguments`). The zero-shot nets (ZS-N2N,
        Noise2Fast) on every zero-mean noise (Gaussian, shot, speckle), not on impulse noise, whose mean is not the
        image."""
        classical = {"gaussian": ("bm3d", "nlm", "tv"), "impulse": ("median",), "shot": ("bm3d-vst",)}
        if self.kind == "impulse":
            return classical["impulse"]
        learned = ("ffdnet",) if self.kind == "gaussian" else ()
        return (*classical.get(self.kind, ("nlm",)), *ZERO_SHOT, *learned)

    def baseline_arguments(self, observation: Observation) -> dict[str, Any]:
        """σ (0–255) for Gaussian noise; none for impulse; the photon count `peak` for shot noise; for speckle, its
        mean σ over the image, c·√(mean(x0²)/(1 + c²)) (E[x0²] = (1 + c²)·x², clipping ignored), ×255."""
        if self.kind == "gaussian":
            return {"sigma": self.sigma}
        if self.kind == "shot":
            return {"peak": self.constant}
        if self.kind == "speckle":
            c = float(self.constant)
            mean_square = float(np.mean(np.square(observation.observed, dtype=np.float64)))
            return {"sigma": max(c * math.sqrt(mean_square / (1 + c * c)), 1 / 255) * 255}
        return {}
