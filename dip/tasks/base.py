"""The contract of a restoration task: `Operator` (a task at one level, the one owner of its facts), the
`Observation` it makes and the `PaperFit` settings it knows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NotRequired, TypedDict

import numpy as np

from dip.errors import ConfigError, ImageError
from dip.io import crop_to_multiple
from dip.record import check_seed

if TYPE_CHECKING:  # torch is imported only where an operator builds its A, so that `dip evaluate` starts fast
    import torch
    from torch import nn

NUMBER = r"(\d+(?:\.\d+)?)"
"""A number in a level string (digits, an optional decimal part), as a regular expression group."""


@dataclass
class Observation:
    """An observation x0 with its ground truth (None without one), mask, metadata and guide image: flash-no-flash's
    flash photo, the net's input z (see docs/ARCHITECTURE.md)."""

    observed: np.ndarray
    clean: np.ndarray | None
    mask: np.ndarray | None
    meta: dict[str, Any]
    guide: np.ndarray | None = None

    @property
    def has_ground_truth(self) -> bool:
        """Whether the observation has the clean image that metrics need."""
        return self.clean is not None


class PaperFit(TypedDict):
    """The fit settings the paper (or the authors' notebook) uses for a task and level; `FitSettings` field names."""

    iterations: int
    lr: float
    reg_noise_std: float
    ema: float
    backtrack_db: float
    """0: no backtracking."""
    stopping: NotRequired[str]
    """A stopping rule of `dip.stopping` where the task's source stops early (default: `fixed`)."""


