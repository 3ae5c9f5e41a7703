"""The Deep Image Prior fit: min_θ ‖A·f_θ(z) − x0‖² with Adam, input-noise regularisation, output averaging,
backtracking, a NaN guard, early stopping, a per-iteration trace and checkpoint/resume (Ulyanov et al., CVPR 2018)."""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from dip.device import autocast
from dip.errors import ConfigError, DipError, DivergenceError, OutputError
from dip.fit_variants import LangevinDynamics, total_variation
from dip.frames import Frame, FrameRecorder, check_frames
from dip.record import check_seed
from dip.stopping import EARLY_STOPPING_RULES, applicable_rules, make_stopping_rule
from dip.watching import Watchers

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
LAST_OUTPUT = "last output"
"""`FitResult.output_kind` when the chosen output is the last one."""


@dataclass(frozen=True)
class FitSettings:
    """Hyper-parameters of one fit; the defaults are the paper's super-resolution ×4 settings."""

    iterations: int = 2000
    lr: float = 0.01
    reg_noise_std: float = 0.03
    ema: float = 0.0
    """Weight of the exponential moving average of outputs (0.99 in the paper's denoising); 0 = last output."""
    backtrack_db: float | None = 5.0
    """Restore the last good parameters when the data-term PSNR drops by more than this; None disables."""
    backtrack_every: int = 100
    """How often the last good state is saved (also the NaN guard's fallback) and the PSNR drop is checked."""
    max_backtracks: int = 20
    stopping: str = "fixed"
    es_window: int = 100
    es_patience: int = 1000
    es_alpha: float = 0.1
    """ES-EMV's weight of the newest output (Wang et al.: 0.1)."""
    noise_sigma: float | None = None
    """The known σ (0–255 scale) of Gaussian noise on the observation, for the noise-level rule; None: unknown."""
    watch: tuple[str, ...] | None = None
    """The early-stopping rules that watch the fit, each recording its stop and pick (`dip.watching`); None: every
    rule that applies (`dip.stopping.applicable_rules`), () none. Watching changes nothing in the fit."""
    es_continue: bool = False
    """Fit all `iterations` even after the stopping rule fires; its pick goes to FitResult.early_stop."""
    seed: int = 0
    trace_every: int = 10
    checkpoint_every: int = 200
    precision: str = "fp32"
    channels_last: bool = False
    tv_weight: float = 0.0
    """DIP-TV (`dip.fit_variants.total_variation`): the weight of the TV term added to the data term; 0 = off."""
    langevin_sigma: float = 0.0
    """Bayesian DIP by SGLD (`dip.fit_variants.LangevinDynamics`): the Langevin noise on the conv weights after each
    step has std langevin_sigma × lr (Cheng et al.: 2); 0 = off. The output is then the posterior mean."""
    langevin_burnin: int = 7000
    """SGLD: the iterations before the posterior mean starts collecting outputs (Cheng et al.: 7000)."""
    langevin_every: int = 50
    """SGLD: after burn-in, every this many iterations an output joins the posterior mean (Cheng et al.: 50)."""
    weight_decay: float = 0.0
    """Adam's weight decay (Cheng et al.'s SGLD: 5e-8); 0 = none, as the paper's DIP."""
    frames: int = 0
    """Snapshots of the net's output kept along the fit (`dip.frames`), at geometrically spaced iterations."""
    frame_side: int = 256
    """Frames larger than this are shrunk to at most this many pixels on their longer side."""

    def __post_init__(self) -> None:
        positive = {
            "iterations": self.iterations,
            "backtrack_every": self.backtrack_every,
            "trace_every": self.trace_every,
            "checkpoint_every": self.checkpoint_every,
        }
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{key} must be ≥ 1, got {value}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive finite number, not {self.lr}")
        if not (math.isfinite(self.reg_noise_std) and self.reg_noise_std >= 0):
            raise ConfigError(f"reg_noise_std must be a finite number ≥ 0, not {self.reg_noise_std}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")
        if self.backtrack_db is not None and not (math.isfinite(self.backtrack_db) and self.backtrack_db > 0):
            raise ConfigError(
                f"backtrack_db must be a positive finite number (or None to disable), not {self.backtrack_db}"
            )
        for key in ("tv_weight", "langevin_sigma", "weight_decay"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{key} must be a finite number ≥ 0, not {value}")
        if self.langevin_burnin < 0 or self.langevin_every < 1:
            raise ConfigError("langevin_burnin must be ≥ 0 and langevin_every ≥ 1")
        check_seed(self.seed)
        make_stopping_rule(self.stopping, **self.rule_settings())
        if self.watch is not None:
            object.__setattr__(self, "watch", tuple(self.watch))  # a list from a config or JSON
            for rule in self.watch:
                if rule not in EARLY_STOPPING_RULES:
                    raise ConfigError(f"watch: {rule!r} is not one of {', '.join(EARLY_STOPPING_RULES)}")
                make_stopping_rule(rule, **self.rule_settings())
        check_frames(self.frames, self.frame_side)
        if self.es_continue and self.stopping == "fixed":
            raise ConfigError("es_continue watches an early-stopping rule: set stopping (e.g. 'es-wmv') as well")

    def rule_settings(self) -> dict[str, Any]:
        """The stopping rules' settings, as `make_stopping_rule` takes them."""
        return {
            "window": self.es_window,
            "patience": self.es_patience,
            "alpha": self.es_alpha,
            "noise_sigma": self.noise_sigma,
        }

    def watched_rules(self) -> tuple[str, ...]:
        """The rules that watch the fit: `watch`, or every rule that applies."""
        return self.watch if self.watch is not None else applicable_rules(self.noise_sigma)


@dataclass
class FitProblem:
    """What a fit needs: the net, its fixed input z, the forward operator A, the observation x0, optional truth."""

    net: nn.Module
    net_input: torch.Tensor
    forward: nn.Module
    observed: torch.Tensor
    clean: torch.Tensor | None = None


@dataclass
class FitResult:
    """The chosen output (1, C, H, W) on the CPU, the trace and how the fit went."""

    output: torch.Tensor
    last_output: torch.Tensor
    """The net's output on the unperturbed input after the last iteration (the chosen output too when nothing else
    is chosen)."""
    trace: list[dict[str, float]]
    iterations: int
    selected_iteration: int
    output_kind: str
    stop_reason: str
    seconds: float
    backtracks: int
    resumed_from: int | None = None
    early_stop: dict[str, float | int | None] | None = None
    """With `es_continue`: where the stopping rule would have stopped, the iteration it picked, that output's PSNR."""
    watched: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each watching rule's stop, pick and pick PSNR (`Watcher.record`), by rule name."""
    notes: list[str] = field(default_factory=list)
    """Warnings about the fit (e.g. a data term that ended worse than it began), also logged."""
    checkpoint: Path | None = None
    """The checkpoint holding the final state: the one given, unless it belonged to another fit (then left alone)."""
    frames: list[Frame] = field(default_factory=list)
    """The snapshots of the output along the fit (`FitSettings.frames` of them, fewer when it stopped early)."""


class FitInterrupted(DipError):
    """The fit was asked to stop (SIGINT/SIGTERM); its state is in the checkpoint, if one was given."""

    exit_code = 130

    def __init__(self, iteration: int, checkpoint: Path | None) -> None:
        where = (
            f"checkpoint saved to {checkpoint}; run the same command again to resume" if checkpoint else "no checkpoint"
        )
        super().__init__(f"interrupted at iteration {iteration} ({where})")
        self.iteration = iteration


def _psnr_from_mse(mse: float) -> float:
    return 10 * math.log10(1.0 / mse) if mse > 0 else math.inf


class _Snapshot:
    """The last good state (parameters, optimiser, output average) that backtracking restores."""

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, ema: torch.Tensor | None) -> None:
        self.params = {k: v.detach().clone() for k, v in net.state_dict().items()}
        self.optimizer = _clone_state(optimizer.state_dict())
        self.ema = None if ema is None else ema.clone()

    def restore(self, net: nn.Module, optimizer: torch.optim.Optimizer) -> torch.Tensor | None:
        net.load_state_dict(self.params)
        optimizer.load_state_dict(_clone_state(self.optimizer))
        return None if self.ema is None else self.ema.clone()

    def state_dict(self) -> dict[str, Any]:
        return {"params": self.params, "optimizer": self.optimizer, "ema": self.ema}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Snapshot:
        snapshot = cls.__new__(cls)
        snapshot.params, snapshot.optimizer, snapshot.ema = state["params"], state["optimizer"], state["ema"]
        return snapshot


