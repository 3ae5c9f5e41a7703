"""Comparison tables of one task: methods × (dataset, level), mean ± std over images and seeds, best in bold."""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

from dip.errors import DipError
from dip.outputs import RENDERED
from dip.report.aggregate import ID_COLUMNS
from dip.report.cost import cost_tables
from dip.report.notes import finished, run_notes, without_truth
from dip.report.ordering import level_label, level_order, method_order
from dip.report.paper import paper_comparison
from dip.report.rules import rules_table
from dip.report.table_model import Table

METRICS = {
    "psnr": ("PSNR (dB)", 2),
    "ssim": ("SSIM", 3),
    "psnr_y_matlab": ("PSNR (dB), y-matlab protocol (Y, shave = factor)", 2),
    "ssim_y_matlab": ("SSIM, y-matlab protocol", 3),
}
"""Table metrics; the y-matlab pair exists for super-resolution, scored under both protocols side by side."""
LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\^{}"}
LATEX_SYMBOLS = {"±": r"$\pm$", "σ": r"$\sigma$", "×": r"$\times$", "–": "--"}


def task_runs(summary: pd.DataFrame, task: str) -> pd.DataFrame:
    """The finished runs of one task; a DipError when there are none."""
    runs = finished(summary)
    runs = runs[runs.task == task]
    if runs.empty:
        raise DipError(f"no finished runs of task {task!r} in the summary")
    return runs


def scored_runs(summary: pd.DataFrame, task: str) -> pd.DataFrame:
    """The finished runs of one task that have scores (their observation has a ground truth); may be empty."""
    runs = task_runs(summary, task)
    return runs[~without_truth(runs)]


def comparison(summary: pd.DataFrame, task: str, metric: str) -> Table:
    """`metric` per method and (dataset, level): the mean over images of each image's mean over seeds, ± the spread
    over seeds (their std, averaged over images) where a method ran several, and n = images × seeds; the best mean of
    each column flagged; for PSNR, the observed input as a row of its own."""
    name, decimals = METRICS[metric]
    runs = scored_runs(summary, task)
    if metric in ("psnr", "ssim") and "protocol" in runs and runs.protocol.nunique() == 1:
        name = f"{name}, {runs.protocol.iloc[0]} protocol"
    per_image = runs.groupby(["dataset", "level", "method", "image"])[metric].agg(["mean", "std", "count"])
    stats = per_image.groupby(level=["dataset", "level", "method"]).agg(
        mean=("mean", "mean"), spread=("std", "mean"), images=("mean", "size"), seeds=("count", "max")
    )
    top = stats["mean"].groupby(level=["dataset", "level"]).max()
    datasets = sorted(runs.dataset.unique())
    columns = [(d, lv) for d in datasets for lv in level_order(runs.level[runs.dataset == d])]
    rows, best = [], []
    for method in method_order(runs):
        cells, flags = [method], [False]
        for dataset, level in columns:
            if (dataset, level, method) not in stats.index:
                cells.append("–")
                flags.append(False)
                continue
            cell = stats.loc[(dataset, level, method)]
            text = f"{cell['mean']:.{decimals}f}"
            if cell.seeds > 1:
                text += f" ± {cell.spread:.{decimals}f} (n={cell.images:.0f}×{cell.seeds:.0f})"
            else:
                text += f" (n={cell.images:.0f})"
            cells.append(text)
            flags.append(round(cell["mean"], decimals) == round(top[(dataset, level)], decimals))
        rows.append(cells)
        best.append(flags)
    observed = _observed_row(runs, columns, decimals) if metric == "psnr" else None
    if observed is not None:
        rows.append(observed)
        best.append([False] * len(observed))
    title = f"{task}: {name}; mean over images, ± the spread over seeds, n = images × seeds{arithmetic_note(runs)}"
    return Table(title, _header(task, columns), rows, best)


