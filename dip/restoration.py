"""Set up a DIP fit for an observation: the seeded net and input, the task's forward operator, and the fit itself."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dip.errors import ConfigError, ImageError
from dip.fit import FitProblem, FitResult, fit
from dip.fit_settings import FitSettings
from dip.io import to_tensor
from dip.memory import MEMORY_ERRORS, check_fit_memory, out_of_memory
from dip.models import build_model, count_parameters, input_scale, make_input, minimum_side, required_multiple
from dip.record import fingerprint
from dip.tasks import Observation, Operator


def source_of(meta: Mapping[str, Any]) -> str:
    """The user's image an observation was made from, for messages: its source file, then its labels."""
    labels = ", ".join(f"{key}={value}" for key, value in meta.get("labels", {}).items())
    source = meta.get("source") or "the observation"
    return f"{source} ({labels})" if labels else source


def build_problem(
    observation: Observation,
    operator: Operator,
    spec: dict[str, Any],
    *,
    seed: int,
    device: torch.device,
    use_ground_truth: bool = True,
    fitting: FitSettings | None = None,
    batch: int = 1,
) -> FitProblem:
    """The seeded net, its fixed input z (the task's own, e.g. the flash photo, or the spec's), A and x0 on `device`;
    the clean image (where there is one) is only for the trace. Given the settings of the fit (`fitting`), a fit of
    `batch` such nets at once is first refused, before anything is allocated, if it cannot fit into the device's
    memory (`dip.memory`)."""
    height, width = operator.output_shape(observation)
    multiple, shortest = required_multiple(spec), minimum_side(spec)
    name = f"the net ({spec.get('preset') or spec.get('arch')})"
    if height % multiple or width % multiple:
        raise ImageError(
            f"{source_of(observation.meta)}: the image to restore is {height}×{width} but {name} needs both sides "
            f"divisible by {multiple}; degrade it again with `--multiple {multiple}`"
        )
    if min(height, width) < shortest:
        raise ImageError(
            f"{source_of(observation.meta)}: the image to restore is {height}×{width} but {name} needs both sides "
            f"≥ {shortest}; use a larger image or a net with fewer scales (see `dip archs`)"
        )
    channels = observation.observed.shape[-1]
    if fitting is not None:
        check_fit_memory(spec, channels, (height, width), fitting, batch, device, source_of(observation.meta))
    torch.manual_seed(seed)
    net = build_model(spec, channels).to(device)
    given = operator.net_input(observation)
    if given is None:
        net_input = make_input(spec, height, width, torch.Generator().manual_seed(seed)).to(device)
    else:
        net_input = to_tensor(given_input(given, spec, name)).to(device)
    clean = None
    if use_ground_truth and observation.clean is not None:
        clean = to_tensor(observation.clean).to(device)
    return FitProblem(
        net=net,
        net_input=net_input,
        forward=operator.forward_model(observation, device),
        observed=to_tensor(observation.observed).to(device),
        clean=clean,
    )


def given_input(image: np.ndarray, spec: dict[str, Any], net: str) -> np.ndarray:
    """The task's own input z (the flash photo), checked against what `net` (spec `spec`) takes; else one line."""
    depth = spec["input_depth"]
    if image.shape[-1] != depth or input_scale(spec) != 1:
        raise ConfigError(
            f"the net's input z is the task's image ({image.shape[-1]} channels, full size), but {net} takes "
            f"input_depth {depth}"
            + (f" at 1/{input_scale(spec)} size" if input_scale(spec) != 1 else "")
            + f": use input_depth {image.shape[-1]} and a full-size input (e.g. the preset 'flash-no-flash')"
        )
    return image


def fit_identity(settings: FitSettings) -> dict[str, Any]:
    """The settings that identify a fit for its fingerprint: all of them, less the frame settings when it saves no
    frame, and "no backtracking" as it was spelled before (None), so that older checkpoints still resume."""
    identity = dict(settings.__dict__)
    if not settings.frames:
        del identity["frames"], identity["frame_side"]
    if not settings.backtrack_db:
        identity["backtrack_db"] = None
    return identity


def fit_key(observation: Observation, spec: dict[str, Any], settings: FitSettings) -> str:
    """The fingerprint of a fit: model, settings, observation (and the net's input, when the task gives it)."""
    guide = () if observation.guide is None else (observation.guide,)
    return fingerprint(spec, fit_identity(settings), observation.meta, observation.observed, *guide)


def restore(
    observation: Observation,
    operator: Operator,
    spec: dict[str, Any],
    settings: FitSettings,
    *,
    device: torch.device,
    checkpoint: Path | None = None,
    stop_event: threading.Event | None = None,
    use_ground_truth: bool = True,
    progress: bool | None = None,
) -> tuple[FitResult, dict[str, Any]]:
    """Run DIP on one observation; returns the fit result and facts for the record (parameter count, fingerprint).
    Running out of memory is an `OutOfMemory` error, one line."""
    try:
        problem = build_problem(
            observation,
            operator,
            spec,
            seed=settings.seed,
            device=device,
            use_ground_truth=use_ground_truth,
            fitting=settings,
        )
        key = fit_key(observation, spec, settings)
        result = fit(
            problem, settings, fingerprint=key, checkpoint=checkpoint, stop_event=stop_event, progress=progress
        )
    except MEMORY_ERRORS as error:
        raise out_of_memory(error, device, source_of(observation.meta)) from None
    return result, {"parameters": count_parameters(problem.net), "fingerprint": key}
