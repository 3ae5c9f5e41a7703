"""Score a run against the clean image (PSNR, SSIM under a named protocol); writes metrics.json.

Protocol `auto`: the task's own (`y-dip` for super-resolution, the authors' script; `rgb` otherwise). A task with more
protocols is scored under each (super-resolution also under `y-matlab`: Y channel, shave = factor) in the same record.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dip import api, outputs
from dip.failures import observation_identity, read_failure
from dip.layout import RECORD, RESTORED
from dip.metrics import PROTOCOLS
from dip.record import read_json, write_json
from dip.replacing import locked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help=f"run directory with {RESTORED} and {RECORD}")
    parser.add_argument("--observation", type=Path, required=True, help="the observation directory of the run")
    parser.add_argument("--protocol", choices=("auto", *PROTOCOLS), default="auto")
    parser.add_argument("--out", required=True, help="metrics.json to write")


def run(args: argparse.Namespace) -> int:
    api.evaluate(args.run, args.observation, protocol=args.protocol, out=args.out)
    return 0


def identity(args: argparse.Namespace) -> dict[str, object]:
    """The observation's task, level and labels, and the run's method, variant and seed."""
    run = read_failure(args.run)
    if run is not None:
        return {**observation_identity(args.observation), **run.get("identity", {})}
    try:
        record = read_json(args.run / RECORD)
    except (OSError, ValueError):
        record = {}
    fields = {key: record[key] for key in ("method", "variant", "seed") if key in record}
    return {**observation_identity(args.observation), **fields}


def record_failure(args: argparse.Namespace, record: dict) -> bool:
    """A metrics record of a failed run: its identity, `status: failed`, the failed step, error and log."""
    identity = record.get("identity", {})
    out = outputs.claim(args.out, outputs.METRICS, inputs=[args.run, args.observation])
    failed = {k: v for k, v in record.items() if k not in ("identity", "command")}
    with locked(out):
        write_json(out, {**identity, **failed, "run_dir": str(args.run)})
    return True
