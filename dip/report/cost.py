"""Quality beside cost: per task and level, each method's PSNR and SSIM with its wall seconds and peak memory, as a
table and as a figure of PSNR against seconds; a DIP fit with a stopping rule appears twice, as it ran and as its
rule's pick, which costs only the iterations up to the rule's stop."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from dip.report.ordering import level_label, level_order, method_order
from dip.report.table_model import Table

SECONDS = FuncFormatter(lambda value, _: f"{value:g}" if f"{value:e}"[0] in "125" else "")
"""Seconds as plain numbers on the log axis, at 1, 2 and 5 of each decade (2, 5, 10, not 2×10⁰)."""
ES_SUFFIX = " (ES pick)"
"""The row and marker label of a DIP method's stopping-rule pick."""
COST_HEADER = ["method", "PSNR (dB)", "SSIM", "seconds", "peak memory (MiB)", "n", "device, arithmetic"]


def _seconds(runs: pd.DataFrame) -> pd.Series:
    """Each run's wall seconds (`wall_seconds`; a run recorded before it: the method's own `seconds`)."""
    wall = runs["wall_seconds"] if "wall_seconds" in runs else pd.Series(np.nan, index=runs.index)
    own = runs["seconds"] if "seconds" in runs else pd.Series(np.nan, index=runs.index)
    return wall.fillna(own).astype(float)


def _early_stop_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """DIP runs whose stopping rule recorded a pick, as rows of their own: the pick's PSNR (the trace's, RGB over the
    whole image), no SSIM, and the seconds up to the rule's stop (set-up and writing, plus the iterations until it
    stopped); a rule that never fired costs the whole fit."""
    needed = {"es_psnr_gt", "es_stop_iteration", "seconds_per_iteration", "seconds"}
    if not needed <= set(runs.columns):
        return runs.iloc[0:0]
    picked = runs[runs.es_psnr_gt.notna()].copy()
    if picked.empty:
        return picked
    seconds = _seconds(picked)
    iterations = picked.es_stop_iteration.fillna(picked.iterations - 1).astype(float) + 1
    overhead = (seconds - picked.seconds.astype(float)).clip(lower=0)
    picked["cost_seconds"] = overhead + picked.seconds_per_iteration.astype(float) * iterations
    picked["psnr"] = picked.es_psnr_gt.astype(float)
    picked["ssim"] = np.nan
    picked["method"] = picked.method + ES_SUFFIX
    return picked


