"""JPEG artefacts: x0 is the decoded JPEG of the clean image (Pillow's libjpeg, settings below); A is the identity."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, features
from PIL import __version__ as pillow_version

from dip.errors import ConfigError
from dip.tasks.base import Observation, Operator, PaperFit

if TYPE_CHECKING:
    import torch
    from torch import nn

JPEG_SUBSAMPLING = "4:2:0"
"""Chroma subsampling of the JPEG observations (Pillow's default for colour images; grey images have no chroma)."""


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

    def params(self) -> dict[str, Any]:
        return {"quality": self.quality}

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

    def baseline_arguments(self, observation: Observation) -> dict[str, Any]:
        """σ (0–255) for TV (weight σ/255): `skimage.restoration.estimate_sigma` of the decoded image, averaged over
        channels (at least 0.5). (CBM3D at that σ gained 0.00–0.02 dB over the JPEG on a 96×96 crop at q 10 and 30,
        for 6 s: not a row.)"""
        from skimage.restoration import estimate_sigma

        sigma = float(estimate_sigma(observation.observed, channel_axis=-1, average_sigmas=True))
        return {"sigma": max(sigma * 255, 0.5)}


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
