"""Restoration tasks as forward operators: each makes the observation x0 and the differentiable A of E(A·f(z); x0).

Degradations follow the Deep Image Prior protocol (Ulyanov et al., CVPR 2018, and the authors' code); tasks are
data, as deepinv's `physics`: `Denoising(sigma)` (or a non-Gaussian noise kind), `SuperResolution(factor)`,
`Inpainting(kind, ratio, mask_path)`, `JpegArtifacts(quality)`, `Deblurring(kernel, size, noise, angle)`,
`FlashNoFlash(flash_path)`. An image that is already degraded (a user's own photo) is taken as x0 as it is
(`observe(..., observed=True)`): its observation has no ground truth.
"""

from __future__ import annotations

import io
import json
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NotRequired, TypedDict

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features
from PIL import __version__ as pillow_version

from dip.blur import blur, gaussian_kernel, motion_kernel
from dip.errors import ConfigError, ImageError
from dip.failures import check_upstream
from dip.io import crop_to_multiple, read_image, read_mask, to_tensor, write_image, write_mask
from dip.resampling import pil_resize, pil_resize_float

if TYPE_CHECKING:  # torch is imported only where an operator builds its A, so that `dip evaluate` starts fast
    import torch
    from torch import nn

SR_FACTORS = (2, 3, 4, 8)
SR_LR_CONVENTIONS = {
    "lanczos": "PIL Lanczos on 8 bits (the DIP authors' LR)",
    "bicubic": "MATLAB-style anti-aliased bicubic in float (the common SR benchmarks' LR)",
}
INPAINTING_KINDS = ("random", "text", "box", "file")
NOISE_SEVERITIES: dict[str, tuple[float, ...]] = {
    "impulse": (0.03, 0.06, 0.09, 0.17, 0.27),
    "shot": (60, 25, 12, 5, 3),
    "speckle": (0.15, 0.2, 0.35, 0.45, 0.6),
}
"""The non-Gaussian noise kinds of denoising and their constant at ImageNet-C severities 1–5 (Hendrycks & Dietterich
2019, `corruptions.py`): the salt-and-pepper amount, the Poisson photon count at intensity 1, the speckle std."""
JPEG_SUBSAMPLING = "4:2:0"
"""Chroma subsampling of the JPEG observations (Pillow's default for colour images; grey images have no chroma)."""
BLUR_KERNELS = ("gauss", "motion")
SPARSE_ITERATIONS = {0.5: 11000, 0.98: 1000}
"""`restoration.ipynb`'s iterations per fraction of pixels dropped: barbara (50 %) and kate (98 %, 2 % kept)."""
_NUMBER = r"(\d+(?:\.\d+)?)"
TEXT_COVERAGE = (0.12, 0.18)
_TEXT_WORDS = (
    "deep",
    "image",
    "prior",
    "the",
    "structure",
    "of",
    "a",
    "generator",
    "network",
    "is",
    "sufficient",
    "to",
    "capture",
    "low",
    "level",
    "statistics",
    "before",
    "any",
    "learning",
    "convolutional",
    "networks",
    "restore",
    "images",
    "from",
    "noise",
    "with",
    "no",
    "training",
    "data",
)


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
    backtrack_db: float | None
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
    """Names of `dip.baselines.BASELINES` that solve this task."""
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
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, not {seed!r}")
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
        if isinstance(level, str) and re.fullmatch(_NUMBER, level) and float(level) != 0:
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

    @property
    def baselines(self) -> tuple[str, ...]:  # type: ignore[override]  # each noise kind has its own
        """Gaussian: BM3D, NLM, TV at the known σ; impulse: the median filter; shot: BM3D after the Anscombe
        transform; speckle: NLM at the noise's mean σ (`baseline_arguments`)."""
        return {"gaussian": ("bm3d", "nlm", "tv"), "impulse": ("median",), "shot": ("bm3d-vst",)}.get(
            self.kind, ("nlm",)
        )

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
                "backtrack_db": None,
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

    def params(self) -> dict[str, Any]:
        if self.kind == "gaussian":
            return {"sigma": self.sigma}
        return {"noise": self.kind, "severity": self.severity, "noise_constant": self.constant}

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


