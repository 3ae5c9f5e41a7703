"""`dip baseline`: a method other than DIP restores an observation into a run folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dip.api.runs import Restoration, as_observation, input_path, observation_digest
from dip.cost import CostMeter
from dip.errors import ConfigError
from dip.io import write_image
from dip.layout import RECORD, RESTORED
from dip.methods import Method, check_count, get_method, run_method
from dip.outputs import BASELINE_RUN, claim
from dip.record import check_seed, versions, write_json
from dip.replacing import building, locked
from dip.tasks import Observation, operator_for


def baseline(
    observation: Observation | str | Path,
    method: str,
    *,
    out: str | Path | None = None,
    device: str = "auto",
    seed: int | None = None,
    threads: int | None = None,
    smoke_iterations: int | None = None,
) -> Restoration:
    """Restore an observation with a method of its task (`dip.methods`); written to `out` (restored.png,
    record.json). A method that runs a net runs on `device` with `threads` CPU threads; one that fits a net fits it
    from `seed` (default 0), for at most `smoke_iterations` where given (a smoke run: the record says so)."""
    chosen = get_method(method)
    _check_net_options(chosen, device, seed, threads, smoke_iterations)
    meter = CostMeter()
    if out is not None:
        out = claim(out, BASELINE_RUN, inputs=[input_path(observation)])
    with locked(out):
        observation = as_observation(observation)
        operator = operator_for(observation)
        if method not in operator.baselines:
            raise ConfigError(
                f"no baseline {method!r} for {operator.task}; choose one of: {', '.join(operator.baselines)}"
            )
        arguments = operator.baseline_arguments(observation)
        start = time.perf_counter()
        if chosen.on_device:
            if smoke_iterations:
                arguments["iterations"] = smoke_iterations
            restored, device_, facts = _run_on_device(chosen, observation, arguments, device, seed or 0, threads)
        else:
            restored, device_, facts = run_method(method, observation.observed, **arguments), None, {"device": "cpu"}
        meta = observation.meta
        record = {
            "kind": "baseline",
            "method": method,
            "family": chosen.family,
            "variant": "",
            "seed": meta.get("seed", 0),
            "iterations": 0,
            "seconds": time.perf_counter() - start,
            "smoke_iterations": smoke_iterations,
            **facts,
            **meter.finish(device_),
            "observation": meta,
            "observation_digest": observation_digest(observation),
            "versions": versions(),
        }
        if out is not None:
            with building(out, BASELINE_RUN) as folder:
                write_image(folder / RESTORED, restored)
                write_json(folder / RECORD, record)
        return Restoration(restored, record)


def _check_net_options(
    method: Method, device: str, seed: int | None, threads: int | None, smoke_iterations: int | None
) -> None:
    """Refuse a device, seed, threads or smoke iterations for a method that does not use them."""
    if not method.on_device and (device != "auto" or threads is not None):
        raise ConfigError(f"{method.name} runs no net: it takes no device or threads")
    if not method.fits_net and (seed is not None or smoke_iterations is not None):
        raise ConfigError(f"{method.name} fits no net: it takes no seed or smoke iterations")
    if seed is not None:
        check_seed(seed)
    if smoke_iterations is not None:
        check_count(smoke_iterations, "smoke iterations")


def _run_on_device(
    method: Method, observation: Observation, arguments: dict[str, Any], device: str, seed: int, threads: int | None
) -> tuple[Any, Any, dict[str, Any]]:
    """Run a net method on `device` (with several GPUs, a free one of its own): its output, the torch device and
    where it ran, for the record."""
    import torch

    from dip.device import configure_threads, describe_device, select_device
    from dip.gpu_slots import claim as claim_gpu

    device_, gpu_slot = claim_gpu(select_device(device))
    configure_threads(threads)
    if device_.type == "cuda":
        if device_.index is not None:
            torch.cuda.set_device(device_)  # no CUDA context on GPU 0 for a run of another GPU
        torch.cuda.reset_peak_memory_stats(device_)
    restored = run_method(method.name, observation.observed, device=device_, seed=seed, **arguments)
    facts: dict[str, Any] = {"device": describe_device(device_), "gpu_slot": gpu_slot}
    if method.fits_net:
        facts["method_seed"] = seed
    return restored, device_, facts
