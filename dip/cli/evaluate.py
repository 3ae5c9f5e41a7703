"""Score a run against the clean image (PSNR, SSIM under a named protocol); writes metrics.json.

Protocol `auto`: the task's own (`y-dip` for super-resolution, the authors' script; `rgb` otherwise). A task with more
protocols is scored under each (super-resolution also under `y-matlab`: Y channel, shave = factor) in the same record.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dip.errors import ConfigError
from dip.failures import check_upstream, observation_identity, read_failure
from dip.io import read_image
from dip.metrics import PROTOCOLS, evaluate
from dip.operators import load_observation, operator_for
from dip.record import read_json, write_json

RECORDED_META = {"task": "task", "level": "level", "factor": "factor", "lr": "lr_convention", "sigma": "sigma"}
"""Observation meta → metrics column (`lr`, how the LR image was made, is `lr_convention`: not the learning rate)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="run directory with restored.png and record.json")
    parser.add_argument("--observation", type=Path, required=True, help="the observation directory of the run")
    parser.add_argument("--protocol", choices=("auto", *PROTOCOLS), default="auto")
    parser.add_argument("--out", type=Path, required=True, help="metrics.json to write")


def run(args: argparse.Namespace) -> int:
    check_upstream(args.run)
    observation = load_observation(args.observation)
    if not (args.run / "record.json").is_file():
        raise ConfigError(f"{args.run}: not a run directory (no record.json)")
    record = read_json(args.run / "record.json")
    restored = read_image(args.run / "restored.png")
    meta = observation.meta
    operator = operator_for(observation)
    arguments = operator.metric_arguments()
    protocol = operator.metric_protocol if args.protocol == "auto" else args.protocol
    scores = evaluate(restored, observation.clean, protocol=protocol, **arguments)
    metrics = {column: meta[key] for key, column in RECORDED_META.items() if key in meta}
    metrics.update(meta.get("labels", {}))
    metrics.update(
        method=record["method"],
        variant=record.get("variant", ""),
        seed=record.get("seed", 0),
        protocol=protocol,
        psnr=scores["psnr"],
        ssim=scores["ssim"],
        ssim_window=scores["ssim_window"],
        iterations=record.get("iterations", 0),
        smoke_iterations=record.get("smoke_iterations"),
        selected_iteration=record.get("selected_iteration"),
        seconds=record.get("seconds"),
        device=record.get("device", ""),
        run_dir=str(args.run),
    )
    early_stop = record.get("early_stop") or {}
    metrics.update(
        {f"es_{key}": early_stop[key] for key in ("stop_iteration", "selected_iteration") if key in early_stop}
    )
    for other in operator.protocols[1:]:
        extra = evaluate(restored, observation.clean, protocol=other, **arguments)
        suffix = other.replace("-", "_")
        metrics.update({f"psnr_{suffix}": extra["psnr"], f"ssim_{suffix}": extra["ssim"]})
    if observation.observed.shape == observation.clean.shape:
        observed = evaluate(observation.observed, observation.clean, protocol=protocol, **arguments)
        metrics["psnr_observed"] = observed["psnr"]
    write_json(args.out, metrics)
    return 0


def identity(args: argparse.Namespace) -> dict[str, object]:
    """The observation's task, level and labels, and the run's method, variant and seed."""
    run = read_failure(args.run)
    if run is not None:
        return {**observation_identity(args.observation), **run.get("identity", {})}
    try:
        record = read_json(args.run / "record.json")
    except (OSError, ValueError):
        record = {}
    fields = {key: record[key] for key in ("method", "variant", "seed") if key in record}
    return {**observation_identity(args.observation), **fields}


def record_failure(args: argparse.Namespace, record: dict) -> bool:
    """A metrics record of a failed run: its identity, `status: failed`, the failed step, error and log."""
    identity = record.get("identity", {})
    write_json(args.out, {**identity, **{k: v for k, v in record.items() if k != "identity"}, "run_dir": str(args.run)})
    return True
