"""`dip evaluate`: PSNR and SSIM of a restored image under the task's metric protocols, as one flat record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dip.api.runs import Restoration, as_observation, check_same_observation, input_path, observation_digest, read_run
from dip.metrics import evaluate as score
from dip.metrics import psnr
from dip.outputs import METRICS, claim
from dip.record import write_json
from dip.tasks import Observation, Operator, operator_for

RECORDED_META = {"task": "task", "level": "level", "factor": "factor", "lr": "lr_convention", "sigma": "sigma"}
"""Observation meta → metrics key (`lr`, how the LR image was made, is `lr_convention`: not the learning rate)."""


def _early_stop_metrics(record: dict[str, Any], restored: np.ndarray, observation: Observation) -> dict[str, Any]:
    """Where a fit's stopping rule stopped (`es_stop_iteration`, None: it never fired), what it picked
    (`es_selected_iteration`) and that output's RGB PSNR over the whole image, the trace's protocol (`es_psnr_gt`):
    from `early_stop` when the fit went on (`es_continue`), else from the fit's own selection; {} without a rule."""
    early_stop = record.get("early_stop")
    if early_stop:
        return {
            f"es_{key}": early_stop[key]
            for key in ("stop_iteration", "selected_iteration", "psnr_gt")
            if key in early_stop
        }
    stopping = (record.get("fit") or {}).get("stopping", "fixed")
    if stopping == "fixed" or not str(record.get("output", "")).startswith(f"{stopping} selection"):
        return {}
    stopped = str(record.get("stop_reason", "")).startswith(stopping)
    return {
        "es_stop_iteration": record.get("iterations") if stopped else None,
        "es_selected_iteration": record.get("selected_iteration"),
        "es_psnr_gt": psnr(restored, observation.clean, protocol="rgb") if observation.has_ground_truth else None,
    }


COST_KEYS = ("wall_seconds", "peak_memory_mb", "memory_measure", "seconds_per_iteration", "cost_shared_by")
"""What a run cost (`dip.cost`; DIP's seconds per iteration, which price its early-stopping pick), as the run record
says it."""
WATCHED_KEYS = ("stop_iteration", "selected_iteration", "psnr_gt")
"""What each watching rule records (`dip.watching.Watcher.record`)."""


def watched_column(rule: str, key: str) -> str:
    """The metrics column of a watching rule's record, e.g. `watch_es_emv_psnr_gt`."""
    return f"watch_{rule.replace('-', '_')}_{key}"


def _watched_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """Each watching rule's stop, pick and pick PSNR (`record["watched"]`) as flat metrics columns."""
    return {
        watched_column(rule, key): values.get(key)
        for rule, values in (record.get("watched") or {}).items()
        for key in WATCHED_KEYS
    }


def evaluate(
    restored: np.ndarray | Restoration | str | Path,
    observation: Observation | str | Path,
    *,
    protocol: str = "auto",
    record: dict[str, Any] | None = None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """PSNR and SSIM of a restored image (an array, a `Restoration`, or a run directory) against the observation's
    clean image, under the task's protocol (`auto`) or the one named, with the task's other protocols too; the flat
    metrics record of `dip evaluate`, written to `out`, with the observation directory where one is given (for the
    figures' image grids). An observation without ground truth gets a record without scores (`ground_truth: false`)."""
    if out is not None:
        out = claim(out, METRICS, inputs=[input_path(restored), input_path(observation)])
    run_dir = None
    if isinstance(restored, str | Path):
        run_dir = Path(restored)
        record, restored = read_run(run_dir)
    elif isinstance(restored, Restoration):
        record, restored = restored.record, restored.output
    observation_dir = str(observation) if isinstance(observation, str | Path) else None
    observation = as_observation(observation)
    record = record or {}
    check_same_observation(run_dir or "the run", record, observation, observation_dir or "the observation given")
    meta = observation.meta
    operator = operator_for(observation)
    protocol = operator.metric_protocol if protocol == "auto" else protocol
    metrics = {column: meta[key] for key, column in RECORDED_META.items() if key in meta}
    if observation_dir is not None:  # where the figures and the viewer find its images (a label may say otherwise)
        metrics["observation_dir"] = observation_dir
    metrics.update(meta.get("labels", {}))
    metrics.update(
        method=record.get("method", ""),
        variant=record.get("variant", ""),
        seed=record.get("seed", 0),
        ground_truth=observation.has_ground_truth,
        iterations=record.get("iterations", 0),
        smoke_iterations=record.get("smoke_iterations"),
        selected_iteration=record.get("selected_iteration"),
        seconds=record.get("seconds"),
        **{key: record.get(key) for key in COST_KEYS},
        device=record.get("device", ""),
        precision=(record.get("precision") or {}).get("ran", ""),
        run_dir=None if run_dir is None else str(run_dir),
        observation_digest=observation_digest(observation),
    )
    metrics.update(_early_stop_metrics(record, restored, observation))
    metrics.update(_watched_metrics(record))
    if observation.has_ground_truth:
        metrics.update(_scores(restored, observation, operator, protocol))
    if out is not None:
        write_json(out, metrics)
    return metrics


def _scores(restored: np.ndarray, observation: Observation, operator: Operator, protocol: str) -> dict[str, Any]:
    """The metrics record's scores: PSNR and SSIM under `protocol`, under the task's other protocols, and the observed
    input's PSNR where it has the clean image's size."""
    arguments = operator.metric_arguments()
    scores = score(restored, observation.clean, protocol=protocol, **arguments)
    metrics = {
        "protocol": protocol,
        "psnr": scores["psnr"],
        "ssim": scores["ssim"],
        "ssim_window": scores["ssim_window"],
    }
    for other in operator.protocols[1:]:
        extra = score(restored, observation.clean, protocol=other, **arguments)
        suffix = other.replace("-", "_")
        metrics.update({f"psnr_{suffix}": extra["psnr"], f"ssim_{suffix}": extra["ssim"]})
    if observation.observed.shape == observation.clean.shape:
        metrics["psnr_observed"] = score(observation.observed, observation.clean, protocol=protocol, **arguments)[
            "psnr"
        ]
    return metrics