class Inpainting(Operator):
    """Missing pixels: x0 = x ⊙ m, with m a random, text, centred-box or file mask (1 = known)."""

    task = "inpainting"
    level_form = (
        "'randomP' (P % of the pixels dropped, e.g. 'random50'), 'text', 'boxP' (a centred box of P % of the area, "
        "e.g. 'box25') or 'file' (a mask file)"
    )
    baselines = ("biharmonic",)

    def __init__(self, kind: str, ratio: float | None = None, mask_path: str | None = None) -> None:
        if kind not in INPAINTING_KINDS:
            raise ConfigError(f"inpainting: mask kind {kind!r} is not one of {', '.join(INPAINTING_KINDS)}")
        needs_ratio = kind in ("random", "box")
        if needs_ratio and (ratio is None or not 0 < ratio < 1):
            raise ConfigError(f"inpainting: a {kind} mask needs a ratio strictly between 0 and 1, not {ratio!r}")
        if not needs_ratio and ratio is not None:
            raise ConfigError(f"inpainting: a {kind} mask takes no ratio (got {ratio!r})")
        if kind != "file" and mask_path is not None:
            raise ConfigError(f"inpainting: a {kind} mask takes no mask file (got {mask_path}); use level 'file'")
        self.kind = kind
        self.ratio = None if ratio is None else float(ratio)
        self.mask_path = None if mask_path is None else str(mask_path)

    @classmethod
    def parse(cls, level: str, *, mask_path: str | None = None) -> Inpainting:
        if level in ("text", "file"):
            return cls(level, mask_path=mask_path)
        match = re.fullmatch(rf"(random|box){_NUMBER}", level) if isinstance(level, str) else None
        if not match or not 0 < float(match[2]) < 100:
            raise cls._bad_level(level)
        return cls(match[1], float(match[2]) / 100, mask_path=mask_path)

    @property
    def level(self) -> str:
        return f"{self.kind}{self.ratio * 100:g}" if self.ratio is not None else self.kind

    @property
    def label(self) -> str:
        if self.ratio is None:
            return f"{self.kind} mask"
        return f"{self.kind} {self.ratio * 100:g} %"

    def paper_fit(self) -> PaperFit:
        """Random masks: `restoration.ipynb` (lr 0.001, reg-noise 0.03, backtracking on a 5 dB drop), whose iterations
        depend on the drop ratio: the nearer of its two settings (`SPARSE_ITERATIONS`: barbara 50 % dropped, Table 1;
        kate 98 % dropped); text and file masks: the kate notebook (lr 0.01, 6001); boxes: the vase one (lr 0.01,
        5001)."""
        if self.kind == "random":
            nearest = min(SPARSE_ITERATIONS, key=lambda dropped: abs(dropped - self.ratio))
            iterations = SPARSE_ITERATIONS[nearest]
            return {"iterations": iterations, "lr": 0.001, "reg_noise_std": 0.03, "ema": 0.0, "backtrack_db": 5.0}
        iterations = 5001 if self.kind == "box" else 6001
        return {"iterations": iterations, "lr": 0.01, "reg_noise_std": 0.03, "ema": 0.0, "backtrack_db": None}

    @property
    def needs_mask_file(self) -> bool:
        return self.kind == "file"

    @property
    def takes_photo(self) -> bool:
        """Only with a mask file: which pixels of a photo are missing is not known otherwise."""
        return self.kind == "file"

    @property
    def paper_preset(self) -> str:
        """`paper` for random masks (`restoration.ipynb`), the region net for boxes, the text net otherwise."""
        return {"random": "paper", "box": "inpaint-region"}.get(self.kind, "inpaint-text")

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "ratio": self.ratio, "mask_path": self.mask_path}

    def baseline_arguments(self, observation: Observation) -> dict[str, Any]:
        if observation.mask is None:
            raise ConfigError("inpainting: the observation has no mask")
        return {"mask": observation.mask}

    def _degrade(self, clean, rng, box, source_hw):
        height, width = clean.shape[:2]
        extra: dict[str, Any] = {}
        if self.kind == "random":
            mask = (rng.random((height, width, 1)) >= self.ratio).astype(np.float32)
        elif self.kind == "box":
            mask = np.ones((height, width, 1), np.float32)
            side = math.sqrt(self.ratio)
            box_h, box_w = round(height * side), round(width * side)
            top, left = (height - box_h) // 2, (width - box_w) // 2
            mask[top : top + box_h, left : left + box_w] = 0
        elif self.kind == "text":
            mask = text_mask(height, width, rng)
            extra["renderer"] = f"Pillow {pillow_version}, FreeType {features.version('freetype2')}"
        else:
            if self.mask_path is None:
                raise ConfigError("inpainting: level 'file' needs a mask file (dip degrade --mask-file)")
            top, left, h, w = box
            mask = read_mask(self.mask_path, source_hw)[top : top + h, left : left + w]
        extra["missing_fraction"] = float(1 - mask.mean())
        return clean * mask, mask, extra

    def _as_observed(self, image, box, source_hw):
        """A photo with holes: the mask file says which pixels are known (level 'file' only)."""
        if not self.takes_photo:
            raise ConfigError(
                f"inpainting: an already-degraded photo needs its mask file (level 'file'), not level {self.level!r}"
            )
        return self._degrade(image, np.random.default_rng(0), box, source_hw)

    def forward_model(self, observation: Observation, device: torch.device | str = "cpu") -> nn.Module:
        if observation.mask is None:
            raise ConfigError("inpainting: the observation has no mask")
        from dip.physics import MaskMultiply

        return MaskMultiply(to_tensor(observation.mask)).to(device)


