"""Restore an observation with Deep Image Prior; writes restored.png, record.json and trace.csv (and, with
--frames N, frames.webp and frames.json: N snapshots of the net's output along the fit, for `dip viewer`).

Defaults of the fit follow the paper's notebook for the observation's task and level (docs/reproduction.md); every flag
overrides them. With --checkpoint, the fit saves its state every --checkpoint-every iterations and when it gets
SIGINT/SIGTERM, and the same command resumes from it. It also keeps the final state until all outputs are written
(then it is deleted), so a run that could not write them finishes at once when run again. A checkpoint of another
fit is left alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from dip import api, outputs
from dip.device import DEVICES, PRECISIONS
from dip.errors import ConfigError, TimeBudgetSpent
from dip.failures import observation_identity
from dip.layout import FRAMES_INDEX, FRAMES_SPRITE, RECORD, dip_method
from dip.stopping import EARLY_STOPPING_RULES, STOPPING_RULES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("observation", type=Path, help="observation directory written by `dip degrade`")
    parser.add_argument("--out", required=True, help="run directory to write")
    arch = parser.add_mutually_exclusive_group()
    arch.add_argument("--arch", help="model preset (see `dip archs`); default: the paper's net for the task")
    arch.add_argument("--arch-json", help='model spec as JSON, e.g. \'{"preset": "tiny", "channels_skip": [0, 4, 4]}\'')
    parser.add_argument("--method", help="method label in records (default: dip-<variant>)")
    parser.add_argument("--variant", help="variant name in records (default: the preset name)")
    fit = parser.add_argument_group("fit (default: the paper's settings for the task and level)")
    fit.add_argument("--iterations", type=int)
    fit.add_argument(
        "--smoke-iterations",
        type=int,
        metavar="N",
        help="a smoke run: N iterations whatever --iterations says, and the record marks it as a smoke run",
    )
    fit.add_argument("--lr", type=float, help="Adam learning rate")
    fit.add_argument("--reg-noise", type=float, help="std of the noise added to z each iteration")
    fit.add_argument("--ema", type=float, help="weight of the running average of outputs (0 = last output)")
    fit.add_argument("--backtrack-db", type=float, help="restore the last good state on a PSNR drop > this (0 = off)")
    fit.add_argument(
        "--stopping",
        choices=STOPPING_RULES,
        help="stopping rule (default: the task's, es-wmv for jpeg and the non-Gaussian noise kinds, else fixed)",
    )
    fit.add_argument("--es-window", type=int, default=100, help="ES-WMV window")
    fit.add_argument("--es-patience", type=int, default=1000, help="ES-WMV and ES-EMV patience")
    fit.add_argument("--es-alpha", type=float, default=0.1, help="ES-EMV weight of the newest output")
    fit.add_argument(
        "--watch",
        nargs="*",
        choices=EARLY_STOPPING_RULES,
        metavar="RULE",
        help="early-stopping rules that watch the fit and record their stop and pick "
        f"({', '.join(EARLY_STOPPING_RULES)}; default: every rule that applies, noise-level for Gaussian denoising "
        "only; --watch alone: none)",
    )
    fit.add_argument(
        "--es-continue",
        action="store_true",
        help="with --stopping es-wmv: fit all iterations anyway and record where the rule would have stopped",
    )
    fit.add_argument("--tv-weight", type=float, help="DIP-TV: weight of the total-variation term (0 = off)")
    fit.add_argument(
        "--langevin-sigma", type=float, help="Bayesian DIP (SGLD): Langevin noise std on conv weights, × lr (0 = off)"
    )
    fit.add_argument("--langevin-burnin", type=int, help="SGLD: iterations before the posterior mean collects outputs")
    fit.add_argument("--langevin-every", type=int, help="SGLD: collect an output every this many iterations")
    fit.add_argument("--weight-decay", type=float, help="Adam weight decay (SGLD: 5e-8)")
    fit.add_argument("--seed", type=int, default=0, help="seed of the net's initialisation, z and reg-noise")
    fit.add_argument("--trace-every", type=int, default=10)
    fit.add_argument(
        "--frames",
        type=int,
        default=0,
        metavar="N",
        help=f"save N snapshots of the net's output at geometrically spaced iterations ({FRAMES_SPRITE}, "
        f"{FRAMES_INDEX}); they change no number of the fit",
    )
    fit.add_argument(
        "--frame-side", type=int, default=256, metavar="PX", help="shrink frames to at most PX on the longer side"
    )
    run = parser.add_argument_group("execution")
    run.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} or cuda:N")
    run.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    run.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp32 (IEEE float32, also on CUDA); tf32 (CUDA: TensorFloat-32 matmuls and convolutions); bf16 or fp16 "
        "(autocast; fp16 on CUDA only); auto: bf16 where the device computes it natively (CUDA compute capability ≥ "
        f"8.0, or a CPU with AMX-BF16/AVX512-BF16 and --channels-last), else fp32; {RECORD} says which ran and why",
    )
    run.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    run.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower on CUDA)")
    run.add_argument("--checkpoint", help="checkpoint file (outside --out: resumed when present)")
    run.add_argument("--checkpoint-every", type=int, default=200)
    run.add_argument("--no-ground-truth", action="store_true", help="do not trace PSNR to the clean image")
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def arch_of(args: argparse.Namespace) -> str | dict | None:
    """The net asked for: a preset name (--arch), a model spec (--arch-json) or None (the paper's for the task)."""
    if not args.arch_json:
        return args.arch
    try:
        requested = json.loads(args.arch_json)
    except json.JSONDecodeError as error:
        raise ConfigError(f"--arch-json is not valid JSON: {error}") from error
    if not isinstance(requested, dict):
        raise ConfigError("--arch-json must be a JSON object")
    return requested


@contextlib.contextmanager
def stop_on_signals(event: threading.Event) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM (Ctrl-C, a cluster's pre-emption) ask the fit to checkpoint and stop."""

    def handler(signum: int, frame: object) -> None:
        logging.getLogger(__name__).warning("received signal %d: stopping after this iteration", signum)
        event.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


DEADLINE_VARIABLE = "DIP_DEADLINE"
"""A Unix time after which `dip restore` and `dip baseline` start no fit (a budgeted run, e.g. benchmarks/gpu/run.sh):
the run is recorded as not started, as any failure is, so that the tables list it."""


def check_deadline() -> None:
    """Refuse to start a fit (or baseline) once $DIP_DEADLINE has passed."""
    value = os.environ.get(DEADLINE_VARIABLE, "").strip()
    if not value:
        return
    try:
        deadline = float(value)
    except ValueError:
        raise ConfigError(f"{DEADLINE_VARIABLE} must be a Unix time in seconds, not {value!r}") from None
    if time.time() >= deadline:
        raise TimeBudgetSpent(f"not started: the run's time budget (${DEADLINE_VARIABLE}) was spent")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    check_deadline()
    stop_event = threading.Event()
    with stop_on_signals(stop_event):
        api.restore(
            args.observation,
            arch=arch_of(args),
            method=args.method,
            variant=args.variant,
            device=args.device,
            threads=args.threads,
            deterministic=args.deterministic,
            checkpoint=args.checkpoint,
            out=args.out,
            use_ground_truth=not args.no_ground_truth,
            progress=False if args.quiet else None,
            smoke_iterations=args.smoke_iterations,
            stop_event=stop_event,
            iterations=args.iterations,
            lr=args.lr,
            reg_noise_std=args.reg_noise,
            ema=args.ema,
            backtrack_db=args.backtrack_db,
            stopping=args.stopping,
            es_window=args.es_window,
            es_patience=args.es_patience,
            es_continue=args.es_continue,
            es_alpha=args.es_alpha,
            watch=args.watch,
            tv_weight=args.tv_weight,
            langevin_sigma=args.langevin_sigma,
            langevin_burnin=args.langevin_burnin,
            langevin_every=args.langevin_every,
            weight_decay=args.weight_decay,
            seed=args.seed,
            trace_every=args.trace_every,
            checkpoint_every=args.checkpoint_every,
            frames=args.frames,
            frame_side=args.frame_side,
            precision=args.precision,
            channels_last=args.channels_last,
        )
    return 0


def identity(args: argparse.Namespace) -> dict[str, object]:
    variant = args.variant or args.arch or ""
    method = args.method or dip_method(variant)
    return {**observation_identity(args.observation), "method": method, "variant": variant, "seed": args.seed}


def record_failure(args: argparse.Namespace, record: dict) -> bool:
    outputs.write_failure(args.out, outputs.DIP_RUN, record)
    return True
