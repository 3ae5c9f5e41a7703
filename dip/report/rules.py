"""Every stopping rule against the oracle: the table and the figure of which rule, on which task and level, picks how
close to the best output and saves how many iterations (from the rules that watched each fit, `dip.watching`)."""

from __future__ import annotations

import re

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from dip.report.aggregate import ID_COLUMNS
from dip.report.notes import finished
from dip.report.ordering import level_label, level_order
from dip.report.table_model import Table

WATCHED = re.compile(r"watch_(.+)_selected_iteration")
"""A metrics column that names a watching rule (`dip.api.watched_column`)."""
NEAR_ORACLE_DB = 0.5
"""A pick within this many dB of the oracle counts as near it."""
RULE_COLUMNS = {"pick_psnr": 2, "oracle_psnr": 2, "gap": 2, "saved": 0, "near": 0}


def watched_rules(runs: pd.DataFrame) -> list[str]:
    """The rules that watched some of `runs`, as their metrics columns spell them (`es_wmv`, …)."""
    return [match[1] for column in runs.columns if (match := WATCHED.fullmatch(column))]


def rule_name(key: str) -> str:
    return key.replace("_", "-")


def _oracle(trace: pd.DataFrame) -> tuple[str, pd.Series] | None:
    """The trace's PSNR column of the output a pick keeps (the average where the fit averages) and its best row; None
    without ground truth."""
    column = "psnr_gt_avg" if trace.psnr_gt_avg.notna().any() else "psnr_gt"
    if trace[column].isna().all():
        return None
    return column, trace.loc[trace[column].idxmax()]


def rule_picks(summary: pd.DataFrame, traces: pd.DataFrame | None, task: str) -> pd.DataFrame:
    """One row per finished, traced run of `task` with ground truth and per rule that watched it: the rule's stop and
    pick, the pick's PSNR, the oracle (the best traced PSNR of the same output) and its iteration."""
    columns = [*ID_COLUMNS, "rule", "iterations", "stop", "pick", "pick_psnr", "oracle_iteration", "oracle_psnr"]
    runs = finished(summary)
    rules = watched_rules(runs)
    if traces is None or traces.empty or not rules:
        return pd.DataFrame(columns=columns)
    runs = runs[runs.task == task]
    by_run = dict(list(traces[traces.task == task].groupby(list(ID_COLUMNS), sort=False)))
    found = []
    for run in runs.to_dict("records"):
        trace = by_run.get(tuple(run[column] for column in ID_COLUMNS))
        oracle = None if trace is None else _oracle(trace)
        if oracle is None:
            continue
        _, best = oracle
        for rule in rules:
            pick = run.get(f"watch_{rule}_selected_iteration")
            if pick is None or pd.isna(pick):
                continue
            found.append(
                {
                    **{column: run[column] for column in ID_COLUMNS},
                    "rule": rule_name(rule),
                    "iterations": run["iterations"],
                    "stop": run.get(f"watch_{rule}_stop_iteration"),
                    "pick": int(pick),
                    "pick_psnr": run.get(f"watch_{rule}_psnr_gt"),
                    "oracle_iteration": int(best.iteration),
                    "oracle_psnr": float(best[oracle[0]]),
                }
            )
    return pd.DataFrame(found, columns=columns)