def arithmetic_note(runs: pd.DataFrame) -> str:
    """Where and in what arithmetic the DIP fits of `runs` ran ('; DIP fits: fp32 on cpu'), per method where they
    differ; '' where no run recorded its precision."""
    if "precision" not in runs:
        return ""
    fits = runs[runs.precision.fillna("").astype(str) != ""]
    if fits.empty:
        return ""
    devices = fits.get("device", pd.Series("", index=fits.index)).fillna("").astype(str).str.split(":").str[0]
    ran = (fits.precision.astype(str) + " on " + devices).groupby(fits.method).agg(lambda v: "/".join(sorted(set(v))))
    if ran.nunique() == 1:
        return f"; DIP fits: {ran.iloc[0]}"
    return "; DIP fits: " + ", ".join(f"{method} {what}" for method, what in ran.items())


def _header(task: str, columns: list[tuple[str, str]]) -> list[str]:
    """`method`, then each (dataset, level) column's label (the level's alone with one dataset)."""
    one = len({dataset for dataset, _ in columns}) == 1
    return ["method"] + [level_label(task, lv) if one else f"{d} {level_label(task, lv)}" for d, lv in columns]


def unscored(summary: pd.DataFrame, task: str) -> Table | None:
    """The runs without ground truth, which have no scores: images × seeds per method and (dataset, level); None if
    there are none."""
    runs = task_runs(summary, task)
    runs = runs[without_truth(runs)]
    if runs.empty:
        return None
    counts = runs.groupby(["dataset", "level", "method"]).agg(images=("image", "nunique"), seeds=("seed", "nunique"))
    columns = [(d, lv) for d in sorted(runs.dataset.unique()) for lv in level_order(runs.level[runs.dataset == d])]
    rows = []
    for method in method_order(runs):
        cells = [method]
        for column in columns:
            key = (*column, method)
            cells.append(f"n={counts.loc[key, 'images']}×{counts.loc[key, 'seeds']}" if key in counts.index else "–")
        rows.append(cells)
    title = f"{task}: runs without ground truth (no PSNR or SSIM: see the figures and the viewer), n = images × seeds"
    return Table(title, _header(task, columns), rows, [[False] * (len(columns) + 1) for _ in rows])


def _observed_row(runs: pd.DataFrame, columns: list[tuple[str, str]], decimals: int) -> list[str] | None:
    """The PSNR of the observed input itself per column (where it has the clean image's size), or None."""
    if "psnr_observed" not in runs or runs.psnr_observed.isna().all():
        return None
    per_image = runs.groupby(["dataset", "level", "image"]).psnr_observed.first()
    means = per_image.groupby(level=["dataset", "level"]).agg(["mean", "size"])
    cells = ["observed input"]
    for column in columns:
        if column not in means.index or pd.isna(means.loc[column, "mean"]):
            cells.append("–")
        else:
            cells.append(f"{means.loc[column, 'mean']:.{decimals}f} (n={means.loc[column, 'size']:.0f})")
    return cells


ORACLE_COLUMNS = {
    "es_iteration": 0,
    "es_psnr": 2,
    "last_psnr": 2,
    "oracle_iteration": 0,
    "oracle_psnr": 2,
    "gap": 2,
}
"""The columns of the early-stopping table and their decimals."""


