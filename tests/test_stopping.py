"""The early-stopping rules on synthetic traces whose answer is known, and every rule watching one fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dip.errors import ConfigError
from dip.fit import FitSettings, fit
from dip.stopping import ExponentialMovingVariance, NoiseLevelCrossing, applicable_rules, make_stopping_rule
from tests.test_fit import small_problem


def feed(rule, outputs, losses=None) -> tuple[tuple[int, int] | None, int | None, list[int]]:
    """Run a rule over a trace as a fit does: (where it fired, its pick, the iterations it fired at)."""
    fired_at = []
    for iteration, output in enumerate(outputs):
        loss = None if losses is None else torch.tensor(losses[iteration])
        step = rule.update(iteration, output, loss)
        if step is not None and bool(step.fires):
            fired_at.append(iteration)
    return rule.fired(), rule.best_iteration, fired_at


def authors_es_emv(outputs: list[np.ndarray], alpha: float, patience: int) -> tuple[int | None, int]:
    """The authors' ES-EMV (`EWMVar` of ES_EMV.ipynb) written out: (first iteration it says stop, its best epoch),
    with the variance as a mean over pixels and the first output only initialising the average."""
    ema, emv, best, best_epoch, wait = outputs[0], 0.0, math.inf, 0, 0
    for epoch, image in enumerate(outputs[1:], start=1):
        delta = image - ema
        ema = np.clip(ema + alpha * delta, 0, 1)
        emv = (1 - alpha) * (emv + alpha * float(np.mean(delta**2)))
        if emv < best:
            best, best_epoch, wait = emv, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch, best_epoch
    return None, best_epoch


def jittery_trace(quiet: range, length: int, seed: int = 0) -> list[np.ndarray]:
    """Outputs around a fixed image: large random jitter, small inside `quiet` (where a variance rule must pick)."""
    rng = np.random.default_rng(seed)
    base = rng.random((1, 3, 8, 8))
    return [
        np.clip(base + (0.002 if t in quiet else 0.2) * rng.standard_normal(base.shape), 0, 1).astype(np.float32)
        for t in range(length)
    ]


@pytest.mark.parametrize("patience", [70, 100])
def test_es_emv_matches_the_authors_update_and_picks_in_the_quiet_stretch(patience):
    """A patience longer than the EMV's warm-up (it starts at α(1 − α)·δ², an early minimum the quiet stretch beats
    only after some 20 iterations)."""
    outputs = jittery_trace(range(40, 80), 250)
    fired, pick, fired_at = feed(
        ExponentialMovingVariance(alpha=0.1, patience=patience), [torch.from_numpy(o) for o in outputs]
    )
    stop, best = authors_es_emv(outputs, 0.1, patience)
    assert fired is not None and fired == (stop, best) and fired_at == [stop]
    assert 40 < best < 80  # the EMV lags the outputs by a few iterations, then stays low while they are quiet
    assert pick == best


def test_noise_level_rule_fires_where_the_data_term_crosses_sigma_squared():
    """σ = 25: the rule fires at the first iteration whose MSE to the observation is below (25/255)², once."""
    variance = (25 / 255) ** 2
    losses = [variance * (2.0 - t / 50) for t in range(120)]  # crosses σ² between iterations 50 and 51
    losses[80] = 2 * variance  # a later jump above σ² changes nothing: the first crossing is final
    outputs = [torch.zeros(1, 3, 4, 4)] * len(losses)
    fired, pick, fired_at = feed(NoiseLevelCrossing(25.0), outputs, losses)
    assert fired == (51, 51) and pick == 51 and fired_at == [51]


def test_noise_level_rule_needs_sigma():
    with pytest.raises(ConfigError, match="known noise σ"):
        make_stopping_rule("noise-level", **FitSettings().rule_settings())
    with pytest.raises(ConfigError, match="known noise σ"):
        FitSettings(watch=("noise-level",))
    assert applicable_rules(None) == ("es-wmv", "es-emv")
    assert applicable_rules(25.0) == ("es-wmv", "es-emv", "noise-level")


def test_unknown_watched_rule():
    with pytest.raises(ConfigError, match="watch: 'fixed' is not one of"):
        FitSettings(watch=("fixed",))


def test_watching_changes_nothing_and_records_each_rule_as_its_own_stop_would():
    common = {"iterations": 200, "es_window": 10, "es_patience": 20, "reg_noise_std": 0.0, "noise_sigma": 25.0}
    alone = fit(small_problem(), FitSettings(**common, watch=()))
    watched = fit(small_problem(), FitSettings(**common))
    assert torch.equal(alone.output, watched.output)
    assert [row["loss"] for row in alone.trace] == [row["loss"] for row in watched.trace]
    assert alone.watched == {}
    assert set(watched.watched) == {"es-wmv", "es-emv", "noise-level"}
    for rule, record in watched.watched.items():
        stopped = fit(small_problem(), FitSettings(**common, stopping=rule, es_continue=True, watch=()))
        assert record["stop_iteration"] == stopped.early_stop["stop_iteration"], rule
        assert record["selected_iteration"] == stopped.early_stop["selected_iteration"], rule
        assert record["psnr_gt"] == pytest.approx(stopped.early_stop["psnr_gt"], abs=1e-4), rule


def test_restore_and_evaluate_record_every_applicable_rule(tmp_path):
    import dip

    clean = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    gaussian = dip.degrade(clean, "denoising", "25")
    result = dip.restore(gaussian, arch="tiny", iterations=3, threads=1, out=tmp_path / "run")
    assert result.record["fit"]["noise_sigma"] == 25.0
    assert set(result.record["watched"]) == {"es-wmv", "es-emv", "noise-level"}
    metrics = dip.evaluate(tmp_path / "run", gaussian)
    assert {"watch_es_emv_psnr_gt", "watch_noise_level_stop_iteration", "watch_es_wmv_selected_iteration"} <= set(
        metrics
    )
    impulse = dip.degrade(clean, "denoising", "impulse-2")
    record = dip.restore(impulse, arch="tiny", iterations=3, threads=1, stopping="fixed", watch=["es-emv"]).record
    assert list(record["watched"]) == ["es-emv"] and record["fit"]["noise_sigma"] is None


def test_watch_list_becomes_restore_flags():
    from dip.workflow_config import fit_flags

    assert fit_flags({"watch": ["es-wmv", "es-emv"], "iterations": 5}) == ["--iterations 5", "--watch es-wmv es-emv"]
    assert fit_flags({"watch": []}) == ["--watch"]


def test_the_config_check_refuses_the_noise_level_rule_where_sigma_is_unknown():
    from dip.workflow_config import check_tasks

    config = {
        "tasks": {"denoising": ["25", "impulse-2"]},
        "seeds": [0],
        "variants": {"tiny": {"preset": "tiny"}},
        "fit": {"denoising": {"variants": ["tiny"], "watch": ["es-emv", "noise-level"]}},
    }
    with pytest.raises(ConfigError, match="noise-level rule needs a known Gaussian σ, which denoising impulse-2"):
        check_tasks(config)
    config["fit"]["denoising"]["levels"] = {"impulse-2": {"watch": ["es-emv"]}}
    check_tasks(config)
