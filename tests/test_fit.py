"""The fit loop: resume equality, backtracking, the NaN guard, output averaging, early stopping, the trace."""

from __future__ import annotations

import logging
import math
import threading

import pytest
import torch
from torch import nn

from dip.errors import ConfigError, DivergenceError
from dip.fit import LAST_OUTPUT, FitInterrupted, FitProblem, FitSettings, fit
from dip.stopping import WindowedMovingVariance, make_stopping_rule, replay_patience


def small_problem(seed: int = 0, forward: nn.Module | None = None, with_clean: bool = True) -> FitProblem:
    """A 2-layer conv net fitted to a noisy 16×16 gradient (fast, deterministic)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2), nn.Conv2d(8, 3, 1), nn.Sigmoid()
    )
    generator = torch.Generator().manual_seed(seed)
    net_input = torch.rand(1, 4, 16, 16, generator=generator) * 0.1
    ramp = torch.linspace(0, 1, 16)
    clean = (ramp[None, None, :, None] * ramp[None, None, None, :]).expand(1, 3, 16, 16).contiguous()
    observed = (clean + 0.1 * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
    return FitProblem(net, net_input, forward or nn.Identity(), observed, clean if with_clean else None)


class StopAfter(threading.Event):
    """An event that reports itself set from the n-th check on (a Ctrl-C at a known iteration)."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.remaining = checks

    def is_set(self) -> bool:
        self.remaining -= 1
        return self.remaining < 0


def test_resumed_fit_equals_uninterrupted_fit(tmp_path):
    settings = FitSettings(iterations=30, reg_noise_std=0.03, ema=0.9, trace_every=5, checkpoint_every=7)
    reference = fit(small_problem(), settings, fingerprint="a")
    checkpoint = tmp_path / "fit.ckpt"
    with pytest.raises(FitInterrupted, match="iteration 12"):
        fit(small_problem(), settings, fingerprint="a", checkpoint=checkpoint, stop_event=StopAfter(12))
    assert checkpoint.exists()
    resumed = fit(small_problem(), settings, fingerprint="a", checkpoint=checkpoint)
    assert resumed.resumed_from == 12
    assert torch.equal(resumed.output, reference.output)
    assert [r["iteration"] for r in resumed.trace] == [r["iteration"] for r in reference.trace]
    assert [r["loss"] for r in resumed.trace] == [r["loss"] for r in reference.trace]


def test_checkpoint_of_another_fit_is_not_resumed_nor_overwritten(tmp_path):
    settings = FitSettings(iterations=10, checkpoint_every=5)
    checkpoint = tmp_path / "fit.ckpt"
    with pytest.raises(FitInterrupted):
        fit(small_problem(), settings, fingerprint="a", checkpoint=checkpoint, stop_event=StopAfter(6))
    saved = checkpoint.read_bytes()
    result = fit(small_problem(), settings, fingerprint="b", checkpoint=checkpoint)
    assert result.resumed_from is None and result.checkpoint is None
    assert checkpoint.read_bytes() == saved


@pytest.mark.parametrize(
    "settings",
    [
        FitSettings(iterations=30, reg_noise_std=0.03, trace_every=5),  # the last output: a final forward pass
        FitSettings(iterations=30, ema=0.9, trace_every=5),
        FitSettings(iterations=200, stopping="es-wmv", es_window=10, es_patience=20, reg_noise_std=0.0),
    ],
    ids=["last", "average", "es-wmv"],
)
def test_a_finished_fit_keeps_its_final_state_and_resumes_to_the_same_result(tmp_path, settings):
    """A run whose outputs could not be written resumes at the end: no more iterations, the same result."""
    checkpoint = tmp_path / "fit.ckpt"
    finished = fit(small_problem(), settings, fingerprint="a", checkpoint=checkpoint)
    assert finished.checkpoint == checkpoint and checkpoint.exists()
    resumed = fit(small_problem(), settings, fingerprint="a", checkpoint=checkpoint)
    assert resumed.resumed_from == finished.iterations == resumed.iterations
    assert torch.equal(resumed.output, finished.output)
    assert (resumed.selected_iteration, resumed.stop_reason) == (finished.selected_iteration, finished.stop_reason)
    assert [r["loss"] for r in resumed.trace] == [r["loss"] for r in finished.trace]


