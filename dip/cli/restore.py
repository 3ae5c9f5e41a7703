"""Restore an observation with Deep Image Prior; writes restored.png, record.json and trace.csv.

Defaults of the fit follow the paper's notebook for the observation's task and level (see PROTOCOL.md); every flag
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
import signal
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from dip.device import (
    DEVICES,
    PRECISIONS,
    check_precision,
    configure_threads,
    describe_device,
    enable_cuda_speedups,
    select_device,
    set_deterministic,
    tune_cpu_allocator,
)
from dip.errors import ConfigError, OutputError
from dip.failures import observation_identity, write_failure
from dip.fit import FitSettings
from dip.io import check_writable, to_numpy, write_image
from dip.models import resolve_spec
from dip.operators import Operator, load_observation, operator_for
from dip.record import versions, write_json, write_trace
from dip.restoration import restore
from dip.stopping import STOPPING_RULES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("observation", type=Path, help="observation directory written by `dip degrade`")
    parser.add_argument("--out", type=Path, required=True, help="run directory to write")
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
    fit.add_argument("--stopping", choices=STOPPING_RULES, default="fixed")
    fit.add_argument("--es-window", type=int, default=100, help="ES-WMV window")
    fit.add_argument("--es-patience", type=int, default=1000, help="ES-WMV patience")
    fit.add_argument(
        "--es-continue",
        action="store_true",
        help="with --stopping es-wmv: fit all iterations anyway and record where the rule would have stopped",
    )
    fit.add_argument("--seed", type=int, default=0, help="seed of the net's initialisation, z and reg-noise")
    fit.add_argument("--trace-every", type=int, default=10)
    run = parser.add_argument_group("execution")
    run.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} or cuda:N")
    run.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    run.add_argument("--precision", choices=PRECISIONS, default="fp32")
    run.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    run.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower on CUDA)")
    run.add_argument("--checkpoint", type=Path, help="checkpoint file (outside --out: resumed when present)")
    run.add_argument("--checkpoint-every", type=int, default=200)
    run.add_argument("--no-ground-truth", action="store_true", help="do not trace PSNR to the clean image")
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def fit_settings(args: argparse.Namespace, operator: Operator) -> FitSettings:
    """The paper's settings for the task and level, overridden by the flags given (and by --smoke-iterations)."""
    overrides = {
        "iterations": args.smoke_iterations or args.iterations,
        "lr": args.lr,
        "reg_noise_std": args.reg_noise,
        "ema": args.ema,
        "backtrack_db": args.backtrack_db,
    }
    merged = {**operator.paper_fit(), **{k: v for k, v in overrides.items() if v is not None}}
    if merged["backtrack_db"] == 0:
        merged["backtrack_db"] = None
    return FitSettings(
        **merged,
        stopping=args.stopping,
        es_window=args.es_window,
        es_patience=args.es_patience,
        es_continue=args.es_continue,
        seed=args.seed,
        trace_every=args.trace_every,
        checkpoint_every=args.checkpoint_every,
        precision=args.precision,
        channels_last=args.channels_last,
    )


def model_spec(args: argparse.Namespace, operator: Operator) -> dict:
    """The full model spec from --arch / --arch-json, or the paper's net for the task."""
    if args.arch_json:
        try:
            requested = json.loads(args.arch_json)
        except json.JSONDecodeError as error:
            raise ConfigError(f"--arch-json is not valid JSON: {error}") from error
        if not isinstance(requested, dict):
            raise ConfigError("--arch-json must be a JSON object")
        return resolve_spec(requested)
    return resolve_spec(args.arch or operator.paper_preset)


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


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    observation = load_observation(args.observation)
    operator = operator_for(observation)
    spec = model_spec(args, operator)
    settings = fit_settings(args, operator)
    device = select_device(args.device)
    check_precision(args.precision, device)
    configure_threads(args.threads)
    set_deterministic(args.deterministic)
    if not args.deterministic:
        enable_cuda_speedups(device)
    if device.type == "cpu":
        tune_cpu_allocator()
    if args.checkpoint and args.checkpoint.resolve().is_relative_to(args.out.resolve()):
        raise ConfigError("--checkpoint must lie outside --out (a workflow deletes a job's outputs before it starts)")
    check_writable(args.out, "--out")
    if args.checkpoint:
        check_writable(args.checkpoint.parent, f"--checkpoint {args.checkpoint}")

    stop_event = threading.Event()
    with stop_on_signals(stop_event):
        result, facts = restore(
            observation,
            operator,
            spec,
            settings,
            device=device,
            checkpoint=args.checkpoint,
            stop_event=stop_event,
            use_ground_truth=not args.no_ground_truth,
            progress=False if args.quiet else None,
        )
    preset = spec.get("preset") or spec["arch"]
    variant = args.variant or preset
    record = {
        "method": args.method or f"dip-{variant}",
        "variant": variant,
        "model": spec,
        "parameters": facts["parameters"],
        "fit": asdict(settings),
        "seed": settings.seed,
        "iterations": result.iterations,
        "smoke_iterations": args.smoke_iterations,
        "selected_iteration": result.selected_iteration,
        "output": result.output_kind,
        "stop_reason": result.stop_reason,
        "early_stop": result.early_stop,
        "backtracks": result.backtracks,
        "resumed_from": result.resumed_from,
        "seconds": result.seconds,
        "seconds_per_iteration": result.seconds / max(1, result.iterations),
        "device": describe_device(device),
        "observation": observation.meta,
        "versions": versions(),
        "fingerprint": facts["fingerprint"],
        "warnings": result.notes,
    }
    try:
        write_image(args.out / "restored.png", to_numpy(result.output))
        write_trace(args.out / "trace.csv", result.trace)
        write_json(args.out / "record.json", record)
    except OSError as error:
        kept = result.checkpoint
        after = f"the fit is kept in {kept}: run the same command again" if kept else "no checkpoint kept the fit"
        raise OutputError(f"cannot write {error.filename or args.out} ({error.strerror or error}); {after}") from None
    if result.checkpoint:
        result.checkpoint.unlink(missing_ok=True)
    logging.getLogger(__name__).info("wrote %s (%d iterations, %.1f s)", args.out, result.iterations, result.seconds)
    return 0


def identity(args: argparse.Namespace) -> dict[str, object]:
    variant = args.variant or args.arch or ""
    method = args.method or f"dip-{variant}"
    return {**observation_identity(args.observation), "method": method, "variant": variant, "seed": args.seed}


def record_failure(args: argparse.Namespace, record: dict) -> bool:
    write_failure(args.out, record)
    return True
