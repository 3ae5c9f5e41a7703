"""`dip combine`: the mean of runs over seeds and a fit's last output as runs of their own (the paper's three
denoising figures), and their failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage import data

import dip
from dip.cli import main
from dip.errors import ConfigError
from dip.failures import UpstreamFailure
from dip.io import read_image

FIT = {"arch": "tiny", "iterations": 6, "threads": 1}


@pytest.fixture(scope="module")
def fits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """One noisy observation and two averaged fits of it, seeds 0 and 1."""
    root = tmp_path_factory.mktemp("combine")
    image = data.astronaut()[100:132, 180:212].astype(np.float32) / 255
    observation = root / "obs"
    dip.degrade(image, "denoising", "25", seed=0, out=observation)
    runs = [root / f"seed{seed}" for seed in (0, 1)]
    for seed, run in zip((0, 1), runs, strict=True):
        dip.restore(observation, **FIT, ema=0.9, seed=seed, out=run)
    return observation, runs


def test_an_averaging_fit_keeps_its_last_output(fits: tuple[Path, list[Path]]) -> None:
    _, runs = fits
    record = json.loads((runs[0] / "record.json").read_text())
    assert record["output"].startswith("average of outputs")
    assert (runs[0] / "last.png").is_file()
    assert not np.array_equal(read_image(runs[0] / "last.png"), read_image(runs[0] / "restored.png"))


def test_a_fit_that_chose_its_last_output_writes_no_copy(tmp_path: Path) -> None:
    observation = dip.degrade(data.camera()[:32, :32, None].astype(np.float32) / 255, "denoising", "25", seed=0)
    dip.restore(observation, **FIT, ema=0.0, out=tmp_path / "run")
    assert not (tmp_path / "run/last.png").exists()
    with pytest.raises(ConfigError, match=r"run: the run has no last.png \(last output\)"):
        dip.combine([tmp_path / "run"], output="last")


def test_a_mean_of_two_methods_takes_the_name_it_is_given(fits: tuple[Path, list[Path]], tmp_path: Path) -> None:
    """DIP and a baseline averaged are neither's seed mean: refused unnamed, recorded under the name given."""
    observation, runs = fits
    dip.baseline(observation, "nlm", out=tmp_path / "nlm")
    with pytest.raises(ConfigError, match="different methods needs a name of its own"):
        dip.combine([runs[0], tmp_path / "nlm"])
    record = dip.combine([runs[0], tmp_path / "nlm"], method="dip-and-nlm").record
    assert record["method"] == "dip-and-nlm" and record["variant"] == ""


def test_the_seed_mean_is_the_pixel_mean_and_scores_as_a_run(fits: tuple[Path, list[Path]], tmp_path: Path) -> None:
    observation, runs = fits
    out = tmp_path / "mean"
    assert main(["combine", *map(str, runs), "--out", str(out)]) == 0
    expected = (read_image(runs[0] / "restored.png") + read_image(runs[1] / "restored.png")) / 2
    assert np.abs(read_image(out / "restored.png") - expected).max() <= 1 / 255 + 1e-6  # PNG rounding
    record = json.loads((out / "record.json").read_text())
    assert record["method"] == "dip-tiny-mean2" and record["seeds"] == [0, 1] and record["variant"] == "tiny"
    assert record["combined_from"] == [str(run) for run in runs]
    scores = dip.evaluate(out, observation)
    single = [dip.evaluate(run, observation)["psnr"] for run in runs]
    assert scores["method"] == "dip-tiny-mean2" and scores["psnr"] > min(single)


def test_the_last_output_is_a_run_of_its_own(fits: tuple[Path, list[Path]], tmp_path: Path) -> None:
    _, runs = fits
    result = dip.combine([runs[0]], output="last", method="dip-tiny-last", out=tmp_path / "last")
    assert (tmp_path / "last/restored.png").read_bytes() == (runs[0] / "last.png").read_bytes()
    assert result.record["method"] == "dip-tiny-last" and result.record["selected_iteration"] == 5


def test_runs_of_different_observations_are_refused(fits: tuple[Path, list[Path]], tmp_path: Path) -> None:
    _, runs = fits
    other = dip.degrade(data.camera()[:32, :32, None].astype(np.float32) / 255, "denoising", "25", seed=0)
    dip.restore(other, **FIT, out=tmp_path / "other")
    with pytest.raises(ConfigError, match="restores another observation than"):
        dip.combine([runs[0], tmp_path / "other"])


def test_a_failed_fit_is_passed_on(
    fits: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, runs = fits
    failed = tmp_path / "seed1"
    failed.mkdir()
    upstream = {"status": "failed", "stage": "restore", "error": "diverged", "log": "r.log", "identity": {"seed": 1}}
    (failed / "failure.json").write_text(json.dumps(upstream))
    with pytest.raises(UpstreamFailure, match=r"restore failed: diverged \(log: r.log\)"):
        dip.combine([runs[0], failed])
    out = tmp_path / "mean"
    assert main(["combine", str(runs[0]), str(failed), "--out", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    command = ["combine", str(failed), str(runs[0]), "--method", "dip-tiny-mean2", "--out", str(out)]
    assert main([*command, "--record-failure", "combine.log"]) == 0
    failure = json.loads((out / "failure.json").read_text())
    assert (failure["stage"], failure["error"], failure["log"]) == ("restore", "diverged", "r.log")
    assert failure["identity"]["method"] == "dip-tiny-mean2"
