"""Run records: what `record.json` and `trace.csv` hold, the software versions, and a fit's fingerprint."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from dip import __version__
from dip.errors import ConfigError
from dip.io import write_atomically

TRACE_COLUMNS = ("iteration", "loss", "psnr_obs", "psnr_gt", "psnr_gt_avg", "seconds", "es_variance")
SEED_LIMIT = 2**63
"""Seeds are below this: torch takes a signed 64-bit seed, and the summary reads the recorded seeds as int64 (the
workflow's schema states the same maximum)."""


def check_seed(seed: object) -> None:
    """Refuse a seed that is not an integer in [0, SEED_LIMIT)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"seed must be an integer from 0 to 2**63 - 1, not {seed!r}")


def versions() -> dict[str, str]:
    """Versions of the software a result depends on, read from the installed distributions (nothing is imported, so
    a baseline job does not pay for importing torch)."""
    packages = {"torch": "torch", "numpy": "numpy", "scikit-image": "scikit-image", "pillow": "pillow"}
    return {
        "dip-bench": __version__,
        "python": platform.python_version(),
        **{name: metadata.version(distribution) for name, distribution in packages.items()},
    }


def fingerprint(*parts: Any) -> str:
    """A stable SHA-256 of JSON-serialisable parts (and numpy arrays, by their bytes)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(str(part.shape).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def write_json(path: Path, record: Mapping[str, Any]) -> None:
    """Write a record as indented JSON (NaN → null, ±inf → "inf"/"-inf", so the file is strict JSON), whole or not at
    all."""
    write_atomically(path, (json.dumps(_json_safe(record), indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> dict[str, Any]:
    """Read a record written by `write_json`."""
    return json.loads(Path(path).read_text())


def write_trace(path: Path, rows: Iterable[Mapping[str, float]]) -> None:
    """Write the per-iteration trace as CSV with the columns of TRACE_COLUMNS (NaN as an empty cell), whole or not at
    all."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=TRACE_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    write_atomically(path, text.getvalue().encode())
