"""Restoration tasks as forward operators: each makes the observation x0 and the differentiable A of E(A·f(z); x0).

Degradations follow the Deep Image Prior protocol (Ulyanov et al., CVPR 2018, and the authors' code); tasks are
data, as deepinv's `physics`: `Denoising(sigma)`, `SuperResolution(factor)`, `Inpainting(kind, ratio, mask_path)`,
`Deblurring(kernel, size, noise, angle)`.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

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
    """An observation x0 with its ground truth, mask and metadata (see docs/ARCHITECTURE.md)."""

    observed: np.ndarray
    clean: np.ndarray
    mask: np.ndarray | None
    meta: dict[str, Any]


class PaperFit(TypedDict):
    """The fit settings the paper (or the authors' notebook) uses for a task and level; `FitSettings` field names."""

    iterations: int
    lr: float
    reg_noise_std: float
    ema: float
    backtrack_db: float | None


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
        """The paper's fit settings for this level (docs/PROTOCOL.md)."""

    @property
    @abstractmethod
    def paper_preset(self) -> str:
        """The model preset the authors use for this task and level."""

    @property
    def needs_mask_file(self) -> bool:
        """Whether each image needs a mask file of its own (inpainting level 'file')."""
        return False

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

    def _observed_hw(self, clean_hw: tuple[int, int]) -> tuple[int, int]:
        return clean_hw

    def observe(
        self,
        clean: np.ndarray,
        seed: int,
        *,
        multiple: int = 32,
        source: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Observation:
        """Centre-crop `clean` to what the net needs and degrade it with `numpy.random.default_rng(seed)`.

        `source` (the image's file or dataset id) and `labels` (e.g. dataset, image) go into `meta` as they are.
        """
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, not {seed!r}")
        clean = np.asarray(clean, dtype=np.float32)
        try:
            crop, box = crop_to_multiple(clean, self._multiple(multiple))
        except ImageError as error:
            raise ImageError(f"{source}: {error}" if source else str(error)) from None
        observed, mask, extra = self._degrade(crop, np.random.default_rng(seed), box, clean.shape[:2])
        meta = {
            "task": self.task,
            "level": self.level,
            "seed": int(seed),
            "crop": [int(v) for v in box],
            "source": source,
            "source_shape": list(clean.shape),
            **self.params(),
            **extra,
            "labels": dict(labels or {}),
        }
        return Observation(observed.astype(np.float32), crop.copy(), mask, meta)

    def output_shape(self, observation: Observation) -> tuple[int, int]:
        """(H, W) of the restored image: the clean crop's size."""
        return observation.clean.shape[0], observation.clean.shape[1]


class Denoising(Operator):
    """Additive white Gaussian noise: x0 = clip(x + N(0, (σ/255)²), 0, 1), as the authors' `get_noisy_image`."""

    task = "denoising"
    level_form = "σ on the 0–255 scale written as a plain number, e.g. '25' or '50'"
    baselines = ("bm3d", "nlm", "tv")

    def __init__(self, sigma: float) -> None:
        if not (math.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"denoising: σ must be a positive number (0–255 scale), not {sigma!r}")
        self.sigma = float(sigma)

    @classmethod
    def parse(cls, level: str, *, mask_path: str | None = None) -> Denoising:
        if not isinstance(level, str) or not re.fullmatch(_NUMBER, level) or float(level) == 0:
            raise cls._bad_level(level)
        return cls(float(level))

    @property
    def level(self) -> str:
        return f"{self.sigma:g}"

    @property
    def label(self) -> str:
        return f"σ={self.level}"

    def paper_fit(self) -> PaperFit:
        """The paper's text (Section 4): 1800 iterations, output averaging (EMA 0.99), reg-noise 1/30 (σ=25; the
        notebook's 1/20 from σ=50), backtracking on a 5 dB drop. The F16 notebook runs 3000 iterations instead."""
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
        return {"sigma": self.sigma}

    def baseline_arguments(self, observation: Observation) -> dict[str, Any]:
        return {"sigma": self.sigma}

    def _degrade(self, clean, rng, box, source_hw):
        noisy = clean + rng.normal(0.0, self.sigma / 255.0, size=clean.shape)
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

    def _observed_hw(self, clean_hw: tuple[int, int]) -> tuple[int, int]:
        return clean_hw[0] // self.factor, clean_hw[1] // self.factor

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

    def forward_model(self, observation: Observation, device: torch.device | str = "cpu") -> nn.Module:
        if observation.mask is None:
            raise ConfigError("inpainting: the observation has no mask")
        from dip.physics import MaskMultiply

        return MaskMultiply(to_tensor(observation.mask)).to(device)


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


TASK_TYPES: dict[str, type[Operator]] = {cls.task: cls for cls in (Denoising, SuperResolution, Inpainting, Deblurring)}
TASKS = tuple(TASK_TYPES)


def make_operator(task: str, level: str, *, mask_path: str | None = None) -> Operator:
    """The operator of a task and level string (e.g. 'denoising', '25'); `mask_path` for inpainting level 'file'."""
    if task not in TASK_TYPES:
        raise ConfigError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    if mask_path is not None and (task, level) != ("inpainting", "file"):
        raise ConfigError(f"a mask file ({mask_path}) is only used with task 'inpainting', level 'file'")
    operator = TASK_TYPES[task].parse(level, mask_path=None if mask_path is None else str(mask_path))
    if operator.level != level:
        raise ConfigError(f"write the {task} level {level!r} as {operator.level!r}")
    return operator


def operator_for(observation: Observation) -> Operator:
    """The operator that made `observation`, rebuilt from its meta (task, level, mask_path)."""
    meta = observation.meta
    return make_operator(meta["task"], meta["level"], mask_path=meta.get("mask_path"))


def save_observation(observation: Observation, directory: str | Path) -> None:
    """Write observed.png (16-bit), clean.png (8-bit if lossless, else 16), mask.png and observation.json."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    write_image(out / "observed.png", observation.observed, bit_depth=16)
    clean = observation.clean
    on_8_bits = np.abs(clean * 255 - np.round(clean * 255)).max() < 1e-3
    write_image(out / "clean.png", clean, bit_depth=8 if on_8_bits else 16)
    if observation.mask is not None:
        write_mask(out / "mask.png", observation.mask)
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
        operator = make_operator(meta["task"], meta["level"], mask_path=meta.get("mask_path"))
    except ConfigError as e:
        raise ConfigError(f"{meta_path}: {e}") from None
    clean = read_image(folder / "clean.png")
    observed = read_image(folder / "observed.png")
    crop_hw = (crop[2], crop[3])
    if clean.shape[:2] != crop_hw:
        raise ImageError(f"{folder / 'clean.png'}: size {clean.shape[:2]} is not the crop's {crop_hw}")
    expected = (*operator._observed_hw(crop_hw), clean.shape[2])
    if observed.shape != expected:
        raise ImageError(f"{folder / 'observed.png'}: shape {observed.shape}, expected {expected} for this task")
    mask = None
    if operator.task == "inpainting":
        mask = read_mask(folder / "mask.png", crop_hw)
    return Observation(observed, clean, mask, meta)
