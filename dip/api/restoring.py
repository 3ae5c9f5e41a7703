"""`dip restore`: one Deep Image Prior fit of an observation, from its settings and device to its run folder."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dip.api.runs import Restoration, as_observation, input_path, observation_digest
from dip.cost import CostMeter
from dip.errors import ConfigError, OutputError
from dip.io import write_image
from dip.layout import LAST, RECORD, RESTORED, TRACE, dip_method
from dip.outputs import CHECKPOINT, DIP_RUN, claim
from dip.record import versions, write_json, write_trace
from dip.replacing import building, locked
from dip.tasks import Observation, Operator, operator_for

if TYPE_CHECKING:
    import torch

    from dip.fit import FitResult
    from dip.fit_settings import FitSettings

log = logging.getLogger(__name__)


FIT_OVERRIDES = ("iterations", "lr", "reg_noise_std", "ema", "backtrack_db", "stopping")
"""The settings a task object's paper values give (`stopping` where its source stops early), which a caller may
override."""


def restore(
    observation: Observation | str | Path,
    *,
    arch: str | dict[str, Any] | None = None,
    method: str | None = None,
    variant: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    deterministic: bool = False,
    checkpoint: str | Path | None = None,
    out: str | Path | None = None,
    use_ground_truth: bool = True,
    progress: bool | None = False,
    smoke_iterations: int | None = None,
    stop_event: threading.Event | None = None,
    **settings: Any,
) -> Restoration:
    """Restore an observation with Deep Image Prior.

    `arch`: a preset name or a model spec (default: the authors' net for the task and level). `settings`: fields of
    `dip.fit_settings.FitSettings` (None: its default); those the task's paper values cover (`FIT_OVERRIDES`)
    default to them. `smoke_iterations` caps the iterations and marks the record. With `checkpoint`, the fit saves
    and resumes its state there; with `out`, restored.png, trace.csv, the frames and record.json are written, and the
    checkpoint is deleted once they are.
    """
    from dip.device import nondeterministic_kernels
    from dip.models import resolve_spec
    from dip.restoration import restore as fit_observation

    meter = CostMeter()
    out, checkpoint = check_run_paths(out, checkpoint, observation)
    with locked(out), locked(checkpoint, "--checkpoint"):
        observation = as_observation(observation)
        operator = operator_for(observation)
        spec = resolve_spec(arch if arch is not None else operator.paper_preset)
        fit_settings = settings_for(operator, settings, smoke_iterations)
        device_, gpu_slot, fit_settings, precision_record = prepare_device(device, fit_settings, threads, deterministic)
        with nondeterministic_kernels() as nondeterministic:
            result, facts = fit_observation(
                observation,
                operator,
                spec,
                fit_settings,
                device=device_,
                checkpoint=checkpoint,
                stop_event=stop_event,
                use_ground_truth=use_ground_truth,
                progress=progress,
            )
        variant = variant or spec.get("preset") or spec["arch"]
        fit_record = record_of_fit(result, fit_settings, facts)
        device_record = record_of_device(device_, gpu_slot, precision_record, deterministic, nondeterministic)
        cost = meter.finish(device_)
        record = run_record(observation, spec, variant, method, fit_record, smoke_iterations, device_record, **cost)
        return finish_run(result, record, out)


def run_record(
    observation: Observation,
    spec: dict[str, Any],
    variant: str,
    method: str | None,
    fit_record: dict[str, Any],
    smoke_iterations: int | None,
    device_record: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """record.json of a DIP run (`extra`, e.g. its cost and a batch's size, before the observation it restores)."""
    return {
        "kind": "restore",
        "method": method or dip_method(variant),
        "variant": variant,
        "model": spec,
        **fit_record,
        "smoke_iterations": smoke_iterations,
        **device_record,
        **extra,
        "observation": observation.meta,
        "observation_digest": observation_digest(observation),
    }


def settings_for(operator: Operator, given: dict[str, Any], smoke_iterations: int | None) -> FitSettings:
    """The fit's settings: those given, over the task's paper values and its known noise σ; `smoke_iterations` caps
    the iterations."""
    from dip.fit_settings import FitSettings

    given = {key: value for key, value in given.items() if value is not None}
    merged = {**operator.paper_fit(), "noise_sigma": operator.noise_sigma, **given}
    if smoke_iterations is not None:
        if isinstance(smoke_iterations, bool) or not isinstance(smoke_iterations, int) or smoke_iterations < 1:
            raise ConfigError(f"smoke_iterations must be a whole number ≥ 1, not {smoke_iterations!r}")
        merged["iterations"] = smoke_iterations
    try:
        settings = FitSettings(**merged)
    except TypeError as error:
        raise ConfigError(f"unknown fit setting: {error}") from None
    first_sample = settings.langevin_burnin + settings.langevin_every  # `LangevinDynamics.observe`
    if settings.langevin_sigma > 0 and first_sample > settings.iterations - 1:
        log.warning(
            "SGLD takes its first sample of the posterior at iteration %d, past this fit's last (%d): its output is "
            "not a posterior mean but what the fit returns without SGLD (a stopping rule's pick, the average of "
            "outputs or the last); lower langevin_burnin or raise iterations",
            first_sample,
            settings.iterations - 1,
        )
    return settings


def prepare_device(
    device: str, settings: FitSettings, threads: int | None, deterministic: bool, *, batched: bool = False
) -> tuple[torch.device, int | None, FitSettings, dict[str, str]]:
    """The device of the fit (with several GPUs, a free one of its own: its slot), set up for it, the settings with
    the precision and layout it runs (`auto` resolved, `dip.device.resolve_precision`) and the record of how they
    were chosen."""
    import torch

    from dip.device import (
        check_precision,
        configure_cuda,
        configure_threads,
        resolve_precision,
        select_device,
        set_deterministic,
        tune_cpu_allocator,
    )
    from dip.gpu_slots import claim as claim_gpu

    device_, gpu_slot = claim_gpu(select_device(device))
    precision, channels_last, why = resolve_precision(
        settings.precision, device_, settings.channels_last, batched=batched
    )
    check_precision(precision, device_)
    configure_threads(threads)
    set_deterministic(deterministic)
    configure_cuda(device_, precision, autotune=not deterministic)
    if device_.type == "cpu":
        tune_cpu_allocator()
    if device_.type == "cuda":
        if device_.index is not None:
            torch.cuda.set_device(device_)  # no CUDA context on GPU 0 for a fit of another GPU
        torch.cuda.reset_peak_memory_stats(device_)
    ran = replace(settings, precision=precision, channels_last=channels_last)
    return device_, gpu_slot, ran, {"asked": settings.precision, "ran": precision, "why": why}


def record_of_device(
    device: torch.device,
    gpu_slot: int | None,
    precision: dict[str, str],
    deterministic: bool,
    nondeterministic: list[str],
) -> dict[str, Any]:
    """The part of a run record that tells where and how the fit ran (and the kernels that ran nondeterministically
    though `deterministic` asked otherwise: `dip.device.nondeterministic_kernels`)."""
    from dip.device import cuda_versions, describe_device

    return {
        "precision": precision,
        "device": describe_device(device),
        **cuda_versions(device),
        "deterministic": {"asked": deterministic, "not_deterministic": nondeterministic if deterministic else None},
        "gpu_slot": gpu_slot,
    }


def check_run_paths(
    out: str | Path | None, checkpoint: str | Path | None, observation: object = None
) -> tuple[Path | None, Path | None]:
    """The run directory and the checkpoint, claimed before the fit (`dip.outputs`: writable, not an input, not
    another step's output); the checkpoint lies outside `out`."""
    if out is not None:
        out = claim(out, DIP_RUN, inputs=[input_path(observation)])
    if checkpoint is not None:
        checkpoint = claim(checkpoint, CHECKPOINT, option="--checkpoint", inputs=[input_path(observation), out])
    if checkpoint and out and checkpoint.resolve().is_relative_to(out.resolve()):
        raise ConfigError("--checkpoint must lie outside --out (a workflow deletes a job's outputs before it starts)")
    return out, checkpoint


def record_of_fit(result: FitResult, settings: FitSettings, facts: dict[str, Any]) -> dict[str, Any]:
    """The part of a run record that tells how the fit went."""
    return {
        "parameters": facts["parameters"],
        "fit": asdict(settings),
        "seed": settings.seed,
        "iterations": result.iterations,
        "selected_iteration": result.selected_iteration,
        "output": result.output_kind,
        "stop_reason": result.stop_reason,
        "early_stop": result.early_stop,
        "watched": result.watched,
        "backtracks": result.backtracks,
        "resumed_from": result.resumed_from,
        "seconds": result.seconds,
        "seconds_per_iteration": result.seconds / max(1, result.iterations),
        "versions": versions(),
        "fingerprint": facts["fingerprint"],
        "warnings": result.notes,
    }


def finish_run(result: FitResult, record: dict[str, Any], out: Path | None) -> Restoration:
    """Write the run directory (restored.png, last.png, trace.csv, the frames, record.json) where `out` is given,
    then delete the checkpoint: the fit is kept until all its outputs are."""
    from dip.fit import LAST_OUTPUT
    from dip.frames import write_frames
    from dip.io import to_numpy

    restored = to_numpy(result.output)
    if out is not None:
        try:
            with building(out, DIP_RUN) as folder:
                write_image(folder / RESTORED, restored)
                if record["output"] != LAST_OUTPUT:
                    write_image(folder / LAST, to_numpy(result.last_output))
                write_trace(folder / TRACE, result.trace)
                write_frames(folder, result.frames, restored.shape[:2])
                write_json(folder / RECORD, record)
        except OutputError as error:
            kept = result.checkpoint
            after = f"the fit is kept in {kept}: run the same command again" if kept else "no checkpoint kept the fit"
            raise OutputError(f"{error}; {after}") from None
        log.info("wrote %s (%d iterations, %.1f s)", out, result.iterations, result.seconds)
    if result.checkpoint:
        result.checkpoint.unlink(missing_ok=True)
    return Restoration(restored, record, result.trace)
