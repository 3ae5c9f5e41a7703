"""Early stopping without ground truth against the oracle: a table from runs of `dip restore --stopping es-wmv
--es-continue`, which fit every iteration and record where ES-WMV would have stopped and what it picked.

    python benchmarks/early_stopping.py RUN_DIR [RUN_DIR ...]
    python benchmarks/early_stopping.py RUN_DIR --patience 100 200 500   # also replay other patiences

Per run: the iterations of the full fit, where ES-WMV stops (and the share of the iterations it saves), the iteration
it picks and that output's PSNR, the oracle (the best PSNR along the trace, of the averaged output where the fit
averages) and the gap between them, and the PSNR at the last traced iteration. Every PSNR here is the trace's: RGB,
whole image (for super-resolution, not the Y-channel protocol of the tables).

With `--patience`, each run's traced windowed variance (`es_variance`) is replayed with other patiences
(`dip.stopping.replay_patience`): rows marked "replayed" pick among the traced iterations (every `--trace-every`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from dip.stopping import replay_patience

HEADER = ["run", "iterations", "ES stops at", "saved", "ES picks", "ES PSNR", "oracle PSNR (at)", "gap", "full fit"]


def table_row(label: str, iterations: int, stop: int | None, pick: int, pick_psnr: float, psnr: pd.Series) -> list[str]:
    """One row: the rule's stop and pick against the oracle of the traced PSNR series (indexed by iteration)."""
    return [
        label,
        str(iterations),
        "never" if stop is None else str(stop),
        "0 %" if stop is None else f"{100 * (1 - stop / iterations):.0f} %",
        str(pick),
        f"{pick_psnr:.2f}",
        f"{psnr.max():.2f} ({int(psnr.idxmax())})",
        f"{pick_psnr - psnr.max():+.2f}",
        f"{psnr.iloc[-1]:.2f}",
    ]


def run_rows(run_dir: Path, patiences: list[int]) -> list[list[str]]:
    """The recorded ES-WMV row of a run directory (record.json, trace.csv), then one replayed row per patience."""
    record = json.loads((run_dir / "record.json").read_text())
    early = record.get("early_stop")
    if not early:
        raise SystemExit(f"{run_dir}: no early_stop in record.json (run it with --stopping es-wmv --es-continue)")
    trace = pd.read_csv(run_dir / "trace.csv")
    column = "psnr_gt_avg" if trace["psnr_gt_avg"].notna().any() else "psnr_gt"
    psnr = trace.set_index("iteration")[column]
    iterations = record["iterations"]
    rows = [
        table_row(
            str(run_dir), iterations, early["stop_iteration"], early["selected_iteration"], early["psnr_gt"], psnr
        )
    ]
    if patiences and ("es_variance" not in trace or trace["es_variance"].isna().all()):
        raise SystemExit(f"{run_dir}: trace.csv has no es_variance (written by an older dip; rerun to replay)")
    for patience in patiences:
        stop, pick = replay_patience(trace["iteration"].tolist(), trace["es_variance"].tolist(), patience)
        rows.append(table_row(f"{run_dir}, patience {patience} (replayed)", iterations, stop, pick, psnr[pick], psnr))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of `dip restore --es-continue`")
    parser.add_argument("--patience", nargs="+", type=int, default=[], help="patiences to replay from the trace")
    args = parser.parse_args()
    rows = [row for run in args.runs for row in run_rows(run, args.patience)]
    print(pd.DataFrame(rows, columns=HEADER).to_markdown(index=False, disable_numparse=True))


if __name__ == "__main__":
    main()
