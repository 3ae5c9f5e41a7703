"""Deep Image Prior restoration, degradations, baselines and metrics (dip-bench)."""

__version__ = "0.1.0"
