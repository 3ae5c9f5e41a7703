"""DIP-TV and Bayesian DIP (SGLD) as fit options: each on a small denoising problem where its paper reports it does not
fall behind the plain fit (a 32×32 crop of astronaut, σ = 25, the tiny net fitted long enough to start fitting the
noise)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data

import dip
from dip.errors import ConfigError
from dip.fit import FitSettings
from dip.fit_variants import total_variation

ITERATIONS = 300
PLAIN = {"arch": "tiny", "iterations": ITERATIONS, "threads": 1, "stopping": "fixed", "watch": (), "ema": 0.0}


@pytest.fixture(scope="module")
def problem() -> tuple[dip.Observation, float]:
    clean = data.astronaut()[100:132, 180:212].astype(np.float32) / 255
    observation = dip.degrade(clean, "denoising", "25", seed=0)
    plain = dip.evaluate(dip.restore(observation, **PLAIN), observation)["psnr"]
    return observation, plain


def test_dip_tv_does_not_fall_behind_the_plain_fit(problem):
    observation, plain = problem
    restored = dip.restore(observation, **PLAIN, tv_weight=1e-2)
    assert restored.record["fit"]["tv_weight"] == 1e-2
    assert dip.evaluate(restored, observation)["psnr"] >= plain


def test_bayesian_dip_posterior_mean_does_not_fall_behind_the_plain_fit(problem):
    observation, plain = problem
    sgld = {"langevin_sigma": 2.0, "weight_decay": 5e-8, "langevin_burnin": ITERATIONS // 3, "langevin_every": 10}
    restored = dip.restore(observation, **PLAIN, **sgld)
    assert restored.record["output"] == "posterior mean of 19 outputs (SGLD, after 100 iterations)"
    assert dip.evaluate(restored, observation)["psnr"] >= plain


def test_total_variation_of_known_images():
    flat = torch.full((1, 3, 8, 8), 0.5)
    assert float(total_variation(flat)) == pytest.approx(1e-4, abs=1e-6)  # sqrt(ε): no variation at all
    steps = torch.zeros(1, 1, 4, 4)
    steps[..., :, 2:] = 1.0  # one vertical edge of height 1 across 4 rows: 4 of the 16 pixels see |Δx| = 1
    assert float(total_variation(steps)) == pytest.approx(4 / 16, abs=1e-3)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tv_weight": -1.0}, "tv_weight must be"),
        ({"langevin_sigma": math.nan}, "langevin_sigma must be"),
        ({"langevin_every": 0}, "langevin_every"),
    ],
)
def test_bad_variant_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        FitSettings(**settings)


def test_a_resumed_langevin_fit_equals_the_uninterrupted_one(tmp_path):
    from dip.fit import FitInterrupted, fit
    from tests.test_fit import StopAfter, small_problem

    settings = FitSettings(iterations=30, langevin_sigma=2.0, langevin_burnin=5, langevin_every=3, tv_weight=0.01)
    reference = fit(small_problem(), settings, fingerprint="a")
    checkpoint = tmp_path / "fit.ckpt"
    with pytest.raises(FitInterrupted):
        fit(small_problem(), settings, fingerprint="a", checkpoint=checkpoint, stop_event=StopAfter(12))
    resumed = fit(small_problem(), settings, fingerprint="a", checkpoint=checkpoint)
    assert resumed.resumed_from == 12 and reference.output_kind.startswith("posterior mean of 8 outputs")
    assert torch.equal(resumed.output, reference.output)