def _clone_state(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: _clone_state(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_clone_state(v) for v in state]
    return state


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
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


def _load_checkpoint(path: Path, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint's state; None if there is none or it is unreadable (reported: a fresh start overwrites it)."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as error:  # a corrupt file must not stop a fresh start
        log.warning("ignoring unreadable checkpoint %s (%s); starting from iteration 0", path, error)
        return None


def _steps_on_cpu(optimizer_state: dict[str, Any]) -> dict[str, Any]:
    """Adam's step counts back on the CPU, where Adam keeps them (a checkpoint loaded onto a GPU put them there, and
    Adam would then read each one back to the host at every step)."""
    for param_state in optimizer_state["state"].values():
        if isinstance(param_state.get("step"), torch.Tensor):
            param_state["step"] = param_state["step"].cpu()
    return optimizer_state


def _resume_generator(generator: torch.Generator, saved: torch.Tensor, reseed: int) -> None:
    """Continue the reg-noise stream of a checkpoint; one written on another kind of device (the CPU's and CUDA's
    generators differ) goes on with a stream seeded by `reseed` instead: the same distribution, other draws."""
    saved = saved.cpu()
    if saved.numel() == generator.get_state().numel():
        generator.set_state(saved)
        return
    log.warning("the checkpoint was written on another kind of device: the reg-noise stream is reseeded")
    generator.manual_seed(reseed)


def _belongs_to(state: dict[str, Any], fingerprint: str) -> bool:
    """Whether a checkpoint's state is of this very fit (same format, model, settings and observation)."""
    return (
        isinstance(state, dict)
        and state.get("version") == CHECKPOINT_VERSION
        and state.get("fingerprint") == fingerprint
    )


def _not_converged(trace: list[dict[str, float]]) -> list[str]:
    """A warning when the data-term PSNR of the last trace row is below that of the first."""
    if len(trace) < 2 or not trace[-1]["psnr_obs"] < trace[0]["psnr_obs"]:
        return []
    return [
        f"the data-term PSNR ended at {trace[-1]['psnr_obs']:.2f} dB, below its start at {trace[0]['psnr_obs']:.2f} "
        "dB: the fit did not converge (lower the learning rate?)"
    ]


def fit(
    problem: FitProblem,
    settings: FitSettings,
    *,
    fingerprint: str = "",
    checkpoint: Path | None = None,
    stop_event: threading.Event | None = None,
    progress: bool | None = None,
) -> FitResult:
    """Fit the net to the observation; resume from `checkpoint` when it holds this fit's state.

    `fingerprint` identifies the fit (model, settings, observation): a checkpoint of another fit is never resumed nor
    overwritten (the fit then runs without one). With a checkpoint, the final state is saved too, so that a run whose
    outputs could not be written resumes at the end (and finishes at once).
    `stop_event`, when set (e.g. by a signal handler), makes the fit save its checkpoint and raise FitInterrupted.
    `progress`: a progress bar (None: only on a terminal); logs get a line every 5 % either way.
    """
    net, forward = problem.net, problem.forward
    device = problem.observed.device
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    net.to(memory_format=memory_format)
    net.train()  # BatchNorm stays in training mode for the whole fit, as in the authors' code
    net_input_saved = problem.net_input.contiguous(memory_format=memory_format)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator(device=device).manual_seed(settings.seed + 1)
    stopping = make_stopping_rule(settings.stopping, **settings.rule_settings())
    watchers = Watchers(settings.watched_rules(), **settings.rule_settings())
    langevin = None
    if settings.langevin_sigma > 0:
        burnin, every = settings.langevin_burnin, settings.langevin_every
        langevin = LangevinDynamics(settings.langevin_sigma, settings.lr, burnin, every, settings.seed + 2, device)
    perturbation = torch.empty_like(net_input_saved)
    # fp16 gradients of an MSE near 1e-3 underflow: scale the loss (a no-op for fp32 and bf16, which need none)
    scaler = torch.amp.GradScaler(device.type, enabled=settings.precision == "fp16")

    start, elapsed, backtracks = 0, 0.0, 0
    trace: list[dict[str, float]] = []
    ema: torch.Tensor | None = None
    best_output: torch.Tensor | None = None
    fired_output: torch.Tensor | None = None
    """The rule's pick when it fired, frozen: later minima must not change it before the fit reads `fired()`."""
    firing: tuple[int, int] | None = None
    early_stop: dict[str, Any] | None = None
    snapshot_psnr = -math.inf
    resumed_from = None
    recorder = FrameRecorder(settings.iterations, settings.frames, settings.frame_side)
    state = _load_checkpoint(checkpoint, device) if checkpoint else None
    if state is not None and not _belongs_to(state, fingerprint):
        log.warning("checkpoint %s belongs to another fit: leaving it as it is; this fit runs without one", checkpoint)
        state, checkpoint = None, None
    stop_reason = "iterations"
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(_steps_on_cpu(state["optimizer"]))
        _resume_generator(generator, state["generator"], settings.seed + 1 + state["iteration"])
        stopping.load_state_dict(state["stopping"])
        watchers.load_state_dict(state.get("watchers", {}))
        if langevin is not None:
            langevin.load_state_dict(state["langevin"])
            reseed = settings.seed + 2 + state["iteration"]
            _resume_generator(langevin.generator, state["langevin"]["generator"], reseed)
        start, elapsed, backtracks = state["iteration"], state["elapsed"], state["backtracks"]
        trace, ema, best_output = state["trace"], state["ema"], state["best_output"]
        fired_output, early_stop = state.get("fired_output"), state.get("early_stop")
        firing, stop_reason = state.get("firing"), state.get("stop_reason", stop_reason)
        if "scaler" in state:  # checkpoints written before fp16 loss scaling have none (and need none)
            scaler.load_state_dict(state["scaler"])
        _steps_on_cpu(state["snapshot"]["optimizer"])
        snapshot = _Snapshot.from_state(state["snapshot"])
        snapshot_psnr = state["snapshot_psnr"]
        recorder.load_state_dict(state.get("frames", []))
        resumed_from = start
        log.info("resuming from %s at iteration %d", checkpoint, start)
    else:
        snapshot = _Snapshot(net, optimizer, ema)

    def take_frame(iteration: int, output: torch.Tensor, loss: torch.Tensor) -> None:
        """Keep this output as a frame; its PSNRs are read here (a host sync on N iterations only)."""
        psnr_gt = math.nan
        if problem.clean is not None:
            psnr_gt = _psnr_from_mse(float(torch.mean((output.clamp(0, 1) - problem.clean) ** 2)))
        recorder.capture(iteration, output, _psnr_from_mse(float(loss.detach())), psnr_gt)

    def checkpoint_state(iteration: int) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "fingerprint": fingerprint,
            "iteration": iteration,
            "elapsed": elapsed + time.perf_counter() - t0,
            "backtracks": backtracks,
            "model": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "generator": generator.get_state(),
            "stopping": stopping.state_dict(),
            "watchers": watchers.state_dict(),
            "langevin": None if langevin is None else langevin.state_dict(),
            "trace": trace,
            "ema": ema,
            "best_output": best_output,
            "fired_output": fired_output,
            "early_stop": early_stop,
            "firing": firing,
            "stop_reason": stop_reason,
            "snapshot": snapshot.state_dict(),
            "snapshot_psnr": snapshot_psnr,
            "frames": recorder.state_dict(),
            "settings": asdict(settings),
        }

    show_bar = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=settings.iterations, initial=start, disable=not show_bar, unit="it", desc="DIP fit")
    log_every = max(1, settings.iterations // 20)
    polls_every_iteration = _polls_every_iteration(device)
    iteration = start
    t0 = time.perf_counter()
    while iteration < settings.iterations and stop_reason == "iterations":
        if stop_event is not None and stop_event.is_set():
            if checkpoint:
                _save_checkpoint(checkpoint, checkpoint_state(iteration))
            bar.close()
            raise FitInterrupted(iteration, checkpoint)
        net_input = net_input_saved
        if settings.reg_noise_std > 0:
            perturbation.normal_(generator=generator)
            net_input = net_input_saved + perturbation * settings.reg_noise_std
        optimizer.zero_grad(set_to_none=True)
        with autocast(settings.precision, device):
            output = net(net_input)
        output = output.float()
        loss = torch.mean((forward(output) - problem.observed) ** 2)
        objective = loss + settings.tv_weight * total_variation(output) if settings.tv_weight else loss
        scaler.scale(objective).backward()

        snapshot_due = iteration % settings.backtrack_every == 0
        logged = not show_bar and iteration % log_every == 0
        check = snapshot_due or logged or iteration % settings.trace_every == 0 or iteration == settings.iterations - 1
        loss_value = float(loss.detach()) if check else math.nan
        if check and not math.isfinite(loss_value):
            backtracks += 1
            if backtracks > settings.max_backtracks:
                bar.close()
                raise DivergenceError(
                    f"the fit diverged (loss {loss_value}) at iteration {iteration} and {settings.max_backtracks} "
                    "backtracks did not recover it; lower the learning rate"
                )
            log.warning("non-finite loss at iteration %d: restoring the last good parameters", iteration)
            ema = snapshot.restore(net, optimizer)
            iteration += 1
            bar.update(1)
            continue
        psnr_obs = _psnr_from_mse(loss_value) if check else math.nan
        if snapshot_due:
            dropped = settings.backtrack_db is not None and psnr_obs < snapshot_psnr - settings.backtrack_db
            if iteration > 0 and dropped:
                backtracks += 1
                log.info(
                    "iteration %d: data-term PSNR fell from %.2f to %.2f dB; restoring the last good parameters",
                    iteration,
                    snapshot_psnr,
                    psnr_obs,
                )
                ema = snapshot.restore(net, optimizer)
                iteration += 1
                bar.update(1)
                continue
            # the parameters that produced this PSNR, before this step's update (as the authors' closure saves them)
            snapshot, snapshot_psnr = _Snapshot(net, optimizer, ema), psnr_obs
        scaler.step(optimizer)  # skips the step when fp16 gradients overflowed
        scaler.update()
        detached = output.detach()
        if langevin is not None:
            langevin.step(net)
            langevin.observe(iteration, detached)
        if settings.ema > 0:
            ema = detached.clone() if ema is None else ema.mul_(settings.ema).add_(detached, alpha=1 - settings.ema)
        if recorder.due(iteration):
            take_frame(iteration, detached, loss)
        step = stopping.update(iteration, detached, loss.detach())
        watchers.observe(iteration, detached, ema if ema is not None else detached, loss.detach())
        if step is not None:  # device-side selection: no host sync here
            keep = ema if ema is not None else detached
            best_output = keep.clone() if best_output is None else torch.where(step.is_best, keep, best_output)
            if firing is None and early_stop is None:
                frozen = best_output if fired_output is None else fired_output
                fired_output = torch.where(step.fires, best_output, frozen)
        if iteration % settings.trace_every == 0 or iteration == settings.iterations - 1:
            now = elapsed + time.perf_counter() - t0
            trace.append(_trace_row(iteration, loss_value, detached, ema, problem.clean, now, stopping.last_variance))
            bar.set_postfix(psnr_obs=f"{psnr_obs:.2f}")
        if logged:
            log.info(
                "iteration %d/%d  loss %.3g  data-term PSNR %.2f dB",
                iteration,
                settings.iterations,
                loss_value,
                psnr_obs,
            )
        iteration += 1
        bar.update(1)
        if checkpoint and iteration % settings.checkpoint_every == 0 and iteration < settings.iterations:
            _save_checkpoint(checkpoint, checkpoint_state(iteration))
        if step is not None and firing is None and early_stop is None and (polls_every_iteration or check):
            firing = stopping.fired()
            if firing is not None and settings.es_continue:
                early_stop = _early_stop_record(firing[0] + 1, firing[1], fired_output, problem.clean)
            elif firing is not None:
                if settings.frames and not recorder.has(iteration - 1):
                    take_frame(iteration - 1, detached, loss)  # the last output of a fit stopped early
                stop_reason = f"{settings.stopping} (fired after {firing[0] + 1} iterations)"
                break
    bar.close()
    if checkpoint:
        _save_checkpoint(checkpoint, checkpoint_state(iteration))
    seconds = elapsed + time.perf_counter() - t0
    notes = _not_converged(trace)
    for note in notes:
        log.warning(note)

    if settings.es_continue and early_stop is None:
        early_stop = _early_stop_record(None, stopping.best_iteration, best_output, problem.clean)
    with torch.no_grad(), autocast(settings.precision, device):
        last = net(net_input_saved).float()  # the authors' final forward pass on the unperturbed z
    if firing is not None and fired_output is not None and not settings.es_continue:
        chosen, kind, selected = fired_output, f"{settings.stopping} selection", firing[1]
    elif best_output is not None and stopping.best_iteration is not None and not settings.es_continue:
        chosen, kind, selected = best_output, f"{settings.stopping} selection", stopping.best_iteration
    elif langevin is not None and langevin.samples:
        chosen, selected = langevin.mean(), iteration - 1
        kind = f"posterior mean of {langevin.samples} outputs (SGLD, after {settings.langevin_burnin} iterations)"
    elif ema is not None:
        chosen, kind, selected = ema, f"average of outputs (weight {settings.ema})", iteration - 1
    else:
        chosen, kind, selected = last, LAST_OUTPUT, iteration - 1
    if not torch.isfinite(chosen).all():
        raise DivergenceError("the fit produced a non-finite image; nothing was written")
    return FitResult(
        output=chosen.detach().cpu().contiguous(),
        last_output=last.detach().cpu().contiguous(),
        trace=trace,
        iterations=iteration,
        selected_iteration=int(selected if selected is not None else iteration - 1),
        output_kind=kind,
        stop_reason=stop_reason,
        seconds=seconds,
        backtracks=backtracks,
        resumed_from=resumed_from,
        early_stop=early_stop,
        watched=watchers.records(problem.clean),
        notes=notes,
        checkpoint=checkpoint,
        frames=recorder.frames,
    )


def _polls_every_iteration(device: torch.device) -> bool:
    """Read the stopping rule's decision at every iteration, or (on CUDA) only where the loop syncs anyway."""
    return device.type != "cuda"


def _early_stop_record(
    stop_iteration: int | None,
    selected_iteration: int | None,
    selected_output: torch.Tensor | None,
    clean: torch.Tensor | None,
) -> dict[str, Any]:
    """Where an early-stopping rule fired (None: it never did), what it picked and, with ground truth, its PSNR."""
    psnr = math.nan
    if clean is not None and selected_output is not None:
        psnr = _psnr_from_mse(float(torch.mean((selected_output.clamp(0, 1) - clean) ** 2)))
    return {"stop_iteration": stop_iteration, "selected_iteration": selected_iteration, "psnr_gt": psnr}


def _trace_row(
    iteration: int,
    loss: float,
    output: torch.Tensor,
    ema: torch.Tensor | None,
    clean: torch.Tensor | None,
    seconds: float,
    es_variance: float,
) -> dict[str, float]:
    """One trace row; ground truth only feeds the plotted PSNR columns, never a decision."""
    row = {
        "iteration": iteration,
        "loss": loss,
        "psnr_obs": _psnr_from_mse(loss),
        "psnr_gt": math.nan,
        "psnr_gt_avg": math.nan,
        "seconds": seconds,
        "es_variance": es_variance,
    }
    if clean is not None:
        row["psnr_gt"] = _psnr_from_mse(float(torch.mean((output.clamp(0, 1) - clean) ** 2)))
        if ema is not None:
            row["psnr_gt_avg"] = _psnr_from_mse(float(torch.mean((ema.clamp(0, 1) - clean) ** 2)))
    return row
