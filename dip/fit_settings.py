"""The settings of one DIP fit (`FitSettings`): what decides how it runs, checked when made; `dip restore`'s fit flags
and the workflow's `fit` keys are its fields. The fit's modules stand in layers on it: `dip.fit` runs the loop over
`dip.fit_steps` and `dip.stacked`, which all read these settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dip.device import PRECISIONS
from dip.errors import ConfigError
from dip.frames import check_frames
from dip.layout import FRAMES_INDEX, FRAMES_SPRITE, RECORD
from dip.record import check_seed
from dip.stopping import EARLY_STOPPING_RULES, STOPPING_RULES, applicable_rules, make_stopping_rule


def _setting(default: Any, help: str, **flag: Any) -> Any:
    """A field of `FitSettings` with its help text (and `dip restore` flag options such as `choices`)."""
    return field(default=default, metadata={"help": help, **flag})


@dataclass(frozen=True)
class FitSettings:
    """Everything that decides how one DIP fit runs; `dip restore`'s fit flags and the workflow's `fit` keys are its
    fields. The defaults are generic ones; `dip restore` takes the paper's values for the task and level instead
    where those say otherwise (iterations, lr, reg_noise_std, ema, backtrack_db, stopping: `Operator.paper_fit`)."""

    iterations: int = _setting(2000, "optimiser iterations")
    lr: float = _setting(0.01, "Adam learning rate")
    reg_noise_std: float = _setting(0.03, "std of the noise added to the input z at every iteration")
    ema: float = _setting(
        0.0, "weight of the running average of the outputs (0.99 in the paper's denoising); 0 returns the last output"
    )
    backtrack_db: float = _setting(
        5.0,
        "restore the last good state when the data-term PSNR drops by more than this many dB; 0 turns backtracking off",
    )
    backtrack_every: int = _setting(
        100,
        "save the last good state (also the NaN guard's fallback) and check the PSNR drop every this many iterations",
    )
    max_backtracks: int = _setting(20, "give up (the fit diverged) after this many restores of the NaN guard")
    stopping: str = _setting(
        "fixed",
        "stopping rule: fixed (all iterations); es-wmv, es-emv (early stopping without ground truth); noise-level "
        "(the data term falls to the known noise σ: Gaussian denoising only)",
        choices=STOPPING_RULES,
    )
    es_window: int = _setting(100, "window of the ES-WMV stopping rule (outputs whose variance it watches)")
    es_patience: int = _setting(
        1000, "ES-WMV and ES-EMV stop after this many iterations without a new variance minimum"
    )
    es_alpha: float = _setting(0.1, "ES-EMV's weight of the newest output (Wang et al.: 0.1)")
    noise_sigma: float | None = _setting(
        None,
        "the known σ (0–255 scale) of Gaussian noise on the observation, for the noise-level rule (default: the "
        "observation's, where its task knows it)",
        type=float,
    )
    watch: tuple[str, ...] | None = _setting(
        None,
        f"early-stopping rules ({', '.join(EARLY_STOPPING_RULES)}) that watch the fit, each recording its stop and "
        "pick (dip.watching); they change nothing in the fit; the flag alone: none (default: every rule that "
        "applies, noise-level only where σ is known)",
        type=str,
        nargs="*",
        choices=EARLY_STOPPING_RULES,
        metavar="RULE",
    )
    es_continue: bool = _setting(
        False,
        "with a stopping rule: fit all iterations anyway and record where the rule would have stopped, "
        "its pick and that output's PSNR",
    )
    seed: int = _setting(0, "seed of the net's initialisation, its input z and the input noise")
    trace_every: int = _setting(10, "write a row of trace.csv every this many iterations")
    checkpoint_every: int = _setting(200, "save a resumable checkpoint every this many iterations (with --checkpoint)")
    precision: str = _setting(
        "fp32",
        "fp32 (IEEE float32, also on CUDA); tf32 (CUDA: TensorFloat-32 matmuls and convolutions); bf16 or fp16 "
        "(autocast; fp16 on CUDA only); auto: bf16 where the device computes it natively (CUDA compute capability ≥ "
        f"8.0, or a CPU with AMX-BF16/AVX512-BF16 and --channels-last), else fp32; {RECORD} says which ran and why",
        choices=PRECISIONS,
    )
    channels_last: bool = _setting(False, "run the net in channels_last memory layout (with bf16: the fast CPU path)")
    tv_weight: float = _setting(
        0.0, "DIP-TV (dip.fit_variants.total_variation): weight of the TV term added to the data term; 0 = off"
    )
    langevin_sigma: float = _setting(
        0.0,
        "Bayesian DIP by SGLD (dip.fit_variants.LangevinDynamics): Langevin noise of std langevin_sigma × lr on the "
        "conv weights after each step (Cheng et al.: 2); 0 = off; the output is then the posterior mean",
    )
    langevin_burnin: int = _setting(
        7000, "SGLD: iterations before the posterior mean starts collecting outputs (Cheng et al.: 7000)"
    )
    langevin_every: int = _setting(
        50, "SGLD: after burn-in, an output joins the posterior mean every this many iterations (Cheng et al.: 50)"
    )
    weight_decay: float = _setting(0.0, "Adam's weight decay (Cheng et al.'s SGLD: 5e-8); 0 = none, as the paper's DIP")
    frames: int = _setting(
        0,
        f"save this many snapshots of the output at geometrically spaced iterations ({FRAMES_SPRITE}, {FRAMES_INDEX}); "
        "they change no number of the fit",
        metavar="N",
    )
    frame_side: int = _setting(256, "shrink frames to at most this many pixels on their longer side", metavar="PX")

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
        if not (math.isfinite(self.backtrack_db) and self.backtrack_db >= 0):
            raise ConfigError(
                f"backtrack_db must be a finite number ≥ 0 (0 turns backtracking off), not {self.backtrack_db}"
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
