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
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from dip import api, outputs
from dip.device import DEVICES, NOT_DETERMINISTIC_ON_CUDA
from dip.errors import ConfigError, DipError, TimeBudgetSpent
from dip.failures import failure_record, observation_identity
from dip.fit_settings import FitSettings
from dip.layout import RECORD, dip_method


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "observations",
        type=Path,
        nargs="+",
        metavar="observation",
        help="observation directory written by `dip degrade` (several: with --seeds)",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="run directory to write; with --seeds, the directory under which each fit writes its own, "
        "<dataset>/<task>/<level>/<image>/dip-<variant>/seed<seed> as the workflow names it",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="S",
        help="fit each observation with each of these seeds, the fits of one net and one image size as one batch "
        "in this process (one stacked model); a fit that fails does so alone",
    )
    arch = parser.add_mutually_exclusive_group()
    arch.add_argument("--arch", help="model preset (see `dip archs`); default: the paper's net for the task")
    arch.add_argument("--arch-json", help='model spec as JSON, e.g. \'{"preset": "tiny", "channels_skip": [0, 4, 4]}\'')
    parser.add_argument("--method", help="method label in records (default: dip-<variant>)")
    parser.add_argument("--variant", help="variant name in records (default: the preset name)")
    fit = parser.add_argument_group("fit (default: the paper's settings for the task and level)")
    fit.add_argument(
        "--smoke-iterations",
        type=int,
        metavar="N",
        help="a smoke run: N iterations whatever --iterations says, and the record marks it as a smoke run",
    )
    add_fit_arguments(fit)
    run = parser.add_argument_group("execution")
    run.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} or cuda:N")
    run.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    run.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic kernels (slower on CUDA); on CUDA torch has none for "
        f"{' nor for '.join(NOT_DETERMINISTIC_ON_CUDA)}: those still run nondeterministically, and {RECORD} lists "
        "the kernels that did (deterministic.not_deterministic)",
    )
    run.add_argument(
        "--checkpoint",
        help="checkpoint file (outside --out: resumed when present); with --seeds, a directory for one per fit",
    )
    run.add_argument("--no-ground-truth", action="store_true", help="do not trace PSNR to the clean image")
    run.add_argument("--quiet", action="store_true", help="no progress bar")


FIT_FLAGS = tuple(setting.name for setting in dataclasses.fields(FitSettings))
"""`dip restore`'s fit flags: every field of `FitSettings`, `--name-with-dashes`."""


def add_fit_arguments(group: argparse._ArgumentGroup) -> None:
    """A flag for each field of `FitSettings`, with its type (the field's metadata `type` where its default is None),
    help and default (the task's paper value where it has one); a flag left out is None, so that `api.restore` fills
    it in."""
    for setting in dataclasses.fields(FitSettings):
        options = dict(setting.metadata)
        help_text, kind = options.pop("help"), options.pop("type", type(setting.default))
        flag = "--" + setting.name.replace("_", "-")
        if isinstance(setting.default, bool):
            group.add_argument(flag, action="store_true", default=None, help=help_text)
            continue
        if setting.default is not None:  # a setting without a default says in its help what it defaults to
            default = "the task's paper value" if setting.name in api.FIT_OVERRIDES else setting.default
            help_text = f"{help_text} (default: {default})"
        group.add_argument(flag, type=kind, help=help_text, **options)


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
        deadline = math.nan
    if not math.isfinite(deadline):
        raise ConfigError(f"{DEADLINE_VARIABLE} must be a Unix time in seconds, not {value[:40]!r}")
    if time.time() >= deadline:
        raise TimeBudgetSpent(f"not started: the run's time budget (${DEADLINE_VARIABLE}) was spent")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    check_deadline()
    if args.seeds is None and len(args.observations) > 1:
        raise ConfigError("several observations are fitted as a batch: give their --seeds (and --out a directory)")
    common = {
        "arch": arch_of(args),
        "method": args.method,
        "variant": args.variant,
        "device": args.device,
        "threads": args.threads,
        "deterministic": args.deterministic,
        "checkpoint": args.checkpoint,
        "out": args.out,
        "use_ground_truth": not args.no_ground_truth,
        "progress": False if args.quiet else None,
        "smoke_iterations": args.smoke_iterations,
        **{name: getattr(args, name) for name in FIT_FLAGS},
    }
    stop_event = threading.Event()
    with stop_on_signals(stop_event):
        if args.seeds is None:
            api.restore(args.observations[0], stop_event=stop_event, **common)
            return 0
        fits = api.restore_batch(args.observations, args.seeds, stop_event=stop_event, **common)
    return report_batch(args, fits)


def report_batch(args: argparse.Namespace, fits: list[api.BatchFit]) -> int:
    """Each failed fit of a batch in one line (and, with --record-failure, its failure record in its run
    directory); 0 when every fit succeeded or has its failure recorded, else 2."""
    failed = [fit for fit in fits if isinstance(fit.outcome, DipError)]
    for fit in failed:
        print(f"dip restore: error: {fit.run_dir}: {fit.outcome}", file=sys.stderr)
        if args.record_failure is not None:
            variant = fit.run_dir.parent.name.removeprefix(dip_method(""))
            who = {**fit.identity, "method": args.method or dip_method(variant), "variant": variant}
            outputs.write_failure(
                fit.run_dir, outputs.DIP_RUN, failure_record("restore", fit.outcome, args.record_failure, who)
            )
    log = logging.getLogger(__name__)
    log.info("%d of %d fits done", len(fits) - len(failed), len(fits))
    return 0 if not failed or args.record_failure is not None else DipError.exit_code


def identity(args: argparse.Namespace) -> dict[str, object]:
    variant = args.variant or args.arch or ""
    method = args.method or dip_method(variant)
    return {**observation_identity(args.observations[0]), "method": method, "variant": variant, "seed": args.seed}


def record_failure(args: argparse.Namespace, record: dict) -> bool:
    """A single fit's failure record in its run directory; a batch's error before any fit is not one fit's."""
    if args.seeds is not None:
        return False
    outputs.write_failure(args.out, outputs.DIP_RUN, record)
    return True
