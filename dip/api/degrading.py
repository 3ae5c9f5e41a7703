"""`dip degrade`: the observation x0 of a clean image for a task and level."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dip.api.runs import input_path
from dip.datasets import exported_source
from dip.errors import ConfigError
from dip.failures import check_upstream
from dip.io import read_image
from dip.outputs import OBSERVATION, claim, clear
from dip.tasks import Observation, make_operator
from dip.tasks.observation_dir import save_observation


def degrade(
    image: np.ndarray | str | Path,
    task: str,
    level: str,
    *,
    seed: int = 0,
    mask_file: str | Path | None = None,
    flash_file: str | Path | None = None,
    observed: bool = False,
    multiple: int = 32,
    labels: dict[str, str] | None = None,
    out: str | Path | None = None,
) -> Observation:
    """The observation x0 of a clean image (an array, or an image file) for a task and level; written to `out`.

    `observed`: the image is already degraded (a user's own photo) and is x0 as it is, with no ground truth: for
    super-resolution the low-resolution photo, for denoising a noisy photo of noise level `level`, for inpainting
    (level 'file') a photo whose `mask_file` marks the known pixels. `flash_file`: flash-no-flash's flash photo (the
    image is then the no-flash photo, always taken as it is)."""
    if out is not None:
        out = claim(out, OBSERVATION, inputs=[input_path(image), mask_file, flash_file])
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ConfigError(f"multiple must be ≥ 1, got {multiple}")
    source = None
    for path in (image, mask_file, flash_file):
        if isinstance(path, str | Path):
            check_upstream(Path(path))
    if isinstance(image, str | Path):
        source = exported_source(Path(image))
        image = read_image(image)
    operator = make_operator(
        task,
        level,
        mask_path=None if mask_file is None else str(mask_file),
        flash_path=None if flash_file is None else str(flash_file),
    )
    observation = operator.observe(image, seed, multiple=multiple, source=source, labels=labels, observed=observed)
    if out is not None:
        clear(out, OBSERVATION)
        save_observation(observation, out)
    return observation
