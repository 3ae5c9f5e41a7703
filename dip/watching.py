"""Every stopping rule watching one fit: each rule's own stop and pick, recorded beside the fit (`FitSettings.watch`).

A rule only reads the outputs (and the data term); it changes nothing in the fit. Each watcher keeps its rule's
current pick on the device (one image per rule), chosen without a host sync, as the fit's own rule does.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from dip.stopping import StoppingRule, make_stopping_rule


class Watcher:
    """One rule watching a fit: the rule, its current pick, and the pick it held when it fired (frozen)."""

    def __init__(self, name: str, rule: StoppingRule) -> None:
        self.name, self.rule = name, rule
        self.pick: torch.Tensor | None = None
        self.fired_pick: torch.Tensor | None = None

    def observe(self, iteration: int, output: torch.Tensor, kept: torch.Tensor, loss: torch.Tensor) -> None:
        step = self.rule.update(iteration, output, loss)
        if step is None:
            return
        self.pick = torch.where(step.is_best, kept, self.pick) if self.pick is not None else kept.clone()
        frozen = self.pick if self.fired_pick is None else self.fired_pick
        self.fired_pick = torch.where(step.fires, self.pick, frozen)

    def record(self, clean: torch.Tensor | None) -> dict[str, Any]:
        """Where the rule fired (iterations run when a fit it stopped would stop; None: it never did within this
        fit), the iteration it picked (then, or at the end) and that output's PSNR to the ground truth (NaN without)."""
        fired = self.rule.fired()
        selected = fired[1] if fired else self.rule.best_iteration
        output = self.fired_pick if fired else self.pick
        psnr = math.nan
        if clean is not None and output is not None and selected is not None:
            mse = float(torch.mean((output.clamp(0, 1) - clean) ** 2))
            psnr = 10 * math.log10(1 / mse) if mse > 0 else math.inf
        return {
            "stop_iteration": None if fired is None else fired[0] + 1,
            "selected_iteration": selected,
            "psnr_gt": psnr,
        }


class Watchers:
    """The rules named in `FitSettings.watch`, each watching the fit."""

    def __init__(self, names: tuple[str, ...], **rule_settings: Any) -> None:
        self.watchers = [Watcher(name, make_stopping_rule(name, **rule_settings)) for name in names]

    def observe(self, iteration: int, output: torch.Tensor, kept: torch.Tensor, loss: torch.Tensor) -> None:
        """Feed every rule the output of `iteration` (`kept`: the output a pick keeps, the average where there is
        one) and the data term; no host sync."""
        for watcher in self.watchers:
            watcher.observe(iteration, output, kept, loss)

    def records(self, clean: torch.Tensor | None) -> dict[str, dict[str, Any]]:
        return {watcher.name: watcher.record(clean) for watcher in self.watchers}

    def state_dict(self) -> dict[str, Any]:
        return {
            watcher.name: {"rule": watcher.rule.state_dict(), "pick": watcher.pick, "fired_pick": watcher.fired_pick}
            for watcher in self.watchers
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for watcher in self.watchers:
            if watcher.name in state:
                watcher.rule.load_state_dict(state[watcher.name]["rule"])
                watcher.pick, watcher.fired_pick = state[watcher.name]["pick"], state[watcher.name]["fired_pick"]