def rules_table(summary: pd.DataFrame, traces: pd.DataFrame | None, task: str) -> Table | None:
    """Per dataset, level, method and rule: the pick's PSNR, the oracle's, the gap (oracle − pick), the iterations
    the rule's stop saves (a rule that never fired saves none) and the share of fits it picks within 0.5 dB of the
    oracle; means over images and seeds. None where no run of `task` was watched."""
    picks = rule_picks(summary, traces, task)
    if picks.empty:
        return None
    stops = pd.to_numeric(picks.stop, errors="coerce")
    picks = picks.assign(
        gap=picks.oracle_psnr - picks.pick_psnr,
        saved=100 * (1 - stops.fillna(picks.iterations) / picks.iterations),
    )
    picks = picks.assign(near=100 * (picks.gap <= NEAR_ORACLE_DB))
    order = {level: index for index, level in enumerate(level_order(picks.level))}
    picks = picks.sort_values(
        ["dataset", "level"], key=lambda c: c.map(order) if c.name == "level" else c, kind="stable"
    )
    groups = picks.groupby(["dataset", "level", "method", "rule"], sort=False)
    stats = groups[list(RULE_COLUMNS)].mean().join(groups.size().rename("n"))
    rows = []
    for (dataset, level, method, rule), cell in stats.iterrows():
        numbers = [f"{cell[column]:.{decimals}f}" for column, decimals in RULE_COLUMNS.items()]
        rows.append([f"{dataset} {level_label(task, level)}", method, rule, f"{cell['n']:.0f}", *numbers])
    header = ["dataset, level", "method", "rule", "n", "pick PSNR (dB)", "oracle PSNR (dB)", "gap (dB)"]
    header += ["iterations saved (%)", f"within {NEAR_ORACLE_DB} dB of the oracle (%)"]
    title = (
        f"{task}: every stopping rule against the oracle (the best RGB PSNR of the same output along the trace, one "
        "row every trace_every iterations); the rules watched the same fits; mean over n = images × seeds"
    )
    return Table(title, header, rows, [[False] * len(header) for _ in rows])


def rule_curves(summary: pd.DataFrame, traces: pd.DataFrame, task: str) -> Figure | None:
    """The PSNR curve of one fit per dataset and level (the first image, seed and DIP method watched) with every
    rule's pick (▼, at the pick's PSNR) and stop (a dashed line where it fired; none where it never did) marked, and
    the oracle (★). None where no run of `task` was watched."""
    picks = rule_picks(summary, traces, task)
    if picks.empty:
        return None
    first = picks.drop_duplicates(["dataset", "level"]).set_index(["dataset", "level"])
    panels = [(dataset, level) for dataset in sorted(first.index.unique(0)) for level in level_order(picks.level)]
    panels = [panel for panel in panels if panel in first.index]
    rules = list(dict.fromkeys(picks.rule))
    colours = dict(zip(rules, sns.color_palette("colorblind", len(rules)), strict=True))
    figure = Figure(figsize=(4.2 * min(3, len(panels)), 3.2 * -(-len(panels) // 3)), layout="constrained")
    axes = figure.subplots(-(-len(panels) // 3), min(3, len(panels)), squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    for ax, (dataset, level) in zip(axes, panels, strict=False):
        run = first.loc[(dataset, level)]
        same = {"dataset": dataset, "task": task, "level": level, **{c: run[c] for c in ID_COLUMNS[3:]}}
        trace = traces.loc[(traces[list(same)] == pd.Series(same)).all(axis=1)]
        column, best = _oracle(trace)
        ax.plot(trace.iteration, trace[column], color="0.3", linewidth=1, label="PSNR to ground truth")
        ax.plot(best.iteration, best[column], marker="*", color="black", markersize=10, linestyle="", label="oracle")
        mine = picks[(picks.dataset == dataset) & (picks.level == level) & (picks.image == run.image)]
        mine = mine[(mine.method == run.method) & (mine.seed == run.seed)]
        for row in mine.itertuples(index=False):
            colour = colours[row.rule]
            ax.plot(row.pick, row.pick_psnr, marker="v", color=colour, markersize=8, linestyle="", label=row.rule)
            if pd.notna(row.stop):
                ax.axvline(row.stop, color=colour, linestyle="--", linewidth=1)
        ax.set(
            title=f"{dataset} {level_label(task, level)}\n{run.image}, {run.method}, seed {run.seed}",
            xlabel="iteration",
            ylabel="PSNR (dB), rgb",
        )
        ax.title.set_fontsize(8)
    axes[0].legend(fontsize=7, title="▼ pick, -- stop", title_fontsize=7)
    return figure
