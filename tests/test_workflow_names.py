"""File names are data: image names with spaces, quotes, unicode, `$`, backticks, `;` and a leading `-` reach every
job's command line quoted, run through the workflow like any other, and run nothing; a name with a control character
is refused before any job."""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dip.io import write_image
from tests.test_workflow import TEST_CONFIG, dry_run_error, snakemake, workflow_copy

NAMES = ["p$(touch PWNED);touch PWNED2 `touch PWNED3`", '-café é it\'s "q" $HOME & touch PWNED4 |']
"""Each would run `touch PWNED…` (or expand `$HOME`) in an unquoted command line."""
MASK = "mask $(touch PWNED5)'"


def photo_folder(folder: Path, names: list[str]) -> Path:
    rng = np.random.default_rng(0)
    for name in names:
        write_image(folder / f"{name}.png", rng.random((32, 32, 3)).astype(np.float32))
    return folder


def assert_nothing_ran(*folders: Path) -> None:
    ran = [path for folder in folders for path in folder.rglob("PWNED*")]
    assert not ran, ran


@pytest.mark.parametrize("batch_fits", [1, 2])
def test_every_command_line_quotes_the_names(tmp_path: Path, batch_fits: int) -> None:
    """A dry run of every rule on such names (and a mask file's): each command keeps each name whole, one word of the
    shell; with `batch_fits` the batch's fit and its copy to each run folder too."""
    photos = photo_folder(tmp_path / "photos", [*NAMES, MASK])
    config = copy.deepcopy(TEST_CONFIG)
    config["datasets"] = {"photos": {"source": str(photos), "images": NAMES, "masks": {NAMES[0]: MASK}}}
    config["tasks"] = {"denoising": ["25"], "inpainting": ["file"]}
    config["fit"]["denoising"].update(seeds=[0, 1], outputs=["last", "seed-mean"])
    config["baselines"] = {"denoising": ["nlm"], "inpainting": ["biharmonic"]}
    config["batch_fits"] = batch_fits
    folder = workflow_copy(tmp_path / "wf", config)
    result = snakemake(folder, "-n", "-p")
    assert result.returncode == 0, result.stderr + result.stdout
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?Shell command: (.*)$", result.stdout, re.MULTILINE)
    named = {}
    for rule, command in jobs:
        names = [name for name in [*NAMES, MASK] if name in command]
        words = shlex.split(command)
        assert all(any(name in word for word in words) for name in names), command
        named[rule] = named.get(rule, False) or bool(names)
    per_image = {"export_image", "degrade", "restore", "last_output", "seed_mean", "baseline", "evaluate", "aggregate"}
    assert {rule for rule, has_name in named.items() if has_name} == per_image | (
        {"fit_batch"} if batch_fits > 1 else set()
    )
    assert any(f"--mask-file {shlex.quote(f'results/photos/images/{MASK}/{MASK}.png')}" in c for _, c in jobs)
    assert_nothing_ran(tmp_path)


@pytest.mark.slow
def test_images_with_any_name_are_benchmarked_and_run_nothing(tmp_path: Path) -> None:
    name = "".join(reversed(NAMES))  # one image (a job fewer per stage), its name starting with "-"
    photos = photo_folder(tmp_path / "photos", [name])
    config = copy.deepcopy(TEST_CONFIG)
    config["datasets"] = {"photos": {"source": str(photos)}}
    config["tasks"] = {"denoising": ["25"]}
    config["fit"] = {"denoising": {"variants": ["tiny"], "iterations": 2, "trace_every": 1}}
    config["baselines"] = {"denoising": ["nlm"]}
    folder = workflow_copy(tmp_path / "wf", config)
    result = snakemake(folder, "--cores", "2", "results/summary.csv")
    assert result.returncode == 0, result.stderr[-5000:]
    assert_nothing_ran(tmp_path)
    summary = pd.read_csv(folder / "results/summary.csv", dtype={"image": str})
    assert summary.status.eq("ok").all() and summary.psnr.notna().all()
    assert sorted(zip(summary.image, summary.method, strict=True)) == [(name, "dip-tiny"), (name, "nlm")]
    assert (folder / "results/photos/denoising/25" / name / "dip-tiny/seed0/restored.png").is_file()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "two\nlines",
            "datasets.photos.source: dataset folder {photos}: image 'two\\nlines.png' has a control character",
        ),
        ("a{b}", "datasets.photos: image 'a{{b}}' has a brace in its name, which Snakemake would read as a wildcard"),
    ],
    ids=["newline", "brace"],
)
def test_a_name_no_path_can_hold_is_refused_before_any_job(tmp_path: Path, name: str, message: str) -> None:
    photos = photo_folder(tmp_path / "photos", ["fine", name])
    config = copy.deepcopy(TEST_CONFIG)
    config["datasets"] = {"photos": {"source": str(photos)}}
    error = dry_run_error(workflow_copy(tmp_path / "wf", config))
    assert f"Invalid configuration: {message.format(photos=photos)}" in error
