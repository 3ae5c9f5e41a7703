"""Gather the records of many runs (metrics.json, trace.csv) into tidy data frames."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from dip.errors import ConfigError, DipError
from dip.failures import FAILED
from dip.layout import RECORD, TRACE
from dip.record import TRACE_COLUMNS, check_seed
from dip.report.ordering import natural_key

REQUIRED = ("task", "level", "method", "run_dir")
SCORES = ("psnr", "ssim")
"""What a metrics record holds besides REQUIRED, unless it has no ground truth (`ground_truth: false`)."""
ID_COLUMNS = ("dataset", "task", "level", "image", "method", "variant", "seed")
TEXT_COLUMNS = ("dataset", "task", "level", "image", "method", "variant")
DEFAULTS = {"dataset": "", "task": "", "level": "", "image": "", "method": "", "variant": "", "seed": 0, "status": "ok"}


def read_metrics(paths: Iterable[Path]) -> pd.DataFrame:
    """One row per metrics.json, identifying columns first, sorted; `level` is a string, `variant` '' for baselines.

    A failed run's record (`status: failed`, see `dip.failures`) is a row too, with its step, error and log and no
    scores; so is a run without ground truth (`ground_truth` false).
    """
    records, scored = [], {}
    for path in paths:
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:  # a binary file: UnicodeDecodeError, a ValueError
            raise DipError(f"{path}: cannot read the metrics record: {error}") from None
        if not isinstance(record, dict):
            raise DipError(f"{path}: not a metrics record (a JSON object written by `dip evaluate`)")
        wanted = REQUIRED if record.get("ground_truth") is False else (*REQUIRED, *SCORES)
        missing = [key for key in wanted if key not in record] if record.get("status") != FAILED else []
        if missing:
            raise DipError(f"{path}: metrics record lacks {', '.join(missing)}")
        if record.get("seed", 0) is None:  # a failure record of `dip restore` without --seed: the default seed's
            record = {**record, "seed": DEFAULTS["seed"]}
        try:
            check_seed(record.get("seed", 0))  # the summary reads seeds as int64: a larger one would wrap around
        except ConfigError as error:
            raise DipError(f"{path}: {error}") from None
        check_scored_run(path, record)
        key = (str(Path(record["run_dir"]).resolve()), record.get("protocol")) if record.get("run_dir") else path
        if key in scored:  # a run counted twice would weigh twice in every mean
            raise DipError(f"{path}: scores the same run as {scored[key]}; give each run's metrics record once")
        scored[key] = path
        records.append({**DEFAULTS, **record})
    if not records:
        raise DipError("no metrics records given")
    frame = pd.DataFrame.from_records(records).astype(dict.fromkeys(TEXT_COLUMNS, str) | {"seed": int})
    columns = [*ID_COLUMNS, *(c for c in frame.columns if c not in ID_COLUMNS)]
    frame = frame[columns].sort_values(list(ID_COLUMNS), key=natural_key).reset_index(drop=True)
    check_cell_settings(frame)
    return frame


FREE_SETTINGS = ("seed", "checkpoint_every", "frames", "frame_side", "precision")
"""Fit settings in which the runs of one table cell may differ: the seed, what changes no number of the fit
(checkpoints, frames), and the arithmetic, which the tables name beside each number."""


def fit_settings(run_dir: object) -> dict | None:
    """The net and fit settings a DIP run's record.json states, less FREE_SETTINGS (None for a run without them)."""
    path = Path(str(run_dir)) / RECORD
    if not isinstance(run_dir, str) or not run_dir or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("fit"), dict):
        return None
    fit = {key: value for key, value in record["fit"].items() if key not in FREE_SETTINGS}
    return {"model": record.get("model"), **fit}


def check_cell_settings(summary: pd.DataFrame) -> None:
    """Refuse DIP runs of one table cell (task, level, method) fitted with different settings, as their folders hold
    them now: a mean over them would mix settings, e.g. a fit left at its old iterations beside those run again."""
    first: dict[tuple[str, str, str], tuple[str, dict]] = {}
    for row in summary.itertuples(index=False):
        settings = fit_settings(getattr(row, "run_dir", None))
        if settings is None:
            continue
        cell = (row.task, row.level, row.method)
        other, expected = first.setdefault(cell, (row.run_dir, settings))
        differing = sorted(key for key in expected.keys() | settings.keys() if expected.get(key) != settings.get(key))
        if differing:
            key = differing[0]
            raise DipError(
                f"{row.run_dir} and {other}: {row.method} on {row.task} {row.level} with different settings "
                f"({key}: {settings.get(key)!r} and {expected.get(key)!r}); run them again at the same settings "
                "(the workflow: the same command again)"
            )


def check_scored_run(path: Path, record: dict) -> None:
    """Refuse a metrics record whose run, as its folder holds it now, restores another observation than the one it
    was scored against (a run fitted again since, or scored against the wrong observation by hand)."""
    scored = record.get("observation_digest")
    run = Path(str(record.get("run_dir") or "")) / RECORD
    if not scored or not record.get("run_dir") or not run.is_file():
        return
    try:
        fitted = json.loads(run.read_text(encoding="utf-8")).get("observation_digest")
    except (OSError, ValueError, AttributeError):
        return
    if fitted and fitted != scored:
        raise DipError(
            f"{path}: scores {record['run_dir']} against another observation than the one it restores; "
            "score it again with `dip evaluate`"
        )


def read_traces(summary: pd.DataFrame) -> pd.DataFrame:
    """The trace.csv rows of every run of `summary` that has one, each with the run's identifying columns."""
    frames = []
    for row in summary.itertuples(index=False):
        path = Path(row.run_dir) / TRACE
        if not path.exists():
            continue
        try:
            trace = pd.read_csv(path)
        except (OSError, ValueError) as error:  # pandas' ParserError and EmptyDataError, UnicodeDecodeError
            raise DipError(f"{path}: cannot read the trace: {error}") from None
        if "iteration" not in trace:  # the one column every trace has had (older ones lack some of TRACE_COLUMNS)
            raise DipError(f"{path}: not a trace written by `dip restore` (no column 'iteration')")
        if trace.empty:
            continue
        frames.append(trace.assign(**{column: getattr(row, column) for column in ID_COLUMNS}))
    if not frames:
        return pd.DataFrame(columns=[*ID_COLUMNS, *TRACE_COLUMNS])
    traces = pd.concat(frames, ignore_index=True)
    return traces[[*ID_COLUMNS, *(c for c in traces.columns if c not in ID_COLUMNS)]]


def read_table(path: Path) -> pd.DataFrame:
    """A summary or traces CSV written by `dip aggregate`, with its identifying columns read back as text."""
    try:
        frame = pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str))
    except (OSError, ValueError) as error:  # pandas' ParserError and EmptyDataError, UnicodeDecodeError
        raise DipError(f"{path}: cannot read the table: {error}") from None
    missing = [column for column in ID_COLUMNS if column not in frame]
    if missing:
        raise DipError(f"{path}: lacks the columns {', '.join(missing)}")
    return frame.fillna(dict.fromkeys(TEXT_COLUMNS, ""))
