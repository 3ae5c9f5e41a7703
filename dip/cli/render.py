"""Render the comparison tables and figures of a summary.csv (from `dip aggregate`).

For each task T (or only `--task T`): TABLES/T.md, T.tex, T.html (PSNR and SSIM, methods × levels, mean ± std, best
in bold; with --traces, ES-WMV's pick against the oracle where runs recorded one; quality and cost per level) and
FIGURES/T-psnr.png (PSNR per method and level), T-cost.png (PSNR against wall seconds), T-images.png (clean,
observed and restored images with a zoomed crop; needs the observation label `observation_dir`) and, with --traces,
T-curves.png (PSNR against iteration of the DIP variants) and T-rules.png (one fit's PSNR curve with every watching
stopping rule's stop and pick).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dip.errors import ConfigError, DipError
from dip.outputs import REPORT, claim


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("summary", type=Path, help="summary CSV written by `dip aggregate`")
    parser.add_argument("--tables", required=True, help="directory for the tables")
    parser.add_argument("--figures", required=True, help="directory for the figures")
    parser.add_argument("--traces", type=Path, help="traces CSV written by `dip aggregate --traces-out`")
    parser.add_argument("--task", help="render only this task (default: every task of the summary)")


def run(args: argparse.Namespace) -> int:
    from dip.io import write_all
    from dip.report.aggregate import read_table
    from dip.report.figures import missing_folders, render_figures
    from dip.report.task_tables import render_tables

    inputs = [args.summary, args.traces]
    tables = claim(args.tables, REPORT, option="--tables", inputs=inputs)
    figures = claim(args.figures, REPORT, option="--figures", inputs=inputs)
    summary = read_table(args.summary)
    traces = read_table(args.traces) if args.traces else None
    tasks = sorted(task for task in summary.task.unique() if task)
    if not tasks:
        raise DipError(f"{args.summary}: holds no runs; nothing to render")
    if args.task is not None and args.task not in tasks:
        raise ConfigError(f"--task {args.task!r}: the summary has runs of {', '.join(tasks)} only")
    chosen = [args.task] if args.task else tasks
    missing = [folder for task in chosen for folder in missing_folders(summary, task)]
    if missing:
        raise DipError(
            f"{args.summary}: {len(missing)} of its runs' folders are not here (e.g. {missing[0]}): run `dip render` "
            "in the folder that the workflow ran in"
        )
    files: dict[Path, bytes] = {}
    for task in chosen:  # every task rendered before any file is written: a bad image spoils no file
        files |= {tables / name: data for name, data in render_tables(summary, task, traces).items()}
        files |= {figures / name: data for name, data in render_figures(summary, traces, task).items()}
    for path in write_all(files):  # all or none: a full disk leaves every earlier file as it was
        print(path)
    return 0