def test_corrupt_checkpoint_starts_afresh(tmp_path):
    checkpoint = tmp_path / "fit.ckpt"
    checkpoint.write_bytes(b"not a checkpoint")
    result = fit(small_problem(), FitSettings(iterations=5), fingerprint="a", checkpoint=checkpoint)
    assert result.resumed_from is None and result.iterations == 5


class NanAt(nn.Module):
    """A forward operator that returns NaN on the given calls (a diverging fit)."""

    def __init__(self, calls: set[int] | None = None) -> None:
        super().__init__()
        self.calls, self.count = calls, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count += 1
        if self.calls is None or self.count in self.calls:
            return x * math.nan
        return x


class NanGradientAt(nn.Module):
    """The identity, whose gradient is NaN on the given calls: the loss is finite, and the optimiser step that follows
    leaves the net's parameters NaN (a step that diverges, whatever the rounding)."""

    def __init__(self, calls: set[int]) -> None:
        super().__init__()
        self.calls, self.count = calls, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count += 1
        if self.count not in self.calls:
            return x
        x = x.clone()
        x.register_hook(lambda grad: torch.full_like(grad, math.nan))
        return x


class ShiftedOn(nn.Module):
    """The identity, but A·x = x + 10 on the given calls: the output (a sigmoid's, in [0, 1]) is then ≥ 9 away from an
    observation in [0, 1], a data term ≥ 81 where otherwise it is ≤ 1: a data-term PSNR drop of ≥ 19 dB."""

    def __init__(self, calls: range) -> None:
        super().__init__()
        self.calls, self.count = calls, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count += 1
        return x + 10 if self.count in self.calls else x


