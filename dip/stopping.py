"""Stopping rules for a DIP fit: a fixed iteration count, or early stopping without ground truth: ES-WMV and ES-EMV
(Wang et al.), and the zero crossing of the data term at a known Gaussian noise level (after Jo, Chun, Choi)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import torch

from dip.errors import ConfigError

STOPPING_RULES = ("fixed", "es-wmv", "es-emv", "noise-level")
EARLY_STOPPING_RULES = STOPPING_RULES[1:]
"""The rules that can stop a fit early, and watch one (`FitSettings.watch`)."""


class RuleStep(NamedTuple):
    """What one update decided, as 0-dim bool tensors on the output's device (reading them would sync with it)."""

    is_best: torch.Tensor
    """This output is the rule's new pick."""
    fires: torch.Tensor
    """The rule fires, for the first time, at this iteration: its pick is final."""


class StoppingRule(Protocol):
    """Watches the outputs of a fit without ground truth; its decisions stay on the device until `fired` reads them."""

    def update(self, iteration: int, output: torch.Tensor, loss: torch.Tensor | None = None) -> RuleStep | None:
        """Feed the output of `iteration` and its data term (no host sync); None while the rule has no statistic."""

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

    def update(self, iteration: int, output: torch.Tensor, loss: torch.Tensor | None = None) -> RuleStep | None:
        return None

    def fired(self) -> tuple[int, int] | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class _PatientMinimum:
    """The least value of a rule's statistic, its iteration, and where the rule fired: after `patience` iterations
    without a new minimum. All device tensors, so that an update never waits for a GPU."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_value: torch.Tensor | None = None
        self.best_iteration: torch.Tensor | None = None
        self.fired_at: torch.Tensor | None = None
        """The iteration the rule fired at; -1 until it does."""
        self.fired_pick: torch.Tensor | None = None

    def update(self, iteration: int, value: torch.Tensor) -> RuleStep:
        if self.best_value is None or self.best_iteration is None:
            self.best_value, self.best_iteration = value, torch.tensor(iteration, device=value.device)
            self.fired_at = torch.tensor(-1, device=value.device)
            self.fired_pick = torch.tensor(-1, device=value.device)
            is_best = torch.ones((), dtype=torch.bool, device=value.device)
        else:
            is_best = value < self.best_value
            self.best_value = torch.where(is_best, value, self.best_value)
            self.best_iteration = torch.where(is_best, iteration, self.best_iteration)
        assert self.fired_at is not None and self.fired_pick is not None
        fires = (self.fired_at < 0) & (iteration - self.best_iteration >= self.patience)
        self.fired_at = torch.where(fires, iteration, self.fired_at)
        self.fired_pick = torch.where(fires, self.best_iteration, self.fired_pick)
        return RuleStep(is_best, fires)

    def fired(self) -> tuple[int, int] | None:
        if self.fired_at is None or self.fired_pick is None:
            return None
        fired_at, pick = self.fired_at.tolist(), self.fired_pick.tolist()
        return None if fired_at < 0 else (fired_at, pick)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_value": self.best_value,
            "best_iteration": self.best_iteration,
            "fired_at": self.fired_at,
            "fired_pick": self.fired_pick,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value, self.best_iteration = state["best_value"], state["best_iteration"]
        self.fired_at, self.fired_pick = state["fired_at"], state["fired_pick"]


class _MinimumRule:
    """What ES-WMV and ES-EMV share: the pick is the least value of the rule's statistic, and the rule fires
    `patience` iterations after it (`_PatientMinimum`)."""

    minimum: _PatientMinimum

    def fired(self) -> tuple[int, int] | None:
        return self.minimum.fired()

    @property
    def best_iteration(self) -> int | None:
        return None if self.minimum.best_iteration is None else int(self.minimum.best_iteration)


class WindowedMovingVariance(_MinimumRule):
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
        self.buffer: list[torch.Tensor] = []
        self.total: torch.Tensor | None = None
        self.total_squares: torch.Tensor | None = None
        self.updates = 0
        self.minimum = _PatientMinimum(patience)
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

    def update(self, iteration: int, output: torch.Tensor, loss: torch.Tensor | None = None) -> RuleStep | None:
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
        self._last_variance = self._variance()
        return self.minimum.update(iteration, self._last_variance)

    @property
    def last_variance(self) -> float:
        return math.nan if self._last_variance is None else float(self._last_variance)

    def state_dict(self) -> dict[str, Any]:
        minimum = self.minimum.state_dict()
        return {
            "buffer": list(self.buffer),
            "total": self.total,
            "total_squares": self.total_squares,
            "updates": self.updates,
            "best_variance": minimum.pop("best_value"),  # the key ES-WMV's checkpoints have always had
            **minimum,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer = list(state["buffer"])
        self.total, self.total_squares = state["total"], state["total_squares"]
        self.updates = state["updates"]
        best_variance, best_iteration = state["best_variance"], state["best_iteration"]
        if best_iteration is None:
            self.minimum.load_state_dict(dict.fromkeys(("best_value", "best_iteration", "fired_at", "fired_pick")))
            return
        device = self.buffer[-1].device
        # checkpoints written before the rule kept its state on the device hold plain numbers and no firing
        self.minimum.load_state_dict(
            {
                "best_value": torch.as_tensor(best_variance, dtype=torch.float32, device=device),
                "best_iteration": torch.as_tensor(best_iteration, device=device),
                "fired_at": torch.as_tensor(state.get("fired_at", -1), device=device),
                "fired_pick": torch.as_tensor(state.get("fired_pick", -1), device=device),
            }
        )


class ExponentialMovingVariance(_MinimumRule):
    """ES-EMV (Wang et al., "Early Stopping for Deep Image Prior", TMLR 2023, arXiv 2112.06074; the authors'
    `ES_EMV.ipynb`: α = 0.1, patience 1000).

    The constant-memory variant of ES-WMV: an exponential moving average of the outputs and their exponential moving
    variance, updated from the difference δ = x_t − EMA_{t−1}: EMA_t = clip(EMA_{t−1} + α·δ, 0, 1) and
    EMV_t = (1 − α)·(EMV_{t−1} + α·‖δ‖²), ‖δ‖² here the mean over pixels (the notebook's sum, divided by the pixel
    count: the same minima). The first output only initialises EMA (its EMV, 0, is no statistic); the pick is the
    output at the least EMV, and the rule fires after `patience` iterations without a new minimum. No ground truth.
    """

    def __init__(self, alpha: float = 0.1, patience: int = 1000) -> None:
        if not 0 < alpha < 1:
            raise ConfigError(f"es_alpha must be in (0, 1), got {alpha}")
        if patience < 1:
            raise ConfigError(f"es_patience must be ≥ 1, got {patience}")
        self.alpha = alpha
        self.average: torch.Tensor | None = None
        self.variance: torch.Tensor | None = None
        self.minimum = _PatientMinimum(patience)

    def update(self, iteration: int, output: torch.Tensor, loss: torch.Tensor | None = None) -> RuleStep | None:
        current = output.detach().float()
        if self.average is None or self.variance is None:
            self.average = current.clone()
            self.variance = torch.zeros((), device=current.device)
            return None
        delta = current - self.average
        self.average = (self.average + self.alpha * delta).clamp_(0, 1)
        self.variance = (1 - self.alpha) * (self.variance + self.alpha * (delta * delta).mean())
        return self.minimum.update(iteration, self.variance)

    @property
    def last_variance(self) -> float:
        return math.nan if self.minimum.best_value is None or self.variance is None else float(self.variance)

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average, "variance": self.variance, **self.minimum.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average, self.variance = state["average"], state["variance"]
        self.minimum.load_state_dict(state)


class NoiseLevelCrossing:
    """Stop where the data term falls to the known noise level: Gaussian denoising with σ known (`noise_sigma`).

    After Jo, Chun, Choi, "Rethinking Deep Image Prior for Denoising" (ICCV 2021), whose zero-crossing stopping
    criterion (ZCSC; their code, gistvision/DIP-denosing `main.py`) stops at the first iteration whose loss, the SURE
    estimate of the MSE to the clean image, mean(‖y − h‖² + 2σ²·div h − σ²), is below 0: an estimate of a
    non-negative number that turns negative says the net has begun fitting the noise. They train on that loss, with the
    noisy image y as the net's input and a one-probe Monte-Carlo divergence w.r.t. it. A rule that only watches a
    plain DIP fit (input z, MSE loss) has no divergence w.r.t. y, so this rule watches the SURE estimate without it,
    S_t = mean((A·f(z) − y)²) − σ², and fires at the first iteration with S_t < 0, picking that iteration's output: the
    discrepancy principle. Since the divergence term (2σ²·DF/N, DF ≥ 0 while the net fits) is left out, S_t is the
    lower of the two, and the rule fires no later than the ZCSC would on the same outputs. No ground truth is used.
    """

    def __init__(self, sigma: float | None) -> None:
        if sigma is None or not (math.isfinite(sigma) and sigma > 0):
            raise ConfigError(
                "the noise-level rule needs the known noise σ (noise_sigma, 0–255 scale): Gaussian denoising only"
            )
        self.variance = (sigma / 255.0) ** 2
        self._fired_at: torch.Tensor | None = None
        self._last: torch.Tensor | None = None

    def update(self, iteration: int, output: torch.Tensor, loss: torch.Tensor | None = None) -> RuleStep | None:
        if loss is None:
            raise ValueError("the noise-level rule watches the data term: pass the loss")
        self._last = loss.detach().float() - self.variance
        if self._fired_at is None:
            self._fired_at = torch.tensor(-1, device=self._last.device)
        crossing = (self._fired_at < 0) & (self._last < 0)
        self._fired_at = torch.where(crossing, iteration, self._fired_at)
        return RuleStep(crossing, crossing)

    def fired(self) -> tuple[int, int] | None:
        if self._fired_at is None:
            return None
        fired_at = int(self._fired_at)
        return None if fired_at < 0 else (fired_at, fired_at)

    @property
    def best_iteration(self) -> int | None:
        fired = self.fired()
        return None if fired is None else fired[1]

    @property
    def last_variance(self) -> float:
        return math.nan if self._last is None else float(self._last)

    def state_dict(self) -> dict[str, Any]:
        return {"fired_at": self._fired_at, "last": self._last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._fired_at, self._last = state["fired_at"], state["last"]


def make_stopping_rule(
    name: str, *, window: int, patience: int, alpha: float, noise_sigma: float | None
) -> StoppingRule:
    """Build a stopping rule by name (`STOPPING_RULES`); `FitSettings` holds the defaults of its parameters
    (`FitSettings.rule_settings`)."""
    if name == "fixed":
        return FixedIterations()
    if name == "es-wmv":
        return WindowedMovingVariance(window=window, patience=patience)
    if name == "es-emv":
        return ExponentialMovingVariance(alpha=alpha, patience=patience)
    if name == "noise-level":
        return NoiseLevelCrossing(noise_sigma)
    raise ConfigError(f"stopping rule {name!r} is not one of {', '.join(STOPPING_RULES)}")


def applicable_rules(noise_sigma: float | None) -> tuple[str, ...]:
    """The early-stopping rules that can watch a fit: all, but the noise-level rule only where σ is known."""
    return tuple(rule for rule in EARLY_STOPPING_RULES if rule != "noise-level" or noise_sigma is not None)


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
