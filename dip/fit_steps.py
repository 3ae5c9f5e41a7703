"""The steps of one DIP fit, each owning its part of the fit's state and of its checkpoint: the nets' engine (`Nets`),
the backtracker (snapshot, NaN guard, restore) and the stopping watch (the rule, its pick and its firing).

`dip.fit` runs the loop over one or more `FitRun`s (one fit's state from one iteration to the next) that share an
engine: one net (`SingleNet`, here), or a stack of nets of one shape (`dip.stacked`).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Protocol

import torch

from dip.device import autocast
from dip.errors import DivergenceError, OutputError
from dip.fit_settings import FitSettings
from dip.stopping import make_stopping_rule

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1


def psnr_from_mse(mse: float) -> float:
    return 10 * math.log10(1.0 / mse) if mse > 0 else math.inf


def psnr_to(output: torch.Tensor, clean: torch.Tensor | None) -> float:
    """The PSNR of an output (clamped to [0, 1]) to the clean image, over all channels; NaN without one (syncs)."""
    if clean is None:
        return math.nan
    return psnr_from_mse(float(torch.mean((output.clamp(0, 1) - clean) ** 2)))


def clone_state(state: Any) -> Any:
    """A deep copy of a (nested) state dict, its tensors detached."""
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: clone_state(v) for k, v in state.items()}
    if isinstance(state, list):
        return [clone_state(v) for v in state]
    return state


class Nets(Protocol):
    """The nets of `size` fits and their optimisers: fit `index`'s part of them is saved, snapshotted and restored in
    the format of one `nn.Module` and one `torch.optim.Adam` (so a fit's checkpoint does not depend on its batch)."""

    size: int
    memory_format: torch.memory_format

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Clear the gradients and run each fit's net on its input: float32 (1, C, H, W) outputs."""

    def backward(self, losses: list[torch.Tensor]) -> None: ...

    def step(self, stepping: list[bool]) -> None:
        """An optimiser step for the fits marked True; the others keep their parameters and optimiser state."""

    def evaluate(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each net's output on its input, without gradients."""

    def conv_weights(self, index: int) -> list[torch.Tensor]:
        """Fit `index`'s convolution weights (its 4-dimensional parameters), in the net's order, to change in place."""

    def state_dict(self, index: int) -> dict[str, Any]:
        """`model`, `optimizer` (and `scaler`) of one fit."""

    def load_state_dict(self, index: int, state: dict[str, Any]) -> None: ...


class Snapshot:
    """The last good state of a fit (parameters, optimiser, output average) that backtracking restores."""

    def __init__(self, params: dict[str, Any], optimizer: dict[str, Any], ema: torch.Tensor | None) -> None:
        self.params, self.optimizer, self.ema = params, optimizer, ema

    @classmethod
    def take(cls, nets: Nets, index: int, ema: torch.Tensor | None) -> Snapshot:
        state = nets.state_dict(index)
        params = {k: v.detach().clone() for k, v in state["model"].items()}
        return cls(params, clone_state(state["optimizer"]), None if ema is None else ema.clone())

    def restore(self, nets: Nets, index: int) -> torch.Tensor | None:
        """Put the parameters and optimiser state back; returns (a copy of) the output average."""
        nets.load_state_dict(index, {"model": self.params, "optimizer": clone_state(self.optimizer)})
        return None if self.ema is None else self.ema.clone()

    def state_dict(self) -> dict[str, Any]:
        return {"params": self.params, "optimizer": self.optimizer, "ema": self.ema}


class Backtracker:
    """Saves the last good state every `backtrack_every` iterations and restores it when the loss is not finite
    (the NaN guard) or the data-term PSNR fell by more than `backtrack_db` since; gives up after `max_backtracks`."""

    def __init__(self, settings: FitSettings, nets: Nets, index: int) -> None:
        self.settings, self.nets, self.index = settings, nets, index
        self.snapshot = Snapshot.take(nets, index, None)
        self.snapshot_psnr = -math.inf
        self.backtracks = 0

    def due(self, iteration: int) -> bool:
        return iteration % self.settings.backtrack_every == 0

    def check(self, iteration: int, loss: float | None, ema: torch.Tensor | None) -> tuple[bool, torch.Tensor | None]:
        """(whether it restored the last good state, the output average to go on with); `loss` is None where the loop
        did not read it. Raises DivergenceError when the NaN guard would restore more than `max_backtracks` times."""
        if loss is not None and not math.isfinite(loss):
            self.backtracks += 1
            if self.backtracks > self.settings.max_backtracks:
                raise DivergenceError(
                    f"the fit diverged (loss {loss}) at iteration {iteration} and {self.settings.max_backtracks} "
                    "backtracks did not recover it; lower the learning rate"
                )
            log.warning("non-finite loss at iteration %d: restoring the last good parameters", iteration)
            return True, self.snapshot.restore(self.nets, self.index)
        if loss is None or not self.due(iteration):
            return False, ema
        psnr_obs = psnr_from_mse(loss)
        dropped = self.settings.backtrack_db > 0 and psnr_obs < self.snapshot_psnr - self.settings.backtrack_db
        if iteration > 0 and dropped:
            self.backtracks += 1
            log.info(
                "iteration %d: data-term PSNR fell from %.2f to %.2f dB; restoring the last good parameters",
                iteration,
                self.snapshot_psnr,
                psnr_obs,
            )
            return True, self.snapshot.restore(self.nets, self.index)
        # the parameters that produced this PSNR, before this step's update (as the authors' closure saves them)
        self.snapshot, self.snapshot_psnr = Snapshot.take(self.nets, self.index, ema), psnr_obs
        return False, ema

    def recover_last_step(self) -> None:
        """Restore the last good state after the fit's last step left parameters whose output is not finite (the NaN
        guard would have found them at the next iteration); the output average goes on as it is."""
        self.backtracks += 1
        log.warning("non-finite output after the last step: restoring the last good parameters")
        self.snapshot.restore(self.nets, self.index)

    def state_dict(self) -> dict[str, Any]:
        return {
            "backtracks": self.backtracks,
            "snapshot": self.snapshot.state_dict(),
            "snapshot_psnr": self.snapshot_psnr,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.backtracks, self.snapshot_psnr = state["backtracks"], state["snapshot_psnr"]
        self.snapshot = Snapshot(**state["snapshot"])
        steps_on_cpu(self.snapshot.optimizer)


class StopWatch:
    """A fit's stopping rule with what follows from it: its pick (the output it would return now, kept on the device
    so that watching needs no host sync), that pick frozen when the rule fired, where it fired, and, when the fit goes
    on anyway (`es_continue`), the record of where it would have stopped."""

    def __init__(self, settings: FitSettings) -> None:
        self.settings = settings
        self.rule = make_stopping_rule(settings.stopping, **settings.rule_settings())
        self.best_output: torch.Tensor | None = None
        self.fired_output: torch.Tensor | None = None
        """The pick when the rule fired, frozen: later minima must not change it before the fit reads `fired()`."""
        self.firing: tuple[int, int] | None = None
        self.early_stop: dict[str, Any] | None = None
        self.watching = False
        """Whether the rule decided something at the last update (it has a statistic)."""

    @property
    def decided(self) -> bool:
        return self.firing is not None or self.early_stop is not None

    def observe(self, iteration: int, output: torch.Tensor, ema: torch.Tensor | None, loss: torch.Tensor) -> None:
        """Feed the rule this iteration's output and data term; the pick is the output average where there is one
        (no host sync)."""
        step = self.rule.update(iteration, output, loss)
        self.watching = step is not None
        if step is None:
            return
        keep = ema if ema is not None else output
        self.best_output = (
            keep.clone() if self.best_output is None else torch.where(step.is_best, keep, self.best_output)
        )
        if not self.decided:
            frozen = self.best_output if self.fired_output is None else self.fired_output
            self.fired_output = torch.where(step.fires, self.best_output, frozen)

    def poll(self, clean: torch.Tensor | None) -> bool:
        """Read whether the rule fired (a host sync); True when the fit must stop now."""
        if not self.watching or self.decided:
            return False
        self.firing = self.rule.fired()
        if self.firing is None:
            return False
        if self.settings.es_continue:
            self.early_stop = early_stop_record(self.firing[0] + 1, self.firing[1], self.fired_output, clean)
            return False
        return True

    def stop_reason(self) -> str:
        assert self.firing is not None
        return f"{self.settings.stopping} (fired after {self.firing[0] + 1} iterations)"

    def finish(self, clean: torch.Tensor | None) -> None:
        """With `es_continue` and a rule that never fired: record its last pick."""
        if self.settings.es_continue and self.early_stop is None:
            self.early_stop = early_stop_record(None, self.rule.best_iteration, self.best_output, clean)

    def pick(self) -> tuple[torch.Tensor, int | None] | None:
        """The rule's chosen output and its iteration; None where the fit returns another (no rule, es_continue)."""
        if self.settings.es_continue:
            return None
        if self.firing is not None and self.fired_output is not None:
            return self.fired_output, self.firing[1]
        if self.best_output is not None:
            return self.best_output, self.rule.best_iteration
        return None

    def state_dict(self) -> dict[str, Any]:
        return {
            "stopping": self.rule.state_dict(),
            "best_output": self.best_output,
            "fired_output": self.fired_output,
            "early_stop": self.early_stop,
            "firing": self.firing,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a checkpoint's part; those written before the firing was kept have none."""
        self.rule.load_state_dict(state["stopping"])
        self.best_output = state["best_output"]
        self.fired_output, self.early_stop, self.firing = (
            state.get(key) for key in ("fired_output", "early_stop", "firing")
        )


def early_stop_record(
    stop_iteration: int | None,
    selected_iteration: int | None,
    selected_output: torch.Tensor | None,
    clean: torch.Tensor | None,
) -> dict[str, Any]:
    """Where an early-stopping rule fired (None: it never did), what it picked and, with ground truth, its PSNR."""
    psnr = math.nan if selected_output is None else psnr_to(selected_output, clean)
    return {"stop_iteration": stop_iteration, "selected_iteration": selected_iteration, "psnr_gt": psnr}


class SingleNet:
    """The engine of one fit: its net, its Adam optimiser and (for fp16) its loss scaler."""

    size = 1

    def __init__(self, net: torch.nn.Module, settings: FitSettings, device: torch.device) -> None:
        self.memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
        self.net = net.to(memory_format=self.memory_format)
        self.net.train()  # BatchNorm stays in training mode for the whole fit, as in the authors' code
        self.optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        # fp16 gradients of an MSE near 1e-3 underflow: scale the loss (a no-op for fp32 and bf16, which need none)
        self.scaler = torch.amp.GradScaler(device.type, enabled=settings.precision == "fp16")
        self.precision, self.device = settings.precision, device

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.precision, self.device):
            output = self.net(inputs[0])
        return [output.float()]

    def backward(self, losses: list[torch.Tensor]) -> None:
        self.scaler.scale(losses[0]).backward()

    def step(self, stepping: list[bool]) -> None:
        if stepping[0]:
            self.scaler.step(self.optimizer)  # skips the step when fp16 gradients overflowed
            self.scaler.update()

    def evaluate(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        with torch.no_grad(), autocast(self.precision, self.device):
            return [self.net(inputs[0]).float()]

    def conv_weights(self, index: int) -> list[torch.Tensor]:
        return [param for param in self.net.parameters() if param.dim() == 4]

    def state_dict(self, index: int) -> dict[str, Any]:
        return {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, index: int, state: dict[str, Any]) -> None:
        """Load a fit's part; checkpoints written before fp16 loss scaling have no scaler (and need none)."""
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(steps_on_cpu(state["optimizer"]))
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


def steps_on_cpu(optimizer_state: dict[str, Any]) -> dict[str, Any]:
    """Adam's step counts back on the CPU, where Adam keeps them (a checkpoint loaded onto a GPU put them there, and
    Adam would then read each one back to the host at every step)."""
    for param_state in optimizer_state["state"].values():
        if isinstance(param_state.get("step"), torch.Tensor):
            param_state["step"] = param_state["step"].cpu()
    return optimizer_state


def resume_generator(generator: torch.Generator, saved: torch.Tensor, reseed: int) -> None:
    """Continue the reg-noise stream of a checkpoint; one written on another kind of device (the CPU's and CUDA's
    generators differ) goes on with a stream seeded by `reseed` instead: the same distribution, other draws."""
    saved = saved.cpu()
    if saved.numel() == generator.get_state().numel():
        generator.set_state(saved)
        return
    log.warning("the checkpoint was written on another kind of device: the reg-noise stream is reseeded")
    generator.manual_seed(reseed)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a killed job never leaves a half-written checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as handle:  # an OSError, which torch.save(state, tmp) would turn into a RuntimeError
            torch.save(state, handle)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot save the checkpoint {path} ({error.strerror or error})") from None


def load_checkpoint(path: Path, device: torch.device, fingerprint: str) -> tuple[dict[str, Any] | None, Path | None]:
    """(the checkpoint's state, the checkpoint to keep using): no state if there is none or it is unreadable (a fresh
    start overwrites it); neither if it belongs to another fit (left as it is: the fit runs without one)."""
    if not path.exists():
        return None, path
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as error:  # a corrupt file must not stop a fresh start
        log.warning("ignoring unreadable checkpoint %s (%s); starting from iteration 0", path, error)
        return None, path
    same_fit = (
        isinstance(state, dict)
        and state.get("version") == CHECKPOINT_VERSION
        and state.get("fingerprint") == fingerprint
    )
    if not same_fit:
        log.warning("checkpoint %s belongs to another fit: leaving it as it is; this fit runs without one", path)
        return None, None
    return state, path
