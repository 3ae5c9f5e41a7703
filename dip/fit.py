"""The Deep Image Prior fit: min_θ ‖A·f_θ(z) − x0‖² with Adam, input-noise regularisation, output averaging,
backtracking, a NaN guard, early stopping, a per-iteration trace and checkpoint/resume (Ulyanov et al., CVPR 2018)."""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from dip.errors import DipError, DivergenceError
from dip.fit_settings import FitSettings
from dip.fit_steps import (
    CHECKPOINT_VERSION,
    Backtracker,
    Nets,
    SingleNet,
    StopWatch,
    load_checkpoint,
    psnr_from_mse,
    psnr_to,
    resume_generator,
    save_checkpoint,
)
from dip.fit_variants import LangevinDynamics, total_variation
from dip.frames import Frame, FrameRecorder
from dip.stacked import StackedNets
from dip.watching import Watchers

log = logging.getLogger(__name__)

LAST_OUTPUT = "last output"
"""`FitResult.output_kind` when the chosen output is the last one."""


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


class FitRun:
    """One fit from one iteration to the next: its state (which saves and loads itself as the checkpoint) and the
    steps the loop takes for it, in order: `next_input`, `loss` (the data term, plus DIP-TV's term), `after_backward`
    (NaN guard and backtracking), `after_step` (Langevin noise, average, frame, stopping rule, watching rules, trace,
    checkpoint), and at the end `finish`."""

    def __init__(
        self,
        problem: FitProblem,
        settings: FitSettings,
        nets: Nets,
        index: int = 0,
        *,
        fingerprint: str = "",
        checkpoint: Path | None = None,
        logs: bool = True,
    ) -> None:
        self.problem, self.settings, self.nets, self.index = problem, settings, nets, index
        self.fingerprint, self.logs = fingerprint, logs
        device = problem.observed.device
        self.net_input = problem.net_input.contiguous(memory_format=nets.memory_format)
        self.perturbation = torch.empty_like(self.net_input)
        self.generator = torch.Generator(device=device).manual_seed(settings.seed + 1)
        self.watch = StopWatch(settings)
        self.watchers = Watchers(settings.watched_rules(), **settings.rule_settings())
        self.langevin: LangevinDynamics | None = None
        if settings.langevin_sigma > 0:
            burnin, every, seed = settings.langevin_burnin, settings.langevin_every, settings.seed + 2
            self.langevin = LangevinDynamics(settings.langevin_sigma, settings.lr, burnin, every, seed, device)
        self.backtracker = Backtracker(settings, nets, index)
        self.recorder = FrameRecorder(settings.iterations, settings.frames, settings.frame_side)
        self.iteration, self.elapsed, self.stop_reason = 0, 0.0, "iterations"
        self.trace: list[dict[str, float]] = []
        self.ema: torch.Tensor | None = None
        self.data_term = torch.zeros(())
        """This iteration's data term ‖A·f(z) − x0‖², which backtracking, the rules and the trace read."""
        self.failure: DipError | None = None
        self.checked = False
        """Whether this iteration's loss was read (a host sync: the loop reads it only every so often)."""
        self.resumed_from: int | None = None
        state, self.checkpoint = load_checkpoint(checkpoint, device, fingerprint) if checkpoint else (None, None)
        if state is not None:
            self.load_state_dict(state)
            self.resumed_from = self.iteration
            log.info("resuming from %s at iteration %d", checkpoint, self.iteration)
        self.started = time.perf_counter()

    # --- the checkpoint: every part of the fit's state, written and read in one place ---

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint,
            "settings": asdict(self.settings),
            "iteration": self.iteration,
            "elapsed": self.seconds(),
            "trace": self.trace,
            "ema": self.ema,
            "stop_reason": self.stop_reason,
            "generator": self.generator.get_state(),
            "frames": self.recorder.state_dict(),
            **self.nets.state_dict(self.index),  # model, optimizer, scaler
            **self.watch.state_dict(),  # stopping, best_output, fired_output, early_stop, firing
            **self.backtracker.state_dict(),  # backtracks, snapshot, snapshot_psnr
            "watchers": self.watchers.state_dict(),
            "langevin": None if self.langevin is None else self.langevin.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration, self.elapsed, self.trace = state["iteration"], state["elapsed"], state["trace"]
        self.ema, self.stop_reason = state["ema"], state.get("stop_reason", self.stop_reason)
        resume_generator(self.generator, state["generator"], self.settings.seed + 1 + self.iteration)
        self.recorder.load_state_dict(state.get("frames", []))
        self.nets.load_state_dict(self.index, state)
        self.watch.load_state_dict(state)
        self.backtracker.load_state_dict(state)
        self.watchers.load_state_dict(state.get("watchers") or {})  # none in checkpoints from before watching
        if self.langevin is not None:
            self.langevin.load_state_dict(state["langevin"])
            reseed = self.settings.seed + 2 + self.iteration
            resume_generator(self.langevin.generator, state["langevin"]["generator"], reseed)

    def save(self) -> None:
        if self.checkpoint:
            save_checkpoint(self.checkpoint, self.state_dict())

    def seconds(self) -> float:
        return self.elapsed + time.perf_counter() - self.started

    # --- the steps of one iteration ---

    @property
    def active(self) -> bool:
        return self.failure is None and self.stop_reason == "iterations" and self.iteration < self.settings.iterations

    def next_input(self) -> torch.Tensor:
        """z, plus this iteration's input noise (drawn from the fit's own generator) while the fit is active."""
        if self.settings.reg_noise_std == 0 or not self.active:
            return self.net_input
        self.perturbation.normal_(generator=self.generator)
        return self.net_input + self.perturbation * self.settings.reg_noise_std

    def loss(self, output: torch.Tensor) -> torch.Tensor:
        """The objective the optimiser minimises: the data term ‖A·f(z) − x0‖² (mean over pixels; kept as
        `data_term`), plus with DIP-TV `tv_weight` × TV(f(z))."""
        self.data_term = torch.mean((self.problem.forward(output) - self.problem.observed) ** 2)
        if self.settings.tv_weight:
            return self.data_term + self.settings.tv_weight * total_variation(output)
        return self.data_term

    def _due(self, every: int) -> bool:
        return self.iteration % every == 0 or self.iteration == self.settings.iterations - 1

    def _logged(self) -> bool:
        return self.logs and self.iteration % max(1, self.settings.iterations // 20) == 0

    def after_backward(self) -> bool:
        """Guard against a non-finite data term and backtrack on a PSNR drop; whether the optimiser steps this fit."""
        iteration = self.iteration
        self.checked = self.backtracker.due(iteration) or self._logged() or self._due(self.settings.trace_every)
        value = float(self.data_term.detach()) if self.checked else None
        try:
            restored, self.ema = self.backtracker.check(iteration, value, self.ema)
        except DipError as error:
            self.failure = error
            return False
        if restored:
            self.iteration += 1
        return not restored

    def after_step(self, output: torch.Tensor, polls_every_iteration: bool) -> bool:
        """Langevin noise, average, frame, stopping rule, watching rules, trace, log and checkpoint of a stepped
        iteration; whether a row was traced."""
        detached, iteration, settings, loss = output.detach(), self.iteration, self.settings, self.data_term.detach()
        if self.langevin is not None:
            self.langevin.step(self.nets.conv_weights(self.index))
            self.langevin.observe(iteration, detached)
        if settings.ema > 0:
            self.ema = (
                detached.clone()
                if self.ema is None
                else self.ema.mul_(settings.ema).add_(detached, alpha=1 - settings.ema)
            )
        if self.recorder.due(iteration):
            self._take_frame(iteration, detached, loss)
        self.watch.observe(iteration, detached, self.ema, loss)
        self.watchers.observe(iteration, detached, self.ema if self.ema is not None else detached, loss)
        traced = self._due(settings.trace_every)
        if traced:
            self.trace.append(self._trace_row(float(loss), detached))
        if self._logged():
            value = float(loss)
            log.info(
                "iteration %d/%d  loss %.3g  data-term PSNR %.2f dB",
                iteration,
                settings.iterations,
                value,
                psnr_from_mse(value),
            )
        self.iteration += 1
        if self.iteration % settings.checkpoint_every == 0 and self.iteration < settings.iterations:
            self.save()
        if (polls_every_iteration or self.checked) and self.watch.poll(self.problem.clean):
            if settings.frames and not self.recorder.has(iteration):
                self._take_frame(iteration, detached, loss)  # the last output of a fit stopped early
            self.stop_reason = self.watch.stop_reason()
        return traced

    def _take_frame(self, iteration: int, output: torch.Tensor, loss: torch.Tensor) -> None:
        """Keep this output as a frame; its PSNRs are read here (a host sync on N iterations only)."""
        self.recorder.capture(
            iteration, output, psnr_from_mse(float(loss.detach())), psnr_to(output, self.problem.clean)
        )

    def _trace_row(self, loss: float, output: torch.Tensor) -> dict[str, float]:
        """The trace row of this iteration; ground truth only feeds the plotted PSNR columns, never a decision."""
        return {
            "iteration": self.iteration,
            "loss": loss,
            "psnr_obs": psnr_from_mse(loss),
            "psnr_gt": psnr_to(output, self.problem.clean),
            "psnr_gt_avg": math.nan if self.ema is None else psnr_to(self.ema, self.problem.clean),
            "seconds": self.seconds(),
            "es_variance": self.watch.rule.last_variance,
        }

    # --- the end ---

    def finish(self, last: torch.Tensor) -> FitResult:
        """Save the final state, then choose the output: the stopping rule's pick, else the average, else `last`
        (the net's output on the unperturbed z after the last iteration)."""
        self.save()
        seconds = self.seconds()
        notes = not_converged(self.trace)
        for note in notes:
            log.warning(note)
        self.watch.finish(self.problem.clean)
        chosen, kind, selected = self.select_output(last)
        if not torch.isfinite(chosen).all():
            raise DivergenceError("the fit produced a non-finite image; nothing was written")
        return FitResult(
            output=chosen.detach().cpu().contiguous(),
            last_output=last.detach().cpu().contiguous(),
            trace=self.trace,
            iterations=self.iteration,
            selected_iteration=int(selected if selected is not None else self.iteration - 1),
            output_kind=kind,
            stop_reason=self.stop_reason,
            seconds=seconds,
            backtracks=self.backtracker.backtracks,
            resumed_from=self.resumed_from,
            early_stop=self.watch.early_stop,
            watched=self.watchers.records(self.problem.clean),
            notes=notes,
            checkpoint=self.checkpoint,
            frames=self.recorder.frames,
        )

    def select_output(self, last: torch.Tensor) -> tuple[torch.Tensor, str, int | None]:
        """(the output the fit returns, what it is, its iteration)."""
        pick = self.watch.pick()
        if pick is not None:
            return pick[0], f"{self.settings.stopping} selection", pick[1]
        if self.langevin is not None and (mean := self.langevin.mean()) is not None:
            burnin = self.settings.langevin_burnin
            kind = f"posterior mean of {self.langevin.samples} outputs (SGLD, after {burnin} iterations)"
            return mean, kind, self.iteration - 1
        if self.ema is not None:
            return self.ema, f"average of outputs (weight {self.settings.ema})", self.iteration - 1
        return last, LAST_OUTPUT, self.iteration - 1


def not_converged(trace: list[dict[str, float]]) -> list[str]:
    """A warning when the data-term PSNR of the last trace row is below that of the first."""
    if len(trace) < 2 or not trace[-1]["psnr_obs"] < trace[0]["psnr_obs"]:
        return []
    return [
        f"the data-term PSNR ended at {trace[-1]['psnr_obs']:.2f} dB, below its start at {trace[0]['psnr_obs']:.2f} "
        "dB: the fit did not converge (lower the learning rate?)"
    ]


def run_fits(
    nets: Nets, runs: list[FitRun], *, stop_event: threading.Event | None = None, show_bar: bool = False
) -> list[FitResult | DipError]:
    """Fit the runs that share `nets` together, one iteration of each at a time; each run's result, or the error
    that ended it (a diverged fit ends alone, its batch-mates go on)."""
    polls_every_iteration = _polls_every_iteration(runs[0].problem.observed.device)
    total = max(run.settings.iterations for run in runs)
    bar = tqdm(total=total, initial=min(run.iteration for run in runs), disable=not show_bar, unit="it", desc="DIP fit")
    for run in runs:
        run.started = time.perf_counter()
    while any(run.active for run in runs):
        if stop_event is not None and stop_event.is_set():
            bar.close()
            interrupt(runs)
        # forward and backward: every net at once (the finished ones too: their step is skipped)
        outputs = nets.forward([run.next_input() for run in runs])
        nets.backward([run.loss(output) for run, output in zip(runs, outputs, strict=True)])
        # NaN guard and backtracking, each fit on its own; then the optimiser step of the fits that go on
        stepping = [run.active and run.after_backward() for run in runs]
        nets.step(stepping)
        # Langevin noise, average, frame, stopping rule, watching rules, trace, log, checkpoint
        for run, output, stepped in zip(runs, outputs, stepping, strict=True):
            if stepped and run.after_step(output, polls_every_iteration) and run is runs[0]:
                bar.set_postfix(psnr_obs=f"{run.trace[-1]['psnr_obs']:.2f}")
        bar.update(1)
    bar.close()
    lasts = nets.evaluate([run.net_input for run in runs])  # the authors' final forward pass on the unperturbed z
    diverged = [run for run, last in zip(runs, lasts, strict=True) if run.failure is None and not last.isfinite().all()]
    for run in diverged:
        run.backtracker.recover_last_step()
    if diverged:
        lasts = nets.evaluate([run.net_input for run in runs])
    results: list[FitResult | DipError] = []
    for run, last in zip(runs, lasts, strict=True):
        try:
            results.append(run.finish(last) if run.failure is None else run.failure)
        except DipError as error:
            results.append(error)
    return results


def interrupt(runs: list[FitRun]) -> None:
    """Save each fit's checkpoint and raise FitInterrupted."""
    for run in runs:
        run.save()
    raise FitInterrupted(runs[0].iteration, runs[0].checkpoint)


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
    show_bar = sys.stderr.isatty() if progress is None else progress
    nets = SingleNet(problem.net, settings, problem.observed.device)
    run = FitRun(problem, settings, nets, fingerprint=fingerprint, checkpoint=checkpoint, logs=not show_bar)
    (result,) = run_fits(nets, [run], stop_event=stop_event, show_bar=show_bar)
    if isinstance(result, DipError):
        raise result
    return result


def _polls_every_iteration(device: torch.device) -> bool:
    """Read the stopping rule's decision at every iteration, or (on CUDA) only where the loop syncs anyway."""
    return device.type != "cuda"


def fit_batch(
    problems: list[FitProblem],
    settings: list[FitSettings],
    *,
    fingerprints: list[str] | None = None,
    checkpoints: list[Path | None] | None = None,
    stop_event: threading.Event | None = None,
    progress: bool | None = None,
) -> list[FitResult | DipError]:
    """Fit K problems whose nets share an architecture and whose images share a size as one stacked model
    (`dip.stacked`), each fit with its own settings, trace, input noise, average, backtracking, stopping rule, frames,
    checkpoint and output, as `fit` would fit it alone; each fit's result, or the error that ended it (alone)."""
    show_bar = sys.stderr.isatty() if progress is None else progress
    fingerprints = fingerprints or [""] * len(problems)
    checkpoints = checkpoints or [None] * len(problems)
    nets = StackedNets([problem.net for problem in problems], settings, problems[0].observed.device)
    runs = [
        FitRun(problem, fit_settings, nets, index, fingerprint=key, checkpoint=path, logs=not show_bar)
        for index, (problem, fit_settings, key, path) in enumerate(
            zip(problems, settings, fingerprints, checkpoints, strict=True)
        )
    ]
    return run_fits(nets, runs, stop_event=stop_event, show_bar=show_bar)