class JpegArtifacts(Operator):
    """JPEG artefacts: x0 = the decoded JPEG of the clean image, rounded to 8 bits and encoded by Pillow at `quality`.

    The encoder: Pillow's libjpeg (versions recorded in the meta), baseline (not progressive), no Huffman
    optimisation, the IJG quantisation tables scaled to `quality`, 4:2:0 chroma subsampling for colour images, no
    metadata. JPEG has no randomness: the seed is recorded but changes nothing. A is the identity. The net and fit of
    the authors' JPEG case (`denoising.ipynb`, snail): the light net, 2400 iterations, reg-noise 1/30, EMA 0.99.
    """

    task = "jpeg"
    level_form = "a JPEG quality 1–95 written as a plain integer, e.g. '10', '20', '30' or '40'"
    baselines = ("jpeg", "tv")

    def __init__(self, quality: int) -> None:
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 95:
            raise ConfigError(f"jpeg: quality must be an integer 1–95, not {quality!r}")
        self.quality = quality

    @classmethod
    def parse(cls, level: str, *, mask_path: str | None = None) -> JpegArtifacts:
        if not isinstance(level, str) or not re.fullmatch(r"[1-9]\d?", level) or int(level) > 95:
            raise cls._bad_level(level)
        return cls(int(level))

    @property
    def level(self) -> str:
        return str(self.quality)

    @property
    def label(self) -> str:
        return f"JPEG q={self.quality}"

    def paper_fit(self) -> PaperFit:
        """The authors' JPEG case (2400 iterations, lr 0.01, reg-noise 1/30, EMA 0.99, the notebook's backtracking on
        a 5 dB drop), with ES-WMV watching the fit: the snail image has no ground truth to pick an iteration by."""
        return {
            "iterations": 2400,
            "lr": 0.01,
            "reg_noise_std": 1 / 30,
            "ema": 0.99,
            "backtrack_db": 5.0,
            "stopping": "es-wmv",
        }

    @property
    def paper_preset(self) -> str:
        return "light"

    def params(self) -> dict[str, Any]:
        return {"quality": self.quality}

    def baseline_arguments(self, observation: Observation) -> dict[str, Any]:
        """σ (0–255) for TV (weight σ/255): `skimage.restoration.estimate_sigma` of the decoded image, averaged over
        channels (at least 0.5). (CBM3D at that σ gained 0.00–0.02 dB over the JPEG on a 96×96 crop at q 10 and 30,
        for 6 s: not a row.)"""
        from skimage.restoration import estimate_sigma

        sigma = float(estimate_sigma(observation.observed, channel_axis=-1, average_sigmas=True))
        return {"sigma": max(sigma * 255, 0.5)}

    def _degrade(self, clean, rng, box, source_hw):
        decoded = jpeg_roundtrip(clean, self.quality)
        encoder = {
            "encoder": f"Pillow {pillow_version}, libjpeg {features.version('jpg')}",
            "subsampling": JPEG_SUBSAMPLING if clean.shape[2] == 3 else None,
            "optimize": False,
            "progressive": False,
        }
        return decoded, None, encoder

    def forward_model(self, observation: Observation, device: torch.device | str = "cpu") -> nn.Module:
        from torch import nn

        return nn.Identity().to(device)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """`image` (float (H, W, C) in [0, 1], C = 1 or 3) rounded to 8 bits, JPEG-encoded by Pillow at `quality` with the
    settings of `JpegArtifacts`, and decoded back to float32."""
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    options = {"subsampling": JPEG_SUBSAMPLING} if picture.mode == "RGB" else {}
    picture.save(buffer, format="JPEG", quality=quality, optimize=False, progressive=False, **options)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return (np.asarray(decoded, dtype=np.float32) / 255).reshape(image.shape)


