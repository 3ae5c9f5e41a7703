"""The observation directory (written by `dip degrade`, read by `dip restore`, `dip baseline` and `dip evaluate`):
x0, its ground truth, mask and guide as PNGs beside `observation.json`, the meta its task object is rebuilt from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dip.errors import ConfigError, ImageError
from dip.failures import check_upstream
from dip.io import read_image, read_mask, write_image, write_mask
from dip.layout import CLEAN, GUIDE, MASK, OBSERVATION_META, OBSERVED
from dip.tasks import Observation, make_operator


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
    (out / OBSERVATION_META).write_text(json.dumps(observation.meta, indent=2) + "\n", encoding="utf-8")


def load_observation(directory: str | Path) -> Observation:
    """Read an observation directory written by `save_observation`, checking that its files agree."""
    folder = Path(directory)
    check_upstream(folder)
    meta_path = folder / OBSERVATION_META
    if not meta_path.is_file():
        raise ConfigError(f"{folder}: not an observation directory (no {OBSERVATION_META})")
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
