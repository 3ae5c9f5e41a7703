"""Set up a DIP fit for an observation: the seeded net and input, the task's forward operator, and the fit itself."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dip.errors import ImageError
from dip.fit import FitProblem, FitResult, FitSettings, fit
from dip.io import to_tensor
from dip.models import build_model, count_parameters, make_input, minimum_side, required_multiple
from dip.operators import Observation, Operator
from dip.record import fingerprint


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
) -> FitProblem:
    """The seeded net, its fixed input z, A and x0 on `device`; the clean image is only for the trace."""
    height, width = operator.output_shape(observation)
    multiple, shortest = required_multiple(spec), minimum_side(spec)
    net = f"the net ({spec.get('preset') or spec.get('arch')})"
    if height % multiple or width % multiple:
        raise ImageError(
            f"{source_of(observation.meta)}: the image to restore is {height}×{width} but {net} needs both sides "
            f"divisible by {multiple}; degrade it again with `--multiple {multiple}`"
        )
    if min(height, width) < shortest:
        raise ImageError(
            f"{source_of(observation.meta)}: the image to restore is {height}×{width} but {net} needs both sides "
            f"≥ {shortest}; use a larger image or a net with fewer scales (see `dip archs`)"
        )
    channels = observation.observed.shape[-1]
    torch.manual_seed(seed)
    net = build_model(spec, channels).to(device)
    net_input = make_input(spec, height, width, torch.Generator().manual_seed(seed)).to(device)
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


def fit_identity(settings: FitSettings) -> dict[str, Any]:
    """The settings that identify a fit for its fingerprint: all of them, less the frame settings when it saves no
    frame (so that a checkpoint written before frames existed still resumes)."""
    identity = dict(settings.__dict__)
    if not settings.frames:
        del identity["frames"], identity["frame_side"]
    return identity


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
    """Run DIP on one observation; returns the fit result and facts for the record (parameter count, fingerprint)."""
    problem = build_problem(
        observation, operator, spec, seed=settings.seed, device=device, use_ground_truth=use_ground_truth
    )
    key = fingerprint(spec, fit_identity(settings), observation.meta, observation.observed)
    result = fit(problem, settings, fingerprint=key, checkpoint=checkpoint, stop_event=stop_event, progress=progress)
    return result, {"parameters": count_parameters(problem.net), "fingerprint": key}