class Deblurring(Operator):
    """Blur plus noise: x0 = clip(k ∗ x + N(0, (s/255)²), 0, 1), k a Gaussian or a straight motion kernel.

    The convolution has a mirror boundary (`dip.blur`), so x0 keeps the crop's size, and A (`dip.physics.Blur`) is
    the same convolution in torch. There is no DIP paper setting for deblurring (see `paper_fit`).
    """

    task = "deblurring"
    level_form = (
        "'gaussS-nN' (a Gaussian kernel of σ = S px and noise σ = N on the 0–255 scale, e.g. 'gauss1.6-n2') or "
        "'motionL-Adeg-nN' (a straight motion blur L px long at A degrees anticlockwise, 0 ≤ A < 180, e.g. "
        "'motion9-45deg-n2')"
    )
    baselines = ("wiener", "richardson-lucy", "tv-deconvolution")

    def __init__(self, kernel: str, size: float, noise: float, angle: float = 0.0) -> None:
        if kernel not in BLUR_KERNELS:
            raise ConfigError(f"deblurring: kernel {kernel!r} is not one of {', '.join(BLUR_KERNELS)}")
        if not (math.isfinite(size) and size > 0) or (kernel == "motion" and size < 1):
            raise ConfigError(f"deblurring: the {kernel} kernel needs a size of at least 1 px, not {size!r}")
        if not (math.isfinite(noise) and noise >= 0):
            raise ConfigError(f"deblurring: noise σ must be a number ≥ 0 (0–255 scale), not {noise!r}")
        if not (0 <= angle < 180) or (kernel == "gauss" and angle != 0):
            raise ConfigError(f"deblurring: angle {angle!r} must be in [0, 180) and only given for a motion kernel")
        self.kernel_kind = kernel
        self.size = float(size)
        self.noise = float(noise)
        self.angle = float(angle)

    @classmethod
    def parse(cls, level: str, *, mask_path: str | None = None) -> Deblurring:
        if not isinstance(level, str):
            raise cls._bad_level(level)
        gauss = re.fullmatch(rf"gauss{_NUMBER}-n{_NUMBER}", level)
        motion = re.fullmatch(rf"motion{_NUMBER}-{_NUMBER}deg-n{_NUMBER}", level)
        if gauss and float(gauss[1]) > 0:
            return cls("gauss", float(gauss[1]), float(gauss[2]))
        if motion and float(motion[1]) >= 1 and float(motion[2]) < 180:
            return cls("motion", float(motion[1]), float(motion[3]), float(motion[2]))
        raise cls._bad_level(level)

    @property
    def level(self) -> str:
        if self.kernel_kind == "gauss":
            return f"gauss{self.size:g}-n{self.noise:g}"
        return f"motion{self.size:g}-{self.angle:g}deg-n{self.noise:g}"

    @property
    def label(self) -> str:
        if self.kernel_kind == "gauss":
            return f"Gaussian σ={self.size:g}, noise σ={self.noise:g}"
        return f"motion {self.size:g} px {self.angle:g}°, noise σ={self.noise:g}"

    @property
    def kernel(self) -> np.ndarray:
        """The blur kernel (odd sides, sum 1): `dip.blur.gaussian_kernel` or `dip.blur.motion_kernel`."""
        if self.kernel_kind == "gauss":
            return gaussian_kernel(self.size)
        return motion_kernel(self.size, self.angle)

    def paper_fit(self) -> PaperFit:
        """No published DIP setting for deblurring: the super-resolution notebook's (×4), whose A is also a blur."""
        return {"iterations": 2000, "lr": 0.01, "reg_noise_std": 0.03, "ema": 0.0, "backtrack_db": None}

    @property
    def paper_preset(self) -> str:
        return "paper"

    def params(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel_kind,
            "size": self.size,
            "angle": self.angle,
            "noise_sigma": self.noise,
            "boundary": "mirror",
        }

    def baseline_arguments(self, observation: Observation) -> dict[str, Any]:
        return {"kernel": self.kernel, "sigma": self.noise}

    def _degrade(self, clean, rng, box, source_hw):
        kernel = self.kernel
        radius = max(kernel.shape) // 2
        if min(clean.shape[:2]) <= radius:
            raise ImageError(f"image is {clean.shape[:2]}: a side must exceed the blur kernel's radius {radius}")
        blurred = blur(clean, kernel) + rng.normal(0.0, self.noise / 255.0, size=clean.shape)
        return np.clip(blurred, 0.0, 1.0).astype(np.float32), None, {"kernel_shape": list(kernel.shape)}

    def forward_model(self, observation: Observation, device: torch.device | str = "cpu") -> nn.Module:
        from dip.physics import Blur

        return Blur(self.kernel, observation.observed.shape[2]).to(device)


