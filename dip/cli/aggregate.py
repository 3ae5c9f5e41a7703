"""Gather the metrics.json of many runs into one tidy CSV (and their DIP traces into another).

One row of summary.csv per run: the metrics record plus `label`, the method's display name (`dip-<variant>` for DIP).
traces.csv holds every trace.csv row found next to a metrics.json, with the run's identifying columns.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("metrics", nargs="+", type=Path, help="metrics.json files (written by `dip evaluate`)")
    parser.add_argument("--out", type=Path, required=True, help="summary CSV to write")
    parser.add_argument("--traces-out", type=Path, help="CSV of the DIP traces to write")


def run(args: argparse.Namespace) -> int:
    from dip.report.aggregate import read_metrics, read_traces

    summary = read_metrics(args.metrics)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(args.out, index=False)
    print(f"{len(summary)} runs -> {args.out}")
    if args.traces_out is not None:
        traces = read_traces(summary)
        args.traces_out.parent.mkdir(parents=True, exist_ok=True)
        traces.to_csv(args.traces_out, index=False)
        print(f"{len(traces)} trace rows -> {args.traces_out}")
    return 0
