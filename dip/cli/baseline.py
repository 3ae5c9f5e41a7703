"""Restore an observation with a classical baseline; writes restored.png and record.json.

Super-resolution: bicubic, lanczos. Denoising: bm3d (optional extra, non-commercial licence), nlm, tv (Gaussian);
median (impulse), bm3d-vst (shot), nlm (speckle). Inpainting: biharmonic. JPEG: jpeg (the decoded image), tv. The
observation's task and level say which apply and with which parameters.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dip import api, outputs
from dip.baselines import BASELINES
from dip.cli.restore import check_deadline
from dip.failures import observation_identity


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("observation", type=Path, help="observation directory written by `dip degrade`")
    parser.add_argument("--method", required=True, choices=sorted(BASELINES))
    parser.add_argument("--out", required=True, help="run directory to write")


def run(args: argparse.Namespace) -> int:
    check_deadline()
    api.baseline(args.observation, args.method, out=args.out)
    return 0


def identity(args: argparse.Namespace) -> dict[str, object]:
    return {**observation_identity(args.observation), "method": args.method, "variant": "", "seed": 0}


def record_failure(args: argparse.Namespace, record: dict) -> bool:
    outputs.write_failure(args.out, outputs.BASELINE_RUN, record)
    return True