def cost_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The scored runs with their cost (`cost_seconds`, `peak_memory_mb`), and the early-stopping picks as runs of
    methods of their own (`ES_SUFFIX`)."""
    runs = runs.copy()
    runs["cost_seconds"] = _seconds(runs)
    for column in ("ssim", "peak_memory_mb"):
        if column not in runs:
            runs[column] = np.nan
    return pd.concat([runs, _early_stop_runs(runs)], ignore_index=True)


def _arithmetic(runs: pd.DataFrame) -> str:
    """Where and in what arithmetic a method's runs ran: the device's kind (its description's first word) and the
    precision, each distinct value once."""
    devices = sorted({str(device).split(":")[0] for device in runs.get("device", pd.Series(dtype=str)).dropna()})
    precisions = sorted({str(p) for p in runs.get("precision", pd.Series(dtype=str)).dropna() if p})
    return ", ".join(filter(None, ["/".join(devices), "/".join(precisions)])) or "–"


def cost_tables(runs: pd.DataFrame, task: str) -> list[Table]:
    """One table per dataset and level: each method's mean PSNR, SSIM, wall seconds and peak memory over its runs
    (images × seeds), the fastest and the best PSNR in bold."""
    data = cost_runs(runs)
    tables = []
    for dataset in sorted(data.dataset.unique()):
        for level in level_order(data.level[data.dataset == dataset]):
            cell = data[(data.dataset == dataset) & (data.level == level)]
            methods = [m for m in method_order(cell) if m in set(cell.method)]
            means = cell.groupby("method")[["psnr", "ssim", "cost_seconds", "peak_memory_mb"]].mean()
            rows, best = [], []
            for method in methods:
                mean, of_method = means.loc[method], cell[cell.method == method]
                rows.append(
                    [
                        method,
                        _number(mean.psnr, 2),
                        _number(mean.ssim, 3),
                        _number(mean.cost_seconds, 1 if mean.cost_seconds < 100 else 0),
                        _number(mean.peak_memory_mb, 0),
                        str(len(of_method)),
                        _arithmetic(of_method),
                    ]
                )
                best.append(
                    [
                        False,
                        mean.psnr == means.psnr.max(),
                        False,
                        mean.cost_seconds == means.cost_seconds.min(),
                        False,
                        False,
                        False,
                    ]
                )
            title = (
                f"{task}, {dataset} {level_label(task, level)}: quality and cost, mean over runs (n); seconds are "
                f"wall seconds of each run, memory its peak ({_memory_measures(cell)}); '{ES_SUFFIX.strip()}' rows: "
                "a DIP fit's stopping-rule pick (RGB PSNR of the trace) and the seconds up to the rule's stop"
            )
            tables.append(Table(title, COST_HEADER, rows, best))
    return tables


def _memory_measures(runs: pd.DataFrame) -> str:
    measures = sorted(set(runs.get("memory_measure", pd.Series(dtype=str)).dropna()))
    return "; ".join(measures) or "not recorded"


def _number(value: float, decimals: int) -> str:
    return "–" if pd.isna(value) else f"{value:.{decimals}f}"


def quality_against_cost(runs: pd.DataFrame, task: str, palette: dict) -> Figure | None:
    """PSNR against wall seconds (a log axis), one panel per dataset and level, one marker per method at the mean of
    its runs (an ES pick: a hollow marker in its method's colour); None without a scored run that recorded its
    seconds."""
    if runs.empty or "psnr" not in runs:
        return None
    data = cost_runs(runs)
    data = data[data.cost_seconds.notna() & (data.cost_seconds > 0) & data.psnr.notna()]
    if data.empty:
        return None
    cells = [(d, lv) for d in sorted(data.dataset.unique()) for lv in level_order(data.level[data.dataset == d])]
    figure = Figure(figsize=(1.0 + 3.6 * min(len(cells), 3), 0.8 + 3.2 * -(-len(cells) // 3)), layout="constrained")
    axes = figure.subplots(-(-len(cells) // 3), min(len(cells), 3), squeeze=False).ravel()
    shown: dict[str, Line2D] = {}
    for ax, (dataset, level) in zip(axes, cells, strict=False):
        cell = data[(data.dataset == dataset) & (data.level == level)]
        means = cell.groupby("method")[["cost_seconds", "psnr"]].mean()
        for method in [m for m in method_order(cell) if m in means.index]:
            base = method.removesuffix(ES_SUFFIX)
            colour = palette.get(base, "grey")
            pick = method != base
            ax.plot(
                means.loc[method, "cost_seconds"],
                means.loc[method, "psnr"],
                marker="o" if pick else "D",
                markersize=8,
                markerfacecolor="none" if pick else colour,
                markeredgecolor=colour,
                linestyle="none",
            )
            shown.setdefault(
                method,
                Line2D(
                    [],
                    [],
                    marker="o" if pick else "D",
                    color=colour,
                    markerfacecolor="none" if pick else colour,
                    linestyle="none",
                    label=method,
                ),
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(SECONDS)
        ax.xaxis.set_minor_formatter(SECONDS)
        ax.set(title=f"{dataset} {level_label(task, level)}", xlabel="wall seconds per run (log)", ylabel="PSNR (dB)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[len(cells) :]:
        ax.set_axis_off()
    figure.legend(handles=list(shown.values()), loc="outside lower center", ncols=min(4, len(shown)), fontsize=8)
    figure.suptitle(f"{task}: quality against cost\n◆ as run, ○ its stopping rule's pick", fontsize=10)
    return figure