def early_stopping(summary: pd.DataFrame, traces: pd.DataFrame | None, task: str) -> Table | None:
    """ES-WMV's pick against the oracle, as the ES-WMV paper's table: per dataset, level and method, the iteration the
    rule picked and that output's PSNR (`es_selected_iteration`, `es_psnr_gt`), the last traced output's PSNR, the
    iteration of the best PSNR along the run's trace of the same output (`psnr_gt_avg` for an averaging fit, else
    `psnr_gt`) and that PSNR, and the gap oracle − pick in dB; means over images and seeds. None where no run of
    `task` recorded a pick or a trace."""
    per_run = _picks_and_oracles(summary, traces, task)
    if per_run.empty:
        return None
    groups = per_run.groupby(["dataset", "level", "method"], sort=False)
    stats = groups[list(ORACLE_COLUMNS)].mean().join(groups.size().rename("n"))
    rows = []
    for (dataset, level, method), cell in stats.iterrows():
        numbers = [f"{cell[column]:.{decimals}f}" for column, decimals in ORACLE_COLUMNS.items()]
        rows.append([method, f"{dataset} {level_label(task, level)}", f"{cell['n']:.0f}", *numbers])
    header = ["method", "dataset, level", "n", "ES-WMV iteration", "ES-WMV PSNR (dB)", "last output PSNR (dB)"]
    header += ["oracle iteration"]
    header += ["oracle PSNR (dB)", "gap (dB)"]
    title = (
        f"{task}: ES-WMV's pick against the oracle (the best RGB PSNR of the same output along the trace, one row "
        "every trace_every iterations); mean over n = images × seeds"
    )
    return Table(title, header, rows, [[False] * len(header) for _ in rows])


def _picks_and_oracles(summary: pd.DataFrame, traces: pd.DataFrame | None, task: str) -> pd.DataFrame:
    """One row per finished run of `task` with an ES-WMV pick and a trace: its pick, its oracle and their gap."""
    columns = ["dataset", "level", "method", *ORACLE_COLUMNS]
    runs = finished(summary)
    if traces is None or traces.empty or "es_selected_iteration" not in runs:
        return pd.DataFrame(columns=columns)
    runs = runs[(runs.task == task) & runs.es_selected_iteration.notna()]
    by_run = dict(list(traces[traces.task == task].groupby(list(ID_COLUMNS), sort=False)))
    found = []
    for run in runs.to_dict("records"):
        trace = by_run.get(tuple(run[column] for column in ID_COLUMNS))
        if trace is None:
            continue
        column = "psnr_gt_avg" if trace.psnr_gt_avg.notna().any() else "psnr_gt"
        if trace[column].isna().all():
            continue  # a fit without ground truth has no oracle
        best = trace.loc[trace[column].idxmax()]
        pick = int(run["es_selected_iteration"])
        pick_psnr = run.get("es_psnr_gt", float("nan"))
        if pd.isna(pick_psnr):  # a metrics record from before es_psnr_gt: the traced row of the pick, if any
            picked = trace[trace.iteration == pick][column]
            pick_psnr = picked.iloc[0] if len(picked) else float("nan")
        oracle = {"oracle_iteration": int(best.iteration), "oracle_psnr": float(best[column])}
        last = float(trace[column].iloc[-1])
        picked = {"es_iteration": pick, "es_psnr": pick_psnr, "last_psnr": last}
        found.append({**{c: run[c] for c in columns[:3]}, **picked, **oracle})
    frame = pd.DataFrame(found, columns=[c for c in columns if c != "gap"])
    return frame.assign(gap=frame.oracle_psnr - frame.es_psnr)[columns]


def to_markdown(tables: list[Table], notes: Sequence[str] = ()) -> str:
    """Markdown: the notes (smoke run, missing runs) as a list, then a heading and a pipe table per table, best cells
    in bold."""
    parts = ["\n".join(f"- **{note}**" for note in notes) + "\n"] if notes else []
    for table in tables:
        cells = [
            [f"**{c}**" if b else c for c, b in zip(row, flags, strict=True)]
            for row, flags in zip(table.rows, table.best, strict=True)
        ]
        align = ["left"] + ["right"] * (len(table.header) - 1)
        text = pd.DataFrame(cells, columns=table.header).to_markdown(index=False, colalign=align, disable_numparse=True)
        parts.append(f"## {table.title}\n\n{text}\n")
    return "\n".join(parts)


def latex_escape(text: str) -> str:
    """`text` with LaTeX's special characters escaped and ±, σ, × as math symbols."""
    escaped = "".join(LATEX_SPECIAL.get(c, c) for c in text)
    return "".join(LATEX_SYMBOLS.get(c, c) for c in escaped)


