"""Restoration tasks as forward operators: each makes the observation x0 and the differentiable A of E(A·f(z); x0).

Degradations follow the Deep Image Prior protocol (Ulyanov et al., CVPR 2018, and the authors' code); tasks are
data, as deepinv's `physics`: `Denoising(sigma)`, `SuperResolution(factor)`, `Inpainting(kind, ratio, mask_path)`.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features
from PIL import __version__ as pillow_version

from dip.errors import ConfigError, ImageError
from dip.io import crop_to_multiple, read_image, read_mask, to_tensor, write_image, write_mask
from dip.resampling import pil_resize, pil_resize_float

if TYPE_CHECKING:  # torch is imported only where an operator builds its A, so that `dip evaluate` starts fast
    import torch
    from torch import nn

TASKS = ("denoising", "super-resolution", "inpainting")
SR_FACTORS = (2, 3, 4, 8)
SR_LR_CONVENTIONS = {
    "lanczos": "PIL Lanczos on 8 bits (the DIP authors' LR)",
    "bicubic": "MATLAB-style anti-aliased bicubic in float (the common SR benchmarks' LR)",
}
INPAINTING_KINDS = ("random", "text", "box", "file")
LEVEL_FORMS = {
    "denoising": "σ on the 0–255 scale written as a plain number, e.g. '25' or '50'",
    "super-resolution": "a scale factor '2', '3', '4' or '8' (LR by PIL Lanczos, the DIP authors' convention), or "
    "the factor with '-bicubic' (e.g. '4-bicubic': MATLAB-style bicubic LR, the common SR benchmarks' convention)",
    "inpainting": "'randomP' (P % of the pixels dropped, e.g. 'random50'), 'text', 'boxP' (a centred box of P % "
    "of the area, e.g. 'box25') or 'file' (a mask file)",
}
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


class Operator(ABC):
    """A degradation: `observe` makes x0 from a clean image, `forward_model` is the A of the loss ‖A·f(z) − x0‖²."""

    task: ClassVar[str]

    @property
    @abstractmethod
    def level(self) -> str:
        """The level string of docs/ARCHITECTURE.md (e.g. '25', '4', 'random50')."""

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
        crop, box = crop_to_multiple(clean, self._multiple(multiple))
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

    def __init__(self, sigma: float) -> None:
        if not (math.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"denoising: σ must be a positive number (0–255 scale), not {sigma!r}")
        self.sigma = float(sigma)

    @property
    def level(self) -> str:
        return f"{self.sigma:g}"

    def params(self) -> dict[str, Any]:
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

    def __init__(self, factor: int, lr: str = "lanczos") -> None:
        if isinstance(factor, bool) or factor not in SR_FACTORS:
            raise ConfigError(f"super-resolution: factor must be one of {SR_FACTORS}, not {factor!r}")
        if lr not in SR_LR_CONVENTIONS:
            raise ConfigError(f"super-resolution: LR convention {lr!r} is not one of {', '.join(SR_LR_CONVENTIONS)}")
        self.factor = int(factor)
        self.lr = lr
        self.phase = 0.5 if self.factor % 2 == 0 else 0.0

    @property
    def level(self) -> str:
        return str(self.factor) if self.lr == "lanczos" else f"{self.factor}-{self.lr}"

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

    def __init__(self, kind: str, ratio: float | None = None, mask_path: str | None = None) -> None:
        if kind not in INPAINTING_KINDS:
            raise ConfigError(f"inpainting: mask kind {kind!r} is not one of {', '.join(INPAINTING_KINDS)}")
        needs_ratio = kind in ("random", "box")
        if needs_ratio and (ratio is None or not 0 < ratio < 1):
            raise ConfigError(f"inpainting: a {kind} mask needs a ratio strictly between 0 and 1, not {ratio!r}")
        if not needs_ratio and ratio is not None:
            raise ConfigError(f"inpainting: a {kind} mask takes no ratio (got {ratio!r})")
        if (kind == "file") != (mask_path is not None):
            raise ConfigError(
                "inpainting: level 'file' needs a mask file"
                if kind == "file"
                else f"inpainting: a {kind} mask takes no mask file (got {mask_path}); use level 'file'"
            )
        self.kind = kind
        self.ratio = None if ratio is None else float(ratio)
        self.mask_path = None if mask_path is None else str(mask_path)

    @property
    def level(self) -> str:
        return f"{self.kind}{self.ratio * 100:g}" if self.ratio is not None else self.kind

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "ratio": self.ratio, "mask_path": self.mask_path}

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
            top, left, h, w = box
            mask = read_mask(self.mask_path, source_hw)[top : top + h, left : left + w]
        extra["missing_fraction"] = float(1 - mask.mean())
        return clean * mask, mask, extra

    def forward_model(self, observation: Observation, device: torch.device | str = "cpu") -> nn.Module:
        if observation.mask is None:
            raise ConfigError("inpainting: the observation has no mask")
        from dip.physics import MaskMultiply

        return MaskMultiply(to_tensor(observation.mask)).to(device)


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


def make_operator(task: str, level: str, *, mask_path: str | None = None) -> Operator:
    """The operator for a task and level string of docs/ARCHITECTURE.md (e.g. 'denoising', '25')."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    if mask_path is not None and (task, level) != ("inpainting", "file"):
        raise ConfigError(f"a mask file ({mask_path}) is only used with task 'inpainting', level 'file'")
    bad = ConfigError(f"bad {task} level {level!r}: use {LEVEL_FORMS[task]}")
    if not isinstance(level, str):
        raise bad
    number = r"(\d+(?:\.\d+)?)"
    operator: Operator
    if task == "denoising":
        match = re.fullmatch(number, level)
        if not match or float(level) == 0:
            raise bad
        operator = Denoising(float(level))
    elif task == "super-resolution":
        match = re.fullmatch(r"(\d+)(?:-([a-z]+))?", level)
        if not match or int(match[1]) not in SR_FACTORS or match[2] not in (None, *SR_LR_CONVENTIONS):
            raise bad
        operator = SuperResolution(int(match[1]), match[2] or "lanczos")
    elif level in ("text", "file"):
        operator = Inpainting(level, mask_path=mask_path)
    else:
        match = re.fullmatch(rf"(random|box){number}", level)
        if not match or not 0 < float(match[2]) < 100:
            raise bad
        operator = Inpainting(match[1], float(match[2]) / 100)
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