class BlindFor(nn.Module):
    """A·x = 0·x on the first `calls` calls, then the identity: no gradient reaches the net at first, so Adam leaves
    it as it is and (without input noise) its outputs repeat exactly.

    Blind for W − 1 calls, the outputs of iterations 0 … W − 1 are one image: ES-WMV's first full window (iteration
    W − 1) has a variance of rounding alone, and every later window holds outputs of a fit that moves (measured on
    `small_problem` with windows of 5 and 10: ≤ 2e-8 against ≥ 6e-6, 300× more): the rule picks iteration W − 1 and
    fires `patience` iterations later, whatever the rounding. ES-EMV's statistic is exactly 0 while the outputs
    repeat (δ = 0): blind for one call or more, it picks iteration 1."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls, self.count = calls, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count += 1
        return x * 0 if self.count <= self.calls else x


def test_nan_is_backtracked_and_never_returned():
    settings = FitSettings(iterations=40, trace_every=1, backtrack_every=5)
    result = fit(small_problem(forward=NanAt({13, 14})), settings)
    assert result.backtracks == 2
    assert torch.isfinite(result.output).all()


def test_persistent_nan_raises_divergence():
    settings = FitSettings(iterations=40, trace_every=1, max_backtracks=3)
    with pytest.raises(DivergenceError, match="diverged"):
        fit(small_problem(forward=NanAt()), settings)


def test_a_last_step_that_diverges_is_taken_back():
    """No next iteration checks the parameters of the last step: an output that is not finite after it is taken back
    as the NaN guard would, and the fit ends with the output of its last good parameters."""
    problem = small_problem(forward=NanGradientAt({2, 4}))
    with torch.no_grad():
        first = problem.net(problem.net_input)  # the output of the parameters the fit starts from
    # iteration 1's step leaves NaN parameters, which iteration 2's NaN guard takes back (to the snapshot of
    # iteration 0); iteration 3's step, the last, leaves NaN parameters again, which no next iteration checks
    result = fit(problem, FitSettings(iterations=4, trace_every=1))
    assert result.output_kind == LAST_OUTPUT and result.backtracks == 2
    assert torch.equal(result.output, first) and torch.equal(result.last_output, first)


def test_psnr_drop_triggers_backtracking(caplog):
    caplog.set_level(logging.INFO, logger="dip.fit_steps")
    settings = FitSettings(iterations=20, backtrack_db=5.0, backtrack_every=5, trace_every=5)
    result = fit(small_problem(forward=ShiftedOn(range(11, 12))), settings)  # iteration 10: a drop of ≥ 19 dB
    assert "iteration 10: data-term PSNR fell from" in caplog.text and result.backtracks == 1
    assert [row["iteration"] for row in result.trace] == [0, 5, 15, 19]  # a restored iteration takes no step
    assert torch.isfinite(result.output).all()


def test_output_kinds():
    last = fit(small_problem(), FitSettings(iterations=5))
    averaged = fit(small_problem(), FitSettings(iterations=5, ema=0.99))
    assert last.output_kind == "last output"
    assert averaged.output_kind.startswith("average")
    assert last.output.shape == averaged.output.shape == (1, 3, 16, 16)


def test_trace_columns_and_ground_truth_only_for_plots():
    with_truth = fit(small_problem(), FitSettings(iterations=20, trace_every=5, ema=0.9))
    without = fit(small_problem(with_clean=False), FitSettings(iterations=20, trace_every=5, ema=0.9))
    assert [r["iteration"] for r in with_truth.trace] == [0, 5, 10, 15, 19]
    assert all(math.isfinite(r["psnr_gt"]) and math.isfinite(r["psnr_gt_avg"]) for r in with_truth.trace)
    assert all(math.isnan(r["psnr_gt"]) for r in without.trace)
    # the clean image changes no decision: the outputs are identical
    assert torch.equal(with_truth.output, without.output)


def test_fit_reduces_the_data_term():
    result = fit(small_problem(), FitSettings(iterations=150, reg_noise_std=0.0, trace_every=10))
    assert result.trace[-1]["loss"] < 0.5 * result.trace[0]["loss"]
    assert result.notes == []


def test_a_fit_that_ends_worse_than_it_began_says_so(caplog):
    # from iteration 15 on the data term is ≥ 81 (`ShiftedOn`), above its start (≤ 1), and no check backtracks
    result = fit(small_problem(forward=ShiftedOn(range(16, 21))), FitSettings(iterations=20, trace_every=5))
    assert len(result.notes) == 1 and "did not converge" in result.notes[0]
    assert result.notes[0] in caplog.text


@pytest.mark.parametrize(
    "bad",
    [
        {"iterations": 0},
        {"lr": 0},
        {"ema": 1.0},
        {"reg_noise_std": -1},
        {"stopping": "magic"},
        {"backtrack_db": -1},
        {"lr": math.inf},
        {"lr": math.nan},
        {"reg_noise_std": math.nan},
        {"backtrack_db": math.nan},
        {"seed": -1},
    ],
)
def test_bad_settings_are_refused(bad):
    with pytest.raises(ConfigError, match=next(iter(bad)).split("_")[0]):
        FitSettings(**bad)


def test_es_wmv_picks_the_variance_minimum_and_stops_after_patience():
    rule = WindowedMovingVariance(window=3, patience=4)
    # outputs that settle (variance falls), then wander off (variance rises)
    values = [0.0, 0.5, 0.6, 0.62, 0.63, 0.63, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    stopped_at = None
    for iteration, value in enumerate(values):
        rule.update(iteration, torch.full((1, 1, 2, 2), value))
        if rule.fired() is not None:
            stopped_at = iteration
            break
    assert rule.best_iteration == 5
    assert stopped_at == 9
    assert rule.fired() == (9, 5)


def test_es_wmv_keeps_its_first_firing_when_read_late():
    """Read only after a later minimum, the rule still reports where it fired first and what it picked then."""
    rule = WindowedMovingVariance(window=3, patience=2)
    values = [0.0, 0.5, 0.6, 0.6, 2.0, 4.0, 6.0, 6.0, 6.0, 6.0]  # minimum at 3, fires at 5; new minimum (0) at 8
    steps = [rule.update(iteration, torch.full((1, 1, 2, 2), value)) for iteration, value in enumerate(values)]
    assert [step is None for step in steps] == [True, True] + [False] * 8
    assert [bool(step.fires) for step in steps[2:]] == [False, False, False, True, False, False, False, False]
    assert rule.best_iteration == 8
    assert rule.fired() == (5, 3)


def test_es_wmv_selects_an_output_in_a_fit():
    settings = FitSettings(iterations=200, stopping="es-wmv", es_window=10, es_patience=20, reg_noise_std=0.0)
    result = fit(small_problem(), settings)
    assert result.output_kind.startswith("es-wmv")
    assert result.selected_iteration <= result.iterations


def test_es_continue_fits_all_iterations_and_records_the_rules_pick():
    common = {"iterations": 200, "stopping": "es-wmv", "es_window": 10, "es_patience": 20, "reg_noise_std": 0.0}
    stopped = fit(small_problem(forward=BlindFor(9)), FitSettings(**common))
    watched = fit(small_problem(forward=BlindFor(9)), FitSettings(**common, es_continue=True))
    fixed = fit(small_problem(forward=BlindFor(9)), FitSettings(**{**common, "stopping": "fixed"}))
    assert (stopped.iterations, stopped.selected_iteration) == (30, 9) and watched.iterations == 200
    assert watched.early_stop is not None
    assert watched.early_stop["stop_iteration"] == stopped.iterations
    assert watched.early_stop["selected_iteration"] == stopped.selected_iteration
    clean = small_problem().clean
    psnr = -10 * math.log10(float(torch.mean((stopped.output.clamp(0, 1) - clean) ** 2)))
    assert watched.early_stop["psnr_gt"] == pytest.approx(psnr, abs=1e-4)
    assert watched.output_kind == "last output"
    assert torch.equal(watched.output, fixed.output)


@pytest.mark.parametrize("es_continue", [False, True])
def test_reading_the_rule_only_where_the_loop_syncs_changes_no_pick(monkeypatch, es_continue):
    """On CUDA the fit reads the rule's decision only at trace/log iterations; stop and pick must not change."""
    common = {"iterations": 200, "stopping": "es-wmv", "es_window": 10, "es_patience": 20, "reg_noise_std": 0.0}
    settings = FitSettings(**common, trace_every=25, es_continue=es_continue)
    every = fit(small_problem(forward=BlindFor(9)), settings, progress=False)  # fires at iteration 29 (BlindFor)
    monkeypatch.setattr("dip.fit._polls_every_iteration", lambda device: False)
    late = fit(small_problem(forward=BlindFor(9)), settings, progress=False)  # reads it at 30 (a log line)
    assert torch.equal(every.output, late.output)
    assert (every.selected_iteration, every.output_kind, every.early_stop) == (
        late.selected_iteration,
        late.output_kind,
        late.early_stop,
    )
    if es_continue:
        assert every.iterations == late.iterations == 200
    else:
        assert (every.iterations, late.iterations) == (30, 31)  # it ran on to the next sync point, then stopped
        assert every.stop_reason == late.stop_reason


