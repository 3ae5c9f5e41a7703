"""Inpainting: x0 = x ⊙ m for a random, text, centred-box or file mask m (1 = known), with the text renderer of its
text masks; A multiplies by the mask (`dip.physics.MaskMultiply`)."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features
from PIL import __version__ as pillow_version

from dip.errors import ConfigError
from dip.io import check_mask, read_mask, to_tensor
from dip.tasks.base import NUMBER, Observation, Operator, PaperFit

if TYPE_CHECKING:
    import torch
    from torch import nn

INPAINTING_KINDS = ("random", "text", "box", "file")
SPARSE_ITERATIONS = {0.5: 11000, 0.98: 1000}
"""`restoration.ipynb`'s iterations per fraction of pixels dropped: barbara (50 %) and kate (98 %, 2 % kept)."""


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
        match = re.fullmatch(rf"(random|box){NUMBER}", level) if isinstance(level, str) else None
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

    @property
    def needs_mask_file(self) -> bool:
        return self.kind == "file"

    @property
    def takes_photo(self) -> bool:
        """Only with a mask file: which pixels of a photo are missing is not known otherwise."""
        return self.kind == "file"

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
            if self.mask_path is None:
                raise ConfigError("inpainting: level 'file' needs a mask file (dip degrade --mask-file)")
            top, left, h, w = box
            mask = read_mask(self.mask_path, source_hw)[top : top + h, left : left + w]
        check_mask(mask, self.mask_path or f"the {self.label} mask of this {height}×{width} image")
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
        from dip.physics import MaskMultiply

        return MaskMultiply(to_tensor(self._known(observation))).to(device)

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
    def paper_preset(self) -> str:
        """`paper` for random masks (`restoration.ipynb`), the region net for boxes, the text net otherwise."""
        return {"random": "paper", "box": "inpaint-region"}.get(self.kind, "inpaint-text")

    def baseline_arguments(self, observation: Observation) -> dict[str, Any]:
        return {"mask": self._known(observation)}

    @staticmethod
    def _known(observation: Observation) -> np.ndarray:
        """The observation's mask, refused where it has none or no known pixel (nothing to restore from)."""
        if observation.mask is None:
            raise ConfigError("inpainting: the observation has no mask")
        check_mask(observation.mask, observation.meta.get("mask_path") or "the observation's mask")
        return observation.mask


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
