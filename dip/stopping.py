"""Stopping rules for a DIP fit: a fixed iteration count, or early stopping without ground truth (ES-WMV)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import torch

from dip.errors import ConfigError

STOPPING_RULES = ("fixed", "es-wmv")


class RuleStep(NamedTuple):
    """What one update decided, as 0-dim bool tensors on the output's device (reading them would sync with it)."""

    is_best: torch.Tensor
    """This output is the rule's new pick."""
    fires: torch.Tensor
    """The rule fires, for the first time, at this iteration: its pick is final."""


class StoppingRule(Protocol):
    """Watches the outputs of a fit without ground truth; its decisions stay on the device until `fired` reads them."""

    def update(self, iteration: int, output: torch.Tensor) -> RuleStep | None:
        """Feed the output of `iteration` (no host sync); None while the rule has no statistic yet."""

    def fired(self) -> tuple[int, int] | None:
        """(the iteration it fired at, the iteration it picked then), or None if it has not fired; syncs."""

    @property
    def best_iteration(self) -> int | None:
        """The iteration of the current pick (None: none yet); syncs."""

    @property
    def last_variance(self) -> float:
        """The rule's statistic at the last update (NaN where it has none), for the trace; syncs."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class FixedIterations:
    """Run the configured number of iterations; the output is the last (or averaged) one."""

    best_iteration: int | None = None
    last_variance: float = math.nan

    def update(self, iteration: int, output: torch.Tensor) -> RuleStep | None:
        return None

    def fired(self) -> tuple[int, int] | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class WindowedMovingVariance:
    """ES-WMV (Wang et al., "Early Stopping for Deep Image Prior", TMLR 2023).

    The variance of the last `window` outputs, VAR_t = 1/W Σ_w ‖x_{t-w} − mean‖², falls while the net fits the image and
    rises once it starts fitting the noise. The chosen output is the one at the iteration of least variance; the rule
    fires after `patience` iterations without a new minimum. No ground truth is used.

    The running minimum, its iteration and the firing are kept as device tensors, so `update` never waits for a GPU;
    the fit reads `fired()` only where it syncs anyway, and gets the same stop and pick as a check at every iteration.
    """

    def __init__(self, window: int, patience: int) -> None:
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
        self.best_variance: torch.Tensor | None = None
        self._best_iteration: torch.Tensor | None = None
        self._fired_at: torch.Tensor | None = None
        """The iteration the rule fired at; -1 until it does."""
        self._fired_pick: torch.Tensor | None = None
        self._last_variance: torch.Tensor | None = None

    def _recompute_sums(self) -> None:
        stacked = torch.stack(self.buffer)
        self.total, self.total_squares = stacked.sum(dim=0), (stacked * stacked).sum(dim=0)

    def _variance(self) -> torch.Tensor:
        assert self.total is not None and self.total_squares is not None
        count = len(self.buffer)
        mean = self.total / count
        return (self.total_squares / count - mean * mean).clamp_min(0).mean()

    def variance(self) -> float:
        """The windowed variance of the buffered outputs (mean over pixels of the per-pixel variance).

        Running sums make it O(pixels) per iteration instead of O(window × pixels); they are recomputed from the buffer
        every `window` updates so that rounding does not accumulate.
        """
        return float(self._variance())

    def update(self, iteration: int, output: torch.Tensor) -> RuleStep | None:
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
            return None
        variance = self._last_variance = self._variance()
        if self.best_variance is None or self._best_iteration is None:
            self.best_variance = variance
            self._best_iteration = torch.tensor(iteration, device=variance.device)
            self._fired_at = torch.tensor(-1, device=variance.device)
            self._fired_pick = torch.tensor(-1, device=variance.device)
            is_best = torch.ones((), dtype=torch.bool, device=variance.device)
        else:
            is_best = variance < self.best_variance
            self.best_variance = torch.where(is_best, variance, self.best_variance)
            self._best_iteration = torch.where(is_best, iteration, self._best_iteration)
        assert self._fired_at is not None and self._fired_pick is not None
        fires = (self._fired_at < 0) & (iteration - self._best_iteration >= self.patience)
        self._fired_at = torch.where(fires, iteration, self._fired_at)
        self._fired_pick = torch.where(fires, self._best_iteration, self._fired_pick)
        return RuleStep(is_best, fires)

    def fired(self) -> tuple[int, int] | None:
        if self._fired_at is None or self._fired_pick is None:
            return None
        fired_at, pick = self._fired_at.tolist(), self._fired_pick.tolist()
        return None if fired_at < 0 else (fired_at, pick)

    @property
    def best_iteration(self) -> int | None:
        return None if self._best_iteration is None else int(self._best_iteration)

    @property
    def last_variance(self) -> float:
        return math.nan if self._last_variance is None else float(self._last_variance)

    def state_dict(self) -> dict[str, Any]:
        return {
            "buffer": list(self.buffer),
            "total": self.total,
            "total_squares": self.total_squares,
            "updates": self.updates,
            "best_variance": self.best_variance,
            "best_iteration": self._best_iteration,
            "fired_at": self._fired_at,
            "fired_pick": self._fired_pick,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer = list(state["buffer"])
        self.total, self.total_squares = state["total"], state["total_squares"]
        self.updates = state["updates"]
        best_variance, best_iteration = state["best_variance"], state["best_iteration"]
        if best_iteration is None:
            self.best_variance = self._best_iteration = self._fired_at = self._fired_pick = None
            return
        device = self.buffer[-1].device
        # checkpoints written before the rule kept its state on the device hold plain numbers and no firing
        self.best_variance = torch.as_tensor(best_variance, dtype=torch.float32, device=device)
        self._best_iteration = torch.as_tensor(best_iteration, device=device)
        self._fired_at = torch.as_tensor(state.get("fired_at", -1), device=device)
        self._fired_pick = torch.as_tensor(state.get("fired_pick", -1), device=device)


def make_stopping_rule(name: str, *, window: int, patience: int) -> StoppingRule:
    """Build a stopping rule by name (`fixed` or `es-wmv`); `FitSettings` holds the defaults of its parameters."""
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