def test_replaying_the_traced_variance_reproduces_the_live_rule():
    """The trace's es_variance lets a patience be tried after the fit: replayed, it gives the live rule's stop/pick."""
    common = {"iterations": 200, "stopping": "es-wmv", "es_window": 10, "reg_noise_std": 0.0, "trace_every": 1}
    watched = fit(small_problem(), FitSettings(**common, es_patience=200, es_continue=True))
    iterations = [row["iteration"] for row in watched.trace]
    variances = [row["es_variance"] for row in watched.trace]
    assert all(math.isnan(v) for v in variances[:9]) and all(math.isfinite(v) for v in variances[9:])
    for patience in (5, 20, 60):
        live = fit(small_problem(), FitSettings(**common, es_patience=patience))
        stop, pick = replay_patience(iterations, variances, patience)
        assert (stop, pick) == (live.iterations if live.iterations < 200 else None, live.selected_iteration)
    fixed = fit(small_problem(), FitSettings(iterations=20, trace_every=1))
    assert all(math.isnan(row["es_variance"]) for row in fixed.trace)
    with pytest.raises(ValueError, match="variance series is empty"):
        replay_patience([0, 1], [math.nan, math.nan], 5)


def test_es_continue_needs_a_stopping_rule():
    with pytest.raises(ConfigError, match="es_continue watches an early-stopping rule"):
        FitSettings(es_continue=True)


def test_unknown_stopping_rule():
    with pytest.raises(ConfigError, match="stopping rule"):
        make_stopping_rule("never", **FitSettings().rule_settings())


