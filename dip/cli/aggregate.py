"""Gather the metrics.json of many runs into one tidy CSV (and their DIP traces into another).

One row of summary.csv per run: the metrics record plus `label`, the method's display name (`dip-<variant>` for DIP).
traces.csv holds every trace.csv row found next to a metrics.json, with the run's identifying columns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dip.errors import OutputRefused
from dip.outputs import SUMMARY, TRACES, claim


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("metrics", nargs="+", type=Path, help="metrics.json files (written by `dip evaluate`)")
    parser.add_argument("--out", required=True, help="summary CSV to write")
    parser.add_argument("--traces-out", help="CSV of the DIP traces to write")


def run(args: argparse.Namespace) -> int:
    from dip.report.aggregate import read_metrics, read_traces

    out = claim(args.out, SUMMARY, inputs=args.metrics)
    traces_out = None
    if args.traces_out is not None:
        traces_out = claim(args.traces_out, TRACES, option="--traces-out", inputs=[*args.metrics, out])
        if traces_out.resolve() == out.resolve():
            raise OutputRefused(f"--traces-out {traces_out}: the path of --out too; name another")
    summary = read_metrics(args.metrics)
    traces = None if traces_out is None else read_traces(summary)  # read before any write: a bad trace spoils none
    out.parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out, index=False)
    print(f"{len(summary)} runs -> {out}")
    if traces_out is not None:
        traces_out.parent.mkdir(parents=True, exist_ok=True)
        traces.to_csv(traces_out, index=False)
        print(f"{len(traces)} trace rows -> {traces_out}")
    return 0
