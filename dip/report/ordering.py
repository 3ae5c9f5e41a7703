"""How the report orders and labels what it shows: levels in natural order, baselines before DIP variants, each
level by its task object's label. The tables, the figures, the viewer and the paper's figures all ask here."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from dip.tasks import make_operator


def natural_key(values: pd.Series) -> pd.Series:
    """A sort key ordering numeric strings by value ("2" < "10") and before other strings."""
    numbers = pd.to_numeric(values, errors="coerce")
    return pd.Series(list(zip(numbers.isna(), numbers.fillna(0), values.astype(str), strict=True)), index=values.index)


def level_label(task: str, level: str) -> str:
    """How a level is shown in tables and figures: its task object's label (σ=25, ×4 Lanczos LR, random 50 %)."""
    return make_operator(task, level).label


def level_order(levels: Iterable[str]) -> list[str]:
    """Distinct levels in natural order."""
    unique = pd.Series(sorted(set(levels)), dtype=str)
    return unique.sort_values(key=natural_key).tolist()


def method_order(runs: pd.DataFrame) -> list[str]:
    """Distinct methods of `runs`: the baselines, then the DIP variants, each alphabetically."""
    dip = set(runs.method[runs.variant != ""])
    return sorted(runs.method.unique(), key=lambda method: (method in dip, method))