def test_es_wmv_running_variance_equals_the_direct_one():
    rule = WindowedMovingVariance(window=7, patience=100)
    generator = torch.Generator().manual_seed(0)
    for iteration in range(40):
        rule.update(iteration, torch.rand(1, 3, 4, 4, generator=generator) * (1 + iteration / 10))
        direct = float(torch.stack(rule.buffer).var(dim=0, unbiased=False).mean())
        assert rule.variance() == pytest.approx(direct, rel=1e-4)
        assert len(rule.buffer) == min(iteration + 1, 7)


def test_es_wmv_resumes_from_its_state():
    first, second = WindowedMovingVariance(window=5, patience=50), WindowedMovingVariance(window=5, patience=50)
    outputs = [torch.full((1, 1, 2, 2), float(v)) for v in (0, 3, 1, 4, 1, 5, 9, 2, 6, 5)]
    for iteration, output in enumerate(outputs[:6]):
        first.update(iteration, output)
    second.load_state_dict(first.state_dict())
    for iteration, output in enumerate(outputs[6:], start=6):
        first_step, second_step = first.update(iteration, output), second.update(iteration, output)
        assert first_step is not None and second_step is not None
        assert [bool(flag) for flag in first_step] == [bool(flag) for flag in second_step]
    assert first.variance() == second.variance()
    assert (first.best_iteration, first.fired()) == (second.best_iteration, second.fired())


def test_es_wmv_resumes_from_a_checkpoint_of_plain_numbers():
    """Checkpoints written before the rule kept its state on the device hold floats and ints; they still resume."""
    outputs = [torch.full((1, 1, 2, 2), float(v)) for v in (0, 3, 1, 4, 1, 5, 9, 2, 6, 5, 8, 9, 7, 9)]
    live, legacy = WindowedMovingVariance(window=3, patience=4), WindowedMovingVariance(window=3, patience=4)
    for iteration, output in enumerate(outputs[:6]):
        live.update(iteration, output)
    state = live.state_dict()
    assert live.best_iteration is not None
    old_format = {key: state[key] for key in ("buffer", "total", "total_squares", "updates")}
    old_format |= {"best_variance": float(state["best_variance"]), "best_iteration": live.best_iteration}
    legacy.load_state_dict(old_format)
    for iteration, output in enumerate(outputs[6:], start=6):
        live.update(iteration, output)
        legacy.update(iteration, output)
    assert live.fired() is not None
    assert (live.best_iteration, live.fired()) == (legacy.best_iteration, legacy.fired())


def test_dip_restores_fit_flags_are_the_fit_settings():
    """One flag per field, spelt like it, with its choices, and its default stated as the field's (the task's paper
    value where it has one); a flag left out is None so that the field's default applies."""
    import argparse
    import dataclasses

    from dip.api import FIT_OVERRIDES
    from dip.cli.restore import add_fit_arguments

    parser = argparse.ArgumentParser()
    add_fit_arguments(parser.add_argument_group())
    actions = {action.dest: action for action in parser._actions if action.dest != "help"}
    assert list(actions) == [setting.name for setting in dataclasses.fields(FitSettings)]
    for setting in dataclasses.fields(FitSettings):
        action = actions[setting.name]
        assert action.option_strings == ["--" + setting.name.replace("_", "-")] and action.default is None
        assert action.choices == setting.metadata.get("choices")
        if setting.name in FIT_OVERRIDES:
            assert "(default: the task's paper value)" in action.help
        elif setting.default is None:  # the help says what it defaults to
            assert "(default: " in action.help and "(default: None)" not in action.help
        elif not isinstance(setting.default, bool):
            assert f"(default: {setting.default})" in action.help
    given = ["--backtrack-db", "0", "--es-continue", "--noise-sigma", "25", "--watch", "es-emv", "noise-level"]
    assert vars(parser.parse_args(given)) == {
        **dict.fromkeys(actions),
        "backtrack_db": 0.0,
        "es_continue": True,
        "noise_sigma": 25.0,
        "watch": ["es-emv", "noise-level"],
    }
    assert parser.parse_args(["--watch"]).watch == []  # the flag alone: no rule watches
