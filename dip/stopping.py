"""Stopping rules for a DIP fit: a fixed iteration count, or early stopping without ground truth (ES-WMV)."""

from __future__ import annotations

from typing import Any, Protocol

import torch

from dip.errors import ConfigError

STOPPING_RULES = ("fixed", "es-wmv")


class StoppingRule(Protocol):
    """Watches the outputs of a fit; `update` returns True when the fit should stop."""

    best_iteration: int | None

    def update(self, iteration: int, output: torch.Tensor) -> tuple[bool, bool]:
        """Feed the output of `iteration`; returns (is_new_best, should_stop)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class FixedIterations:
    """Run the configured number of iterations; the output is the last (or averaged) one."""

    best_iteration: int | None = None

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
        self.best_variance = float("inf")
        self.best_iteration: int | None = None

    def variance(self) -> float:
        """The windowed variance of the buffered outputs (mean over pixels of the per-pixel variance)."""
        stacked = torch.stack(self.buffer)
        return float(stacked.var(dim=0, unbiased=False).mean())

    def update(self, iteration: int, output: torch.Tensor) -> tuple[bool, bool]:
        self.buffer.append(output.detach().float().clone())
        if len(self.buffer) > self.window:
            self.buffer.pop(0)
        if len(self.buffer) < self.window:
            return False, False
        current = self.variance()
        if current < self.best_variance:
            self.best_variance = current
            self.best_iteration = iteration
            return True, False
        assert self.best_iteration is not None
        return False, iteration - self.best_iteration >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {
            "buffer": list(self.buffer),
            "best_variance": self.best_variance,
            "best_iteration": self.best_iteration,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer = list(state["buffer"])
        self.best_variance = state["best_variance"]
        self.best_iteration = state["best_iteration"]


def make_stopping_rule(name: str, *, window: int = 100, patience: int = 1000) -> StoppingRule:
    """Build a stopping rule by name (`fixed` or `es-wmv`)."""
    if name == "fixed":
        return FixedIterations()
    if name == "es-wmv":
        return WindowedMovingVariance(window=window, patience=patience)
    raise ConfigError(f"stopping rule {name!r} is not one of {', '.join(STOPPING_RULES)}")
