"""Deep Image Prior restoration, degradations, baselines and metrics (dip-bench).

The Python API (`dip.degrade`, `dip.restore`, `dip.restore_batch`, `dip.baseline`, `dip.combine`, `dip.evaluate`;
see `dip.api`) is loaded on first use, so that `dip --help` and jobs that need none of it start fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["baseline", "combine", "degrade", "evaluate", "restore", "restore_batch"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dip import api

        return getattr(api, name)
    raise AttributeError(f"module 'dip' has no attribute {name!r}")