def text_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A (H, W, 1) mask of lines of random words (0 = missing) hiding 12–18 % of the pixels.

    Pillow's default font at size min(H, W)/16 (at least 10 px) with a 1-px-or-more stroke, on rows 1.5 font sizes
    apart visited in random order, each line at a random horizontal offset; the last line is shortened letter by letter
    until at most 18 % is hidden. The pixels depend on the Pillow/FreeType versions (recorded in the meta).
    """
    low, high = TEXT_COVERAGE
    size = max(10, min(height, width) // 16)
    font = ImageFont.load_default(size=size)
    gap = size * 3 // 2
    rows = np.arange(int(rng.integers(0, gap)) - size // 2, height - size // 2, gap)
    canvas = Image.new("L", (width, height), 255)
    for y in rng.permutation(rows):
        x = int(rng.integers(-width // 4, width // 4 + 1))
        text = str(rng.choice(_TEXT_WORDS))
        while x + font.getlength(text) < width:
            text += " " + str(rng.choice(_TEXT_WORDS))
        while text:
            candidate = canvas.copy()
            draw = ImageDraw.Draw(candidate)
            draw.text((x, int(y)), text, fill=0, font=font, stroke_width=max(1, size // 20))
            missing = 1 - np.count_nonzero(np.asarray(candidate) >= 128) / (height * width)
            if missing <= high:
                canvas = candidate
                break
            text = text[:-1].rstrip()
        if text and missing >= low:
            break
    return (np.asarray(canvas) >= 128).astype(np.float32)[..., None]


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

    def paper_fit(self) -> PaperFit:
        """The flash-no-flash notebook: Adam lr 0.1, 601 iterations, no reg-noise, the last output."""
        return {"iterations": 601, "lr": 0.1, "reg_noise_std": 0.0, "ema": 0.0, "backtrack_db": None}

    @property
    def paper_preset(self) -> str:
        return "flash-no-flash"

    @property
    def needs_flash_file(self) -> bool:
        return True

    def params(self) -> dict[str, Any]:
        return {"flash_path": self.flash_path}

    def baseline_arguments(self, observation: Observation) -> dict[str, Any]:
        return {"guide": self.net_input(observation)}

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


TASK_TYPES: dict[str, type[Operator]] = {
    cls.task: cls for cls in (Denoising, SuperResolution, Inpainting, JpegArtifacts, Deblurring, FlashNoFlash)
}
TASKS = tuple(TASK_TYPES)


def make_operator(task: str, level: str, *, mask_path: str | None = None, flash_path: str | None = None) -> Operator:
    """The operator of a task and level string (e.g. 'denoising', '25'); `mask_path` for inpainting level 'file',
    `flash_path` for flash-no-flash."""
    if task not in TASK_TYPES:
        raise ConfigError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    if mask_path is not None and (task, level) != ("inpainting", "file"):
        raise ConfigError(f"a mask file ({mask_path}) is only used with task 'inpainting', level 'file'")
    if flash_path is not None and task != FlashNoFlash.task:
        raise ConfigError(f"a flash photo ({flash_path}) is only used with task {FlashNoFlash.task!r}")
    files = {"flash_path": str(flash_path)} if flash_path is not None else {}
    operator = TASK_TYPES[task].parse(level, mask_path=None if mask_path is None else str(mask_path), **files)
    if operator.level != level:
        raise ConfigError(f"write the {task} level {level!r} as {operator.level!r}")
    return operator


def operator_for(observation: Observation) -> Operator:
    """The operator that made `observation`, rebuilt from its meta (task, level, mask_path, flash_path)."""
    meta = observation.meta
    return make_operator(
        meta["task"], meta["level"], mask_path=meta.get("mask_path"), flash_path=meta.get("flash_path")
    )


OBSERVED, CLEAN, MASK, GUIDE = "observed.png", "clean.png", "mask.png", "guide.png"
"""An observation directory's images: x0, its ground truth (where it has one), its mask, its guide (the flash photo)."""


