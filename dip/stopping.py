"""Stopping rules for a DIP fit: a fixed iteration count, or early stopping without ground truth (ES-WMV)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from dip.errors import ConfigError

STOPPING_RULES = ("fixed", "es-wmv")


class StoppingRule(Protocol):
    """Watches the outputs of a fit; `update` returns True when the fit should stop."""

    best_iteration: int | None
    last_variance: float
    """The rule's statistic at the last update (NaN where it has none), for the trace."""

    def update(self, iteration: int, output: torch.Tensor) -> tuple[bool, bool]:
        """Feed the output of `iteration`; returns (is_new_best, should_stop)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class FixedIterations:
    """Run the configured number of iterations; the output is the last (or averaged) one."""

    best_iteration: int | None = None
    last_variance: float = math.nan

    def update(self, iteration: int, output: torch.Tensor) -> tuple[bool, bool]:
        return False, False

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class WindowedMovingVariance:
    """ES-WMV (Wang et al., "Early Stopping for Deep Image Prior", TMLR 2023).

    The variance of the last `window` outputs, VAR_t = 1/W Σ_w ‖x_{t-w} − mean‖², falls while the net fits the image and
    rises once it starts fitting the noise. The chosen output is the one at the iteration of least variance; the fit
    stops after `patience` iterations without a new minimum. No ground truth is used.
    """

    def __init__(self, window: int = 100, patience: int = 1000) -> None:
        if window < 2:
            raise ConfigError(f"es_window must be ≥ 2, got {window}")
        if patience < 1:
            raise ConfigError(f"es_patience must be ≥ 1, got {patience}")
        self.window = window
        self.patience = patience
        self.buffer: list[torch.Tensor] = []
        self.total: torch.Tensor | None = None
        self.total_squares: torch.Tensor | None = None
        self.updates = 0
        self.best_variance = float("inf")
        self.best_iteration: int | None = None
        self.last_variance = math.nan

    def _recompute_sums(self) -> None:
        stacked = torch.stack(self.buffer)
        self.total, self.total_squares = stacked.sum(dim=0), (stacked * stacked).sum(dim=0)

    def variance(self) -> float:
        """The windowed variance of the buffered outputs (mean over pixels of the per-pixel variance).

        Running sums make it O(pixels) per iteration instead of O(window × pixels); they are recomputed from the buffer
        every `window` updates so that rounding does not accumulate.
        """
        assert self.total is not None and self.total_squares is not None
        count = len(self.buffer)
        mean = self.total / count
        return float((self.total_squares / count - mean * mean).clamp_min(0).mean())

    def update(self, iteration: int, output: torch.Tensor) -> tuple[bool, bool]:
        current = output.detach().float().clone()
        self.buffer.append(current)
        self.updates += 1
        if self.total is None or self.updates % self.window == 0:
            del self.buffer[: -self.window]
            self._recompute_sums()
        else:
            self.total += current
            self.total_squares += current * current
            if len(self.buffer) > self.window:
                dropped = self.buffer.pop(0)
                self.total -= dropped
                self.total_squares -= dropped * dropped
        if len(self.buffer) < self.window:
            return False, False
        variance = self.last_variance = self.variance()
        if variance < self.best_variance:
            self.best_variance = variance
            self.best_iteration = iteration
            return True, False
        assert self.best_iteration is not None
        return False, iteration - self.best_iteration >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {
            "buffer": list(self.buffer),
            "total": self.total,
            "total_squares": self.total_squares,
            "updates": self.updates,
            "best_variance": self.best_variance,
            "best_iteration": self.best_iteration,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer = list(state["buffer"])
        self.total, self.total_squares = state["total"], state["total_squares"]
        self.updates = state["updates"]
        self.best_variance = state["best_variance"]
        self.best_iteration = state["best_iteration"]


def make_stopping_rule(name: str, *, window: int = 100, patience: int = 1000) -> StoppingRule:
    """Build a stopping rule by name (`fixed` or `es-wmv`)."""
    if name == "fixed":
        return FixedIterations()
    if name == "es-wmv":
        return WindowedMovingVariance(window=window, patience=patience)
    raise ConfigError(f"stopping rule {name!r} is not one of {', '.join(STOPPING_RULES)}")


def replay_patience(iterations: Sequence[int], variances: Sequence[float], patience: int) -> tuple[int | None, int]:
    """Where ES-WMV with `patience` would have stopped, and the iteration it would have picked, from a recorded
    variance series (e.g. the `es_variance` column of a trace; NaN entries, before the window fills, are skipped).

    Returns (iterations run when it stops, or None if it never does; the picked iteration), counted as a fit with
    that rule counts them (`FitResult.iterations`, `early_stop["stop_iteration"]`). Replaying a trace written every
    k iterations sees only those iterations, so the pick is the least-variance traced iteration.
    """
    best_variance, best_iteration = math.inf, None
    for iteration, variance in zip(iterations, variances, strict=True):
        if math.isnan(variance):
            continue
        if variance < best_variance:
            best_variance, best_iteration = variance, iteration
        elif iteration - best_iteration >= patience:
            return iteration + 1, best_iteration
    if best_iteration is None:
        raise ValueError("the variance series is empty: was the fit run with an early-stopping rule?")
    return None, best_iteration
