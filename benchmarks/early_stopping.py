"""Early stopping without ground truth against the oracle: a table from runs of `dip restore --stopping es-wmv
--es-continue`, which fit every iteration and record where ES-WMV would have stopped and what it picked.

    python benchmarks/early_stopping.py RUN_DIR [RUN_DIR ...]

Per run: the iterations of the full fit, where ES-WMV stops (and the share of the iterations it saves), the iteration
it picks and that output's PSNR, the oracle (the best PSNR along the trace, of the averaged output where the fit
averages) and the gap between them, and the PSNR at the last traced iteration. Every PSNR here is the trace's: RGB,
whole image (for super-resolution, not the Y-channel protocol of the tables).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

HEADER = ["run", "iterations", "ES stops at", "saved", "ES picks", "ES PSNR", "oracle PSNR (at)", "gap", "full fit"]


def row(run_dir: Path) -> list[str]:
    """One table row for a run directory with record.json and trace.csv."""
    record = json.loads((run_dir / "record.json").read_text())
    early = record.get("early_stop")
    if not early:
        raise SystemExit(f"{run_dir}: no early_stop in record.json (run it with --stopping es-wmv --es-continue)")
    trace = pd.read_csv(run_dir / "trace.csv")
    column = "psnr_gt_avg" if trace["psnr_gt_avg"].notna().any() else "psnr_gt"
    best = trace.loc[trace[column].idxmax()]
    iterations = record["iterations"]
    stop = early["stop_iteration"]
    final = trace[column].iloc[-1]
    return [
        str(run_dir),
        str(iterations),
        "never" if stop is None else str(stop),
        "0 %" if stop is None else f"{100 * (1 - stop / iterations):.0f} %",
        str(early["selected_iteration"]),
        f"{early['psnr_gt']:.2f}",
        f"{best[column]:.2f} ({int(best.iteration)})",
        f"{early['psnr_gt'] - best[column]:+.2f}",
        f"{final:.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of `dip restore --es-continue`")
    args = parser.parse_args()
    table = pd.DataFrame([row(run) for run in args.runs], columns=HEADER)
    print(table.to_markdown(index=False, disable_numparse=True))


if __name__ == "__main__":
    main()
