"""The Python API: its documented example runs, and it writes what the `dip` commands write."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest
from skimage import data

import dip
import dip.api
from dip.cli import main
from dip.io import write_image
from dip.tasks.observation_dir import load_observation


def test_the_documented_example_runs() -> None:
    results = doctest.testmod(dip.api)
    assert results.failed == 0 and results.attempted >= 5


def test_files_and_arrays_give_what_the_commands_give(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    write_image(image, data.astronaut()[40:104, 180:244].astype(np.float32) / 255)
    cli, api = tmp_path / "cli", tmp_path / "api"
    assert main(["degrade", str(image), "--task", "inpainting", "--level", "random50", "--out", str(cli / "obs")]) == 0
    observation = dip.degrade(image, "inpainting", "random50", out=api / "obs")
    assert (cli / "obs/observed.png").read_bytes() == (api / "obs/observed.png").read_bytes()
    fit = ["--arch", "tiny", "--iterations", "4", "--quiet", "--threads", "1", "--device", "cpu"]  # bit-exact there
    assert main(["restore", str(cli / "obs"), *fit, "--out", str(cli / "run")]) == 0
    result = dip.restore(api / "obs", arch="tiny", iterations=4, threads=1, device="cpu", out=api / "run")
    assert (cli / "run/restored.png").read_bytes() == (api / "run/restored.png").read_bytes()
    assert result.record["fit"]["lr"] == 0.001 and result.record["output"] == "last output"  # restoration.ipynb
    assert main(["evaluate", str(cli / "run"), "--observation", str(cli / "obs"), "--out", str(cli / "m.json")]) == 0
    metrics = dip.evaluate(api / "run", observation, out=api / "m.json")
    theirs = json.loads((cli / "m.json").read_text())
    assert metrics["psnr"] == theirs["psnr"] and metrics["method"] == theirs["method"] == "dip-tiny"
    assert theirs["observation_dir"] == str(cli / "obs") and "observation_dir" not in metrics  # given as an object
    filled = dip.baseline(observation, "biharmonic", out=api / "bh")
    assert dip.evaluate(filled, observation)["psnr"] > metrics["psnr_observed"]


def test_evaluate_without_ground_truth_writes_no_scores(tmp_path: Path) -> None:
    photo = data.astronaut()[40:104, 180:244].astype(np.float32) / 255
    observation = dip.degrade(photo, "denoising", "25", observed=True, out=tmp_path / "obs")
    dip.baseline(observation, "tv", out=tmp_path / "tv")
    metrics = dip.evaluate(tmp_path / "tv", tmp_path / "obs", out=tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == metrics
    assert metrics["ground_truth"] is False and metrics["method"] == "tv"
    assert not {"psnr", "ssim", "protocol", "psnr_observed"} & set(metrics)
    scored = dip.evaluate(
        dip.baseline(dip.degrade(photo, "denoising", "25"), "tv"), dip.degrade(photo, "denoising", "25")
    )
    assert scored["ground_truth"] is True and scored["psnr"] > 20


@pytest.mark.parametrize("go_on", [True, False])
def test_evaluate_records_the_es_wmv_pick_and_its_psnr(go_on: bool) -> None:
    """At lr 1e-9 the net stands still: its outputs differ by the input noise alone (the fit's seeded draws, the same
    on any CPU), and the windowed variances are those of independent draws, ≥ 6 % apart where the rule decides
    (against rounding of ~1e-6): it picks iteration 1 and fires at 3, whatever the rounding."""
    clean = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    observation = dip.degrade(clean, "denoising", "impulse-2", seed=0)
    settings = {"iterations": 12, "lr": 1e-9, "es_window": 2, "es_patience": 2, "es_continue": go_on}
    result = dip.restore(observation, arch="tiny", device="cpu", **settings)
    metrics = dip.evaluate(result, observation)
    assert (metrics["es_selected_iteration"], metrics["es_stop_iteration"]) == (1, 4)
    assert np.isfinite(metrics["es_psnr_gt"])
    if go_on:  # the rule's pick is recorded beside the full run's output
        assert metrics["es_psnr_gt"] == result.record["early_stop"]["psnr_gt"] and metrics["iterations"] == 12
    else:  # the fit stopped and its output is the pick
        assert metrics["es_psnr_gt"] == metrics["psnr"]
        assert metrics["es_selected_iteration"] == metrics["selected_iteration"] < metrics["es_stop_iteration"]


def test_a_run_in_memory_and_its_observation_read_back_have_one_digest(tmp_path: Path) -> None:
    """An observation's digest is that of its files: a fit of the observation in memory is scored against the same
    observation read back from its folder (noise is not re-quantised away), and refused against another."""
    clean = data.astronaut()[40:104, 180:244].astype(np.float32) / 255
    observation = dip.degrade(clean, "denoising", "25", seed=0, out=tmp_path / "obs")
    result = dip.restore(observation, arch="tiny", iterations=2)
    assert result.record["observation_digest"] == dip.api.observation_digest(load_observation(tmp_path / "obs"))
    assert dip.evaluate(result, tmp_path / "obs")["psnr"] > 0
    other = dip.degrade(clean, "denoising", "25", seed=1)
    with pytest.raises(dip.errors.ConfigError, match="restores another observation than the observation given"):
        dip.evaluate(result, other)
