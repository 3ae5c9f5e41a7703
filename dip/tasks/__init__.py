"""Restoration tasks as forward operators: each makes the observation x0 and the differentiable A of E(A·f(z); x0).

Degradations follow the Deep Image Prior protocol (Ulyanov et al., CVPR 2018, and the authors' code); tasks are
data, as deepinv's `physics`: `Denoising(sigma)` (or a non-Gaussian noise kind), `SuperResolution(factor)`,
`Inpainting(kind, ratio, mask_path)`, `JpegArtifacts(quality)`, `Deblurring(kernel, size, noise, angle)`,
`FlashNoFlash(flash_path)`. An image that is already degraded (a user's own photo) is taken as x0 as it is
(`observe(..., observed=True)`): its observation has no ground truth.

One module per task family, each reading top to bottom: its level grammar, its forward model (`observe` and A),
the paper's settings, its metric protocols and its baselines; `base` holds the contract they share, and
`observation_dir` the files of an observation directory.
"""

from __future__ import annotations

from dip.errors import ConfigError
from dip.tasks.base import Observation, Operator, PaperFit
from dip.tasks.deblurring import Deblurring
from dip.tasks.denoising import Denoising
from dip.tasks.flash_no_flash import FlashNoFlash
from dip.tasks.inpainting import Inpainting
from dip.tasks.jpeg import JpegArtifacts
from dip.tasks.super_resolution import SuperResolution

__all__ = [
    "TASKS",
    "TASK_TYPES",
    "Deblurring",
    "Denoising",
    "FlashNoFlash",
    "Inpainting",
    "JpegArtifacts",
    "Observation",
    "Operator",
    "PaperFit",
    "SuperResolution",
    "make_operator",
    "operator_for",
]

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