def save_observation(observation: Observation, directory: str | Path) -> None:
    """Write observed.png (16-bit), clean.png and guide.png (8-bit if lossless, else 16; each where there is one),
    mask.png and observation.json."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    write_image(out / OBSERVED, observation.observed, bit_depth=16)
    for name, image in ((CLEAN, observation.clean), (GUIDE, observation.guide)):
        if image is not None:
            on_8_bits = np.abs(image * 255 - np.round(image * 255)).max() < 1e-3
            write_image(out / name, image, bit_depth=8 if on_8_bits else 16)
    if observation.mask is not None:
        write_mask(out / MASK, observation.mask)
    (out / "observation.json").write_text(json.dumps(observation.meta, indent=2) + "\n", encoding="utf-8")


def load_observation(directory: str | Path) -> Observation:
    """Read an observation directory written by `save_observation`, checking that its files agree."""
    folder = Path(directory)
    check_upstream(folder)
    meta_path = folder / "observation.json"
    if not meta_path.is_file():
        raise ConfigError(f"{folder}: not an observation directory (no observation.json)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{meta_path}: not valid JSON ({e})") from None
    missing = [k for k in ("task", "level", "seed", "crop") if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise ConfigError(f"{meta_path}: missing {', '.join(missing)}")
    crop = meta["crop"]
    if not (isinstance(crop, list) and len(crop) == 4 and all(isinstance(v, int) and v >= 0 for v in crop)):
        raise ConfigError(f"{meta_path}: crop must be [top, left, height, width], not {crop!r}")
    try:
        operator = make_operator(
            meta["task"], meta["level"], mask_path=meta.get("mask_path"), flash_path=meta.get("flash_path")
        )
    except ConfigError as e:
        raise ConfigError(f"{meta_path}: {e}") from None
    observed = read_image(folder / OBSERVED)
    crop_hw = (crop[2], crop[3])
    clean = None
    if meta.get("ground_truth", True):
        clean = read_image(folder / CLEAN)
        if clean.shape[:2] != crop_hw:
            raise ImageError(f"{folder / CLEAN}: size {clean.shape[:2]} is not the crop's {crop_hw}")
        expected = (*operator._observed_hw(crop_hw), clean.shape[2])
        if observed.shape != expected:
            raise ImageError(f"{folder / OBSERVED}: shape {observed.shape}, expected {expected} for this task")
    elif observed.shape[:2] != crop_hw:
        raise ImageError(f"{folder / OBSERVED}: size {observed.shape[:2]} is not the crop's {crop_hw}")
    mask = read_mask(folder / MASK, crop_hw) if operator.task == "inpainting" else None
    guide = None
    if operator.needs_flash_file:
        guide = read_image(folder / GUIDE)
        if guide.shape[:2] != crop_hw:
            raise ImageError(f"{folder / GUIDE}: size {guide.shape[:2]} is not the crop's {crop_hw}")
    return Observation(observed, clean, mask, meta, guide)
