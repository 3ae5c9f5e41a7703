"""The paper's figures beside ours: a table of each reference figure the summary can be compared with."""

from __future__ import annotations

import io
from importlib import resources

import pandas as pd

from dip.report.ordering import natural_key
from dip.report.table_model import Table

LR_NAMES = {"lanczos": "PIL Lanczos", "bicubic": "MATLAB bicubic"}
PSNR_COLUMN = {"y-matlab": "psnr_y_matlab"}
"""Where a protocol's PSNR lives in the summary when it is not the run's main protocol."""
HEADER = [
    "set",
    "level",
    "LR",
    "method",
    "image",
    "protocol",
    "ours",
    "paper",
    "Δ dB",
    "images",
    "iterations (ours)",
    "iterations (paper)",
    "paper source",
]


def reference_figures() -> pd.DataFrame:
    """The paper's reference PSNRs (and those recomputed from the authors' results): set, task, level, image ('mean'
    for a set mean), images (how many the figure averages), method, protocol, psnr, origin."""
    text = resources.files("dip").joinpath("data", "paper-figures.tsv").read_text(encoding="utf-8")
    return pd.read_csv(io.StringIO(text), sep="\t", dtype={"level": str})


def _runs_of_set(summary: pd.DataFrame, name: str) -> pd.Series:
    """Rows whose dataset name, or registry source, is the reference set's name."""
    matches = summary.dataset == name
    if "source" in summary:
        matches |= summary.source.fillna("") == name
    return matches


def _ours(runs: pd.DataFrame, protocol: str) -> pd.Series | None:
    """Per-image PSNR under `protocol` (mean over seeds), or None when the runs were not scored under it."""
    column = "psnr" if (runs.protocol == protocol).all() else PSNR_COLUMN.get(protocol)
    if column is None or column not in runs or runs[column].isna().any():
        return None
    return runs.groupby("image")[column].mean()


def _iterations(runs: pd.DataFrame) -> str:
    """The iteration counts of the runs behind a figure ('–' for baselines, which have none)."""
    counts = sorted({int(n) for n in runs.iterations.dropna() if n > 0}) if "iterations" in runs else []
    return "/".join(str(n) for n in counts) or "–"


def paper_comparison(summary: pd.DataFrame, task: str) -> Table | None:
    """Each reference figure of `task` that `summary` has runs for: ours, the paper's, the difference (None: none).

    A set mean is compared (Δ) only when every image of the set ran; otherwise ours is the mean of those that ran and
    the images column says how many (e.g. 2/5). The LR column says how the low-resolution input of super-resolution
    rows was made.
    """
    references = reference_figures()
    references = references[references.task == task]
    rows = []
    for ref in references.itertuples(index=False):
        runs = summary[
            _runs_of_set(summary, ref.set)
            & (summary.task == task)
            & (summary.level == ref.level)
            & (summary.method == ref.method)
        ]
        if ref.image != "mean":
            runs = runs[runs.image == ref.image]
        if runs.empty:
            continue
        per_image = _ours(runs, ref.protocol)
        if per_image is None:
            continue
        ours = float(per_image.mean())
        complete = len(per_image) == ref.images
        lr = runs["lr_convention"].dropna().unique() if "lr_convention" in runs else []
        rows.append(
            [
                ref.set,
                ref.level,
                ", ".join(LR_NAMES.get(str(value), str(value)) for value in lr) or "–",
                ref.method,
                ref.image,
                ref.protocol,
                f"{ours:.2f}",
                f"{ref.psnr:.2f}",
                f"{round(ours - ref.psnr, 2) + 0.0:+.2f}" if complete else "–",  # + 0.0: no "-0.00"
                f"{len(per_image)}/{ref.images}",
                _iterations(runs),
                "–" if pd.isna(ref.iterations) else f"{int(ref.iterations)}",
                ref.origin,
            ]
        )
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=HEADER)
    frame = frame.assign(is_mean=frame.image == "mean").sort_values(
        ["set", "level", "method", "protocol", "is_mean", "image"], key=natural_key, kind="stable"
    )
    frame = frame.drop(columns="is_mean")
    cells = frame.to_numpy().tolist()
    return Table(f"{task}: PSNR (dB) against the paper", HEADER, cells, [[False] * len(HEADER) for _ in cells])
