"""Restore an observation with a classical baseline; writes restored.png and record.json.

Super-resolution: bicubic, lanczos. Denoising: bm3d (optional extra, non-commercial licence), nlm, tv.
Inpainting: biharmonic. The observation's task says which apply and with which parameter.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dip.baselines import BASELINES, run_baseline
from dip.errors import ConfigError
from dip.failures import observation_identity, write_failure
from dip.io import write_image
from dip.operators import load_observation, operator_for
from dip.record import versions, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("observation", type=Path, help="observation directory written by `dip degrade`")
    parser.add_argument("--method", required=True, choices=sorted(BASELINES))
    parser.add_argument("--out", type=Path, required=True, help="run directory to write")


def run(args: argparse.Namespace) -> int:
    observation = load_observation(args.observation)
    meta = observation.meta
    operator = operator_for(observation)
    if args.method not in operator.baselines:
        raise ConfigError(
            f"no baseline {args.method!r} for {operator.task}; choose one of: {', '.join(operator.baselines)}"
        )
    start = time.perf_counter()
    restored = run_baseline(args.method, observation.observed, **operator.baseline_arguments(observation))
    seconds = time.perf_counter() - start
    write_image(args.out / "restored.png", restored)
    write_json(
        args.out / "record.json",
        {
            "method": args.method,
            "variant": "",
            "seed": meta.get("seed", 0),
            "iterations": 0,
            "seconds": seconds,
            "device": "cpu",
            "observation": meta,
            "versions": versions(),
        },
    )
    return 0


def identity(args: argparse.Namespace) -> dict[str, object]:
    return {**observation_identity(args.observation), "method": args.method, "variant": "", "seed": 0}


def record_failure(args: argparse.Namespace, record: dict) -> bool:
    write_failure(args.out, record)
    return True