class Operator(ABC):
    """A task at one level, the one owner of its facts.

    `parse` reads the level string (the only parser of level strings), `observe` makes x0 from a clean image and
    `forward_model` is the A of the loss ‖A·f(z) − x0‖². The task also knows its display `label`, the paper's fit
    settings and net for the level (`paper_fit`, `paper_preset`), its metric `protocols` (the first one is the
    table's) and its `baselines` with the arguments they take (`baseline_arguments`).
    """

    task: ClassVar[str]
    level_form: ClassVar[str]
    """The level grammar, for messages and `--help`."""
    protocols: ClassVar[tuple[str, ...]] = ("rgb",)
    baselines: ClassVar[tuple[str, ...]]
    """Names of `dip.methods.METHODS` that solve this task."""
    has_ground_truth: ClassVar[bool] = True
    """False for a task whose observation is a photo as it is, never made from a clean image (flash-no-flash)."""

    @classmethod
    @abstractmethod
    def parse(cls, level: str, *, mask_path: str | None = None) -> Operator:
        """The operator of a level string (e.g. '25', '4-bicubic', 'random50'); a ConfigError for a bad one."""

    @classmethod
    def _bad_level(cls, level: object) -> ConfigError:
        return ConfigError(f"bad {cls.task} level {level!r}: use {cls.level_form}")

    @property
    @abstractmethod
    def level(self) -> str:
        """The canonical level string (e.g. '25', '4', 'random50')."""

    @property
    @abstractmethod
    def label(self) -> str:
        """How the level is shown in tables and figures (σ=25, ×4 Lanczos LR, random 50 %)."""

    @abstractmethod
    def paper_fit(self) -> PaperFit:
        """The paper's fit settings for this level (docs/reproduction.md)."""

    @property
    @abstractmethod
    def paper_preset(self) -> str:
        """The model preset the authors use for this task and level."""

    @property
    def needs_mask_file(self) -> bool:
        """Whether each image needs a mask file of its own (inpainting level 'file')."""
        return False

    @property
    def needs_flash_file(self) -> bool:
        """Whether each image needs a flash photo of its own (flash-no-flash)."""
        return False

    @property
    def takes_photo(self) -> bool:
        """Whether an already-degraded photo can be this level's observation as it is (`observe(observed=True)`)."""
        return True

    @property
    def noise_sigma(self) -> float | None:
        """The σ (0–255 scale) of the observation's Gaussian noise where the task knows it (the noise-level stopping
        rule's `FitSettings.noise_sigma`); None elsewhere."""
        return None

    @property
    def metric_protocol(self) -> str:
        """The protocol of the tables: the paper's for this task."""
        return self.protocols[0]

    def metric_arguments(self) -> dict[str, Any]:
        """Keyword arguments the metric protocols need (the scale factor for y-matlab)."""
        return {}

    def baseline_arguments(self, observation: Observation) -> dict[str, Any]:
        """The keyword arguments of this task's baselines for `observation`."""
        return {}

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The operator's parameters, for records."""

    @abstractmethod
    def forward_model(self, observation: Observation, device: torch.device | str = "cpu") -> nn.Module:
        """The differentiable A mapping the restored (1, C, H, W) image to the observation's space."""

    @abstractmethod
    def _degrade(
        self, clean: np.ndarray, rng: np.random.Generator, box: tuple[int, int, int, int], source_hw: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        """Observed image, mask and extra metadata for the cropped `clean` (`box` = its crop in the source)."""

    def _multiple(self, multiple: int) -> int:
        return multiple

    def _observed_multiple(self, multiple: int) -> int:
        """What the sides of an already-degraded image are cropped to divide by, for the restored image's to divide
        by `multiple`."""
        return multiple

    def _observed_hw(self, clean_hw: tuple[int, int]) -> tuple[int, int]:
        return clean_hw

    def _restored_hw(self, observed_hw: tuple[int, int]) -> tuple[int, int]:
        """The restored image's (H, W) for an observation of `observed_hw`: the inverse of `_observed_hw`."""
        return observed_hw

    def _as_observed(
        self, image: np.ndarray, box: tuple[int, int, int, int], source_hw: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        """Observed image, mask and extra metadata of the cropped already-degraded `image`: x0 as it is."""
        return image, None, {}

    def _guide(self, box: tuple[int, int, int, int], source_hw: tuple[int, int]) -> np.ndarray | None:
        """The observation's guide image (the net's input z), cropped by `box`; None for a task without one."""
        return None

    def net_input(self, observation: Observation) -> np.ndarray | None:
        """The net's fixed input z when the task gives it (flash-no-flash: the flash photo); None: the net's own."""
        return None

    def observe(
        self,
        image: np.ndarray,
        seed: int,
        *,
        multiple: int = 32,
        source: str | None = None,
        labels: dict[str, str] | None = None,
        observed: bool = False,
    ) -> Observation:
        """Centre-crop a clean `image` to what the net needs and degrade it with `numpy.random.default_rng(seed)`;
        with `observed` (always for a task without ground truth), take the image as x0 as it is: no ground truth.

        `source` (the image's file or dataset id) and `labels` (e.g. dataset, image) go into `meta` as they are.
        """
        check_seed(seed)
        as_is = observed or not self.has_ground_truth
        image = np.asarray(image, dtype=np.float32)
        try:
            crop, box = crop_to_multiple(
                image, self._observed_multiple(multiple) if as_is else self._multiple(multiple)
            )
        except ImageError as error:
            raise ImageError(f"{source}: {error}" if source else str(error)) from None
        if as_is:
            x0, mask, extra = self._as_observed(crop, box, image.shape[:2])
        else:
            x0, mask, extra = self._degrade(crop, np.random.default_rng(seed), box, image.shape[:2])
        meta = {
            "task": self.task,
            "level": self.level,
            "seed": int(seed),
            "crop": [int(v) for v in box],
            "source": source,
            "source_shape": list(image.shape),
            **self.params(),
            **extra,
            "labels": dict(labels or {}),
        }
        if as_is:
            meta["ground_truth"] = False  # absent: true (the observations written before it was recorded)
        guide = self._guide(box, image.shape[:2])
        return Observation(x0.astype(np.float32), None if as_is else crop.copy(), mask, meta, guide)

    def output_shape(self, observation: Observation) -> tuple[int, int]:
        """(H, W) of the restored image: the clean crop's size (for super-resolution, factor × the observation's)."""
        return self._restored_hw(observation.observed.shape[:2])
