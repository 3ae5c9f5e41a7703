"""What every table and figure of a task says about how complete and how real its numbers are: a smoke-run marker,
the observations without ground truth (no scores), and each run that failed (which one, the step that failed, why,
and where its log is)."""

from __future__ import annotations

import pandas as pd

from dip.failures import FAILED


def finished(summary: pd.DataFrame) -> pd.DataFrame:
    """The runs of `summary` that produced a result."""
    if "status" not in summary:
        return summary
    return summary[summary.status != FAILED]


def failed(summary: pd.DataFrame, task: str) -> pd.DataFrame:
    """The failed runs of `task`, and failures that never learnt their task (e.g. an image that did not export)."""
    if "status" not in summary:
        return summary.iloc[0:0]
    rows = summary[summary.status == FAILED]
    return rows[(rows.task == task) | (rows.task == "")]


NO_TRUTH = "NO GROUND TRUTH"
"""How the note on runs without ground truth starts."""


def without_truth(runs: pd.DataFrame) -> pd.Series:
    """Which finished runs have no ground truth (an already-degraded photo, a flash/no-flash pair): no scores."""
    if "ground_truth" not in runs:
        return pd.Series(False, index=runs.index)
    return runs.ground_truth.astype(str).str.lower().eq("false")


def truth_note(summary: pd.DataFrame, task: str) -> str | None:
    """A note naming the datasets whose `task` runs have no ground truth, or None."""
    runs = finished(summary)
    runs = runs[runs.task == task]
    datasets = sorted(set(runs.dataset[without_truth(runs)]))
    if not datasets:
        return None
    return (
        f"{NO_TRUTH}: the {task} runs of {', '.join(datasets)} have no clean image (an already-degraded photo or "
        "a flash/no-flash pair), so no PSNR or SSIM; the figures and the viewer show their images."
    )


def smoke_iterations(summary: pd.DataFrame, task: str) -> int | None:
    """The iteration count of a smoke run among `task`'s runs, or None when none of them is one."""
    if "smoke_iterations" not in summary:
        return None
    values = summary.smoke_iterations[(summary.task == task)].dropna()
    return int(values.max()) if not values.empty else None


def run_notes(summary: pd.DataFrame, task: str) -> list[str]:
    """One line per note: the smoke-run marker first, then one per failed run."""
    notes = []
    smoke = smoke_iterations(summary, task)
    if smoke is not None:
        notes.append(f"SMOKE RUN: every DIP fit stopped after {smoke} iterations; these are not results.")
    truth = truth_note(summary, task)
    if truth is not None:
        notes.append(truth)
    for row in failed(summary, task).itertuples(index=False):
        where = "/".join(str(v) for v in (row.dataset, row.task, row.level, row.image, row.method) if v != "")
        seed = f" seed {row.seed}" if row.variant else ""
        notes.append(f"missing {where}{seed}: {row.stage} failed: {row.error} (log: {row.log})")
    return notes
