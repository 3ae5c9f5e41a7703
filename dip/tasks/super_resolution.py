"""Super-resolution: x0 is the image downscaled by a factor (PIL Lanczos on 8 bits, or MATLAB-style bicubic); A is
the authors' Lanczos-2 downsampler (`dip.physics.LanczosDownsampler`)."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from dip.errors import ConfigError
from dip.resampling import pil_resize, pil_resize_float
from dip.tasks.base import Observation, Operator, PaperFit

if TYPE_CHECKING:
    import torch
    from torch import nn

SR_FACTORS = (2, 3, 4, 8)
SR_LR_CONVENTIONS = {
    "lanczos": "PIL Lanczos on 8 bits (the DIP authors' LR)",
    "bicubic": "MATLAB-style anti-aliased bicubic in float (the common SR benchmarks' LR)",
}


class SuperResolution(Operator):
    """Downscaling by `factor`: x0 = 8-bit Pillow LANCZOS resize (anti-aliased), as `load_LR_HR_imgs_sr`.

    A is the authors' Lanczos-2 downsampler, phase 0.5 (phase 0 for ×3, whose odd factor needs an odd kernel for
    each output to sit on its block centre as Pillow's do). The HR crop's sides divide by lcm(multiple, factor).
    """

    task = "super-resolution"
    level_form = (
        "a scale factor '2', '3', '4' or '8' (LR by PIL Lanczos, the DIP authors' convention), or the factor with "
        "'-bicubic' (e.g. '4-bicubic': MATLAB-style bicubic LR, the common SR benchmarks' convention)"
    )
    protocols = ("y-dip", "y-matlab")
    baselines = ("bicubic", "lanczos")

    def __init__(self, factor: int, lr: str = "lanczos") -> None:
        if isinstance(factor, bool) or factor not in SR_FACTORS:
            raise ConfigError(f"super-resolution: factor must be one of {SR_FACTORS}, not {factor!r}")
        if lr not in SR_LR_CONVENTIONS:
            raise ConfigError(f"super-resolution: LR convention {lr!r} is not one of {', '.join(SR_LR_CONVENTIONS)}")
        self.factor = int(factor)
        self.lr = lr
        self.phase = 0.5 if self.factor % 2 == 0 else 0.0

    @classmethod
    def parse(cls, level: str, *, mask_path: str | None = None) -> SuperResolution:
        match = re.fullmatch(r"(\d+)(?:-([a-z]+))?", level) if isinstance(level, str) else None
        if not match or int(match[1]) not in SR_FACTORS or match[2] not in (None, *SR_LR_CONVENTIONS):
            raise cls._bad_level(level)
        return cls(int(match[1]), match[2] or "lanczos")

    @property
    def level(self) -> str:
        return str(self.factor) if self.lr == "lanczos" else f"{self.factor}-{self.lr}"

    @property
    def label(self) -> str:
        return f"×{self.factor} {'Lanczos' if self.lr == 'lanczos' else self.lr} LR"

    def params(self) -> dict[str, Any]:
        """`kernel`/`phase`: DIP's downsampler A in the loss; `lr`: how the observed LR image was made."""
        return {"factor": self.factor, "kernel": "lanczos2", "phase": self.phase, "lr": self.lr}

    def _multiple(self, multiple: int) -> int:
        return math.lcm(multiple, self.factor)

    def _observed_multiple(self, multiple: int) -> int:
        """An LR photo's sides divide by this, so that factor × them divide by `multiple`."""
        return multiple // math.gcd(multiple, self.factor)

    def _observed_hw(self, clean_hw: tuple[int, int]) -> tuple[int, int]:
        return clean_hw[0] // self.factor, clean_hw[1] // self.factor

    def _restored_hw(self, observed_hw: tuple[int, int]) -> tuple[int, int]:
        return observed_hw[0] * self.factor, observed_hw[1] * self.factor

    def _as_observed(self, image, box, source_hw):
        """A low-resolution photo as it is: no LR convention made it (`lr` null)."""
        return image, None, {"lr": None, "lr_shape": list(image.shape)}

    def _degrade(self, clean, rng, box, source_hw):
        low_hw = self._observed_hw(clean.shape[:2])
        if self.lr == "lanczos":
            low = pil_resize(clean, low_hw, "lanczos")
        else:
            low = pil_resize_float(clean, low_hw, "bicubic")
        return low, None, {"lr_shape": list(low.shape)}

    def forward_model(self, observation: Observation, device: torch.device | str = "cpu") -> nn.Module:
        from dip.physics import LanczosDownsampler

        channels = observation.observed.shape[2]
        return LanczosDownsampler(channels, self.factor, self.phase, preserve_size=True).to(device)

    def paper_fit(self) -> PaperFit:
        """The super-resolution notebook: 2000 iterations and reg-noise 0.03 (×4 and below), 4000 and 0.05 (×8)."""
        large = self.factor >= 8
        return {
            "iterations": 4000 if large else 2000,
            "lr": 0.01,
            "reg_noise_std": 0.05 if large else 0.03,
            "ema": 0.0,
            "backtrack_db": None,
        }

    @property
    def paper_preset(self) -> str:
        return "paper"

    def metric_arguments(self) -> dict[str, Any]:
        return {"factor": self.factor}

    def baseline_arguments(self, observation: Observation) -> dict[str, Any]:
        return {"factor": self.factor}
