"""Combine runs of one observation into a run of its own; writes restored.png and record.json.

The pixel mean of the runs' chosen outputs (the paper's denoising averages the outputs of two fits with different
seeds), or, with `--output last`, of their last outputs: a DIP fit that chose another output (the averaged one, or an
early-stopping pick) also keeps its last one, and one run with `--output last` is that output as a run of its own.
`dip evaluate` scores the result like any run; `--method` names its row in the tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dip import api, outputs
from dip.failures import meta_identity, read_failure
from dip.layout import RECORD
from dip.record import read_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", type=Path, nargs="+", help="run directories of one observation")
    parser.add_argument("--output", choices=sorted(api.COMBINED_OUTPUTS), default="restored", help="what each gives")
    parser.add_argument(
        "--method",
        help="the method name of the result (default: the runs' method with a suffix, e.g. dip-paper-mean2; needed "
        "where the runs are of different methods)",
    )
    parser.add_argument("--out", required=True, help="run directory to write")


def run(args: argparse.Namespace) -> int:
    api.combine(args.runs, output=args.output, method=args.method, out=args.out)
    return 0


def identity(args: argparse.Namespace) -> dict[str, object]:
    """The first run's identity (a failed one's from its record), under the method being made."""
    first = args.runs[0]
    failure = read_failure(first)
    if failure is not None:
        fields = dict(failure.get("identity", {}))
    else:
        try:
            record = read_json(first / RECORD)
        except (OSError, ValueError):
            record = {}
        try:
            fields = meta_identity(record.get("observation", {}))
        except (KeyError, TypeError, AttributeError):
            fields = {}
        fields.update({key: record[key] for key in ("variant", "seed") if key in record})
    return {**fields, **({"method": args.method} if args.method else {})}


def record_failure(args: argparse.Namespace, record: dict) -> bool:
    outputs.write_failure(args.out, outputs.COMBINED_RUN, record)
    return True
