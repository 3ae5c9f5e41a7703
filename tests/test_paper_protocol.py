"""The protocol pieces the reproduction figures depend on: LR bytes, LR conventions, crops and reference figures."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from dip.io import read_image
from dip.methods.classical import bicubic, bicubic_downscale
from dip.metrics import psnr
from dip.tasks import make_operator

SET5 = ("baby", "bird", "butterfly", "head", "woman")


def _lr_digest(observed: np.ndarray) -> str:
    return hashlib.sha256(np.round(observed * 255).astype(np.uint8).tobytes()).hexdigest()


@pytest.mark.parametrize(
    ("level", "digest"),
    [
        ("4", "0825adfe8cebdae7bc7430fb33829d80143a29d56fcd57d1a160960dcfc44689"),
        ("8", "834de159479ba13a65b5cff770c3b6863cf820ec8970898e02bf15c9d27e4329"),
    ],
)
def test_lanczos_lr_bytes_are_stable(set5_dir: Path, level: str, digest: str) -> None:
    # The authors' LR (PIL Lanczos on 8 bits) of Set5 butterfly; a Pillow or crop change that moves a pixel fails here.
    observation = make_operator("super-resolution", level).observe(read_image(set5_dir / "butterfly.png"), seed=0)
    assert np.array_equal(observation.observed * 255, np.round(observation.observed * 255))
    assert _lr_digest(observation.observed) == digest


def test_bicubic_lr_convention_is_the_matlab_style_downscale(set5_dir: Path) -> None:
    observation = make_operator("super-resolution", "4-bicubic").observe(read_image(set5_dir / "bird.png"), seed=0)
    assert observation.meta["lr"] == "bicubic" and observation.meta["level"] == "4-bicubic"
    np.testing.assert_array_equal(observation.observed, bicubic_downscale(observation.clean, 4))


def test_div32_crop_is_centred(set5_dir: Path) -> None:
    # head is 280×280: the net and the y-dip protocol use its centred 256×256 crop.
    observation = make_operator("super-resolution", "4").observe(read_image(set5_dir / "head.png"), seed=0)
    assert observation.meta["crop"] == [12, 12, 256, 256]


@pytest.mark.parametrize(("factor", "reference"), [(4, 28.43), (8, 24.37)])
def test_pipeline_bicubic_matches_the_dip_protocol_figure(set5_dir: Path, factor: int, reference: float) -> None:
    # PROTOCOL.md: bicubic from MATLAB-style LR, DIP protocol, Set5 means 28.43 (×4, paper) and 24.37 (×8, recomputed).
    scores = []
    for name in SET5:
        observation = make_operator("super-resolution", f"{factor}-bicubic").observe(
            read_image(set5_dir / f"{name}.png"), seed=0
        )
        upscaled = bicubic(observation.observed, factor)
        scores.append(psnr(upscaled, observation.clean, protocol="y-dip", factor=factor))
    assert np.mean(scores) == pytest.approx(reference, abs=0.05)