def to_latex(tables: list[Table], notes: Sequence[str] = ()) -> str:
    """LaTeX (booktabs) tabulars, best cells in \\textbf, after the notes as comments."""
    parts = ["".join(f"% NOTE: {latex_escape(note)}\n" for note in notes)] if notes else []
    for table in tables:
        lines = [
            f"% {latex_escape(table.title)}",
            r"\begin{tabular}{l" + "r" * (len(table.header) - 1) + "}",
            r"\toprule",
            " & ".join(latex_escape(h) for h in table.header) + r" \\",
            r"\midrule",
        ]
        for row, flags in zip(table.rows, table.best, strict=True):
            cells = [
                rf"\textbf{{{latex_escape(c)}}}" if b else latex_escape(c) for c, b in zip(row, flags, strict=True)
            ]
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", ""]
        parts.append("\n".join(lines))
    return "\n".join(parts)


def to_html(tables: list[Table], title: str, notes: Sequence[str] = ()) -> str:
    """A standalone HTML page (also well-formed XML): the notes, then one captioned table per table, best cells in
    bold."""
    body = [f'<p class="note">{html.escape(note)}</p>' for note in notes]
    for table in tables:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
        rows = []
        for row, flags in zip(table.rows, table.best, strict=True):
            cells = [f"<th>{html.escape(row[0])}</th>"]
            cells += [
                f"<td><strong>{html.escape(c)}</strong></td>" if b else f"<td>{html.escape(c)}</td>"
                for c, b in zip(row[1:], flags[1:], strict=True)
            ]
            rows.append(f"<tr>{''.join(cells)}</tr>")
        body.append(
            f"<table>\n<caption>{html.escape(table.title)}</caption>\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"
        )
    style = (
        "body{font-family:sans-serif}table{border-collapse:collapse;margin:1em 0}caption{font-weight:bold;"
        "text-align:left}th,td{padding:.25em .75em;border-bottom:1px solid #ccc}td{text-align:right}"
        ".note{color:#a00;font-weight:bold}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
        f'<meta name="generator" content="{RENDERED}"/>\n<title>{html.escape(title)}</title>\n'
        f"<style>{style}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def render_tables(summary: pd.DataFrame, task: str, traces: pd.DataFrame | None = None) -> dict[str, bytes]:
    """TASK.md, TASK.tex and TASK.html, by file name (PSNR and SSIM tables, the paper's figures beside ours where the
    summary has runs they apply to, with `traces` ES-WMV's pick against the oracle where runs recorded one and
    every watching rule's, `dip.report.rules`, and quality beside cost per level, `dip.report.cost`)."""
    notes = run_notes(summary, task)
    tables = []
    if not finished(summary)[lambda f: f.task == task].empty:
        runs = scored_runs(summary, task)
        metrics = [m for m in METRICS if not runs.empty and m in runs and runs[m].notna().all()]
        tables = [comparison(summary, task, metric) for metric in metrics]
        against_paper = paper_comparison(finished(summary), task)
        if against_paper is not None:
            tables.append(against_paper)
        without = unscored(summary, task)
        if without is not None:
            tables.append(without)
        against_oracle = early_stopping(summary, traces, task)
        if against_oracle is not None:
            tables.append(against_oracle)
        rules = rules_table(summary, traces, task)
        if rules is not None:
            tables.append(rules)
        if not runs.empty:
            tables.extend(cost_tables(runs, task))
    else:
        notes.append(f"no run of {task} finished.")
    texts = {
        "md": f"<!-- {RENDERED} -->\n" + to_markdown(tables, notes),
        "tex": f"% {RENDERED}\n" + to_latex(tables, notes),
        "html": to_html(tables, task, notes),
    }
    return {f"{task}.{suffix}": text.encode("utf-8") for suffix, text in texts.items()}
