"""Flash/no-flash: the no-flash photo is x0 as it is and its flash photo the net's fixed input z; A is the identity
and there is no ground truth."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dip.errors import ConfigError, ImageError
from dip.io import read_image
from dip.tasks.base import Observation, Operator, PaperFit

if TYPE_CHECKING:
    import torch
    from torch import nn


class FlashNoFlash(Operator):
    """Flash/no-flash reconstruction (the authors' `flash-no-flash.ipynb`): x0 is the no-flash photo as it is, and the
    flash photo of the same scene, cropped alike, is the net's fixed input z. A is the identity; there is no ground
    truth, so no PSNR: the figures and the viewer show the images."""

    task = "flash-no-flash"
    level_form = "'pair' (a no-flash photo with its flash photo: dip degrade --flash-file)"
    baselines = ("guided-filter",)
    has_ground_truth = False

    def __init__(self, flash_path: str | None = None) -> None:
        self.flash_path = None if flash_path is None else str(flash_path)

    @classmethod
    def parse(cls, level: str, *, mask_path: str | None = None, flash_path: str | None = None) -> FlashNoFlash:
        if level != "pair":
            raise cls._bad_level(level)
        return cls(flash_path)

    @property
    def level(self) -> str:
        return "pair"

    @property
    def label(self) -> str:
        return "flash / no-flash pair"

    @property
    def needs_flash_file(self) -> bool:
        return True

    def params(self) -> dict[str, Any]:
        return {"flash_path": self.flash_path}

    def net_input(self, observation: Observation) -> np.ndarray:
        if observation.guide is None:
            raise ConfigError("flash-no-flash: the observation has no flash photo")
        return observation.guide

    def _degrade(self, clean, rng, box, source_hw):
        return self._as_observed(clean, box, source_hw)

    def _guide(self, box, source_hw):
        if self.flash_path is None:
            raise ConfigError("flash-no-flash: needs the flash photo of the pair (dip degrade --flash-file)")
        flash = read_image(self.flash_path)
        if flash.shape[:2] != tuple(source_hw):
            raise ImageError(
                f"{self.flash_path}: the flash photo is {flash.shape[0]}×{flash.shape[1]} but the no-flash photo is "
                f"{source_hw[0]}×{source_hw[1]}: a pair needs two photos of one size"
            )
        top, left, height, width = box
        return flash[top : top + height, left : left + width].copy()

    def forward_model(self, observation: Observation, device: torch.device | str = "cpu") -> nn.Module:
        from torch import nn

        return nn.Identity().to(device)

    def paper_fit(self) -> PaperFit:
        """The flash-no-flash notebook: Adam lr 0.1, 601 iterations, no reg-noise, the last output."""
        return {"iterations": 601, "lr": 0.1, "reg_noise_std": 0.0, "ema": 0.0, "backtrack_db": None}

    @property
    def paper_preset(self) -> str:
        return "flash-no-flash"

    def baseline_arguments(self, observation: Observation) -> dict[str, Any]:
        return {"guide": self.net_input(observation)}
