"""The whole paper grid (`config/paper.yaml`) end to end in smoke mode, on the data available offline: every task,
level and variant of the paper's configuration, two iterations per fit, down to the tables, figures and report.

The registry sets (Set5, the DIP images) are served from `../shared/data` through a pre-filled download cache (the
registry checks their SHA-256 as after a download); the CBM3D colour set is a folder of what is available offline
(its F16); sets absent here are left out with one line each. One image per set, centre-cropped to 128 px (the
datasets' `crop` key), keeps the run within the test suite's budget.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from dip.workflow_config import level_fit
from tests.test_workflow import ENV, REPO, snakemake, workflow_copy

SMOKE_ITERATIONS = 2
CROP = 128
IMAGES_PER_SET = {
    "set5": ["butterfly"],
    "dip-inpainting": ["inpainting-vase"],
    "dip-restoration": ["restoration-barbara"],
}
CBM3D_OFFLINE = {"image_F16_512rgb": "dip-paper/denoising/F16_GT.png"}


def fill_cache(shared_data: Path, cache: Path) -> None:
    """Copy the registry sets available in ../shared/data where a download would put them."""
    for name in ("set5", "dip-paper"):
        with (shared_data / name / "MANIFEST.tsv").open() as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                target = cache / name / row["file"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shared_data / name / row["file"], target)


def offline_paper_config(shared_data: Path, folder: Path) -> dict:
    """config/paper.yaml with each set cut to what is here (one image each); absent sets left out, each said."""
    config = copy.deepcopy(yaml.safe_load((REPO / "config/paper.yaml").read_text()))
    cbm3d = folder / config["datasets"]["cbm3d-color9"]["source"]
    cbm3d.mkdir(parents=True)
    for image, source in CBM3D_OFFLINE.items():
        shutil.copyfile(shared_data / source, cbm3d / f"{image}.png")
    IMAGES_PER_SET["cbm3d-color9"] = list(CBM3D_OFFLINE)
    for name in list(config["datasets"]):
        if name not in IMAGES_PER_SET:
            print(f"left out: dataset {name!r} ({config['datasets'][name]['source']}) is not available offline")
            del config["datasets"][name]
            continue
        dataset = config["datasets"][name]
        dataset["images"] = IMAGES_PER_SET[name]
        dataset["crop"] = CROP
        if "masks" in dataset:
            dataset["masks"] = {image: mask for image, mask in dataset["masks"].items() if image in dataset["images"]}
    return config


@pytest.mark.slow
def test_the_whole_paper_grid_runs_in_smoke_mode(shared_dir: Path, tmp_path: Path) -> None:
    shared_data = shared_dir / "data"
    fill_cache(shared_data, tmp_path / "cache")
    folder = tmp_path / "wf"
    workflow_copy(folder, yaml.safe_load((REPO / "config/config.yaml").read_text()))
    config = offline_paper_config(shared_data, folder)
    (folder / "config/paper.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    ENV["DIP_DATA_DIR"] = str(tmp_path / "cache")
    try:
        args = ["--configfile", "config/paper.yaml", "--config", f"smoke_iterations={SMOKE_ITERATIONS}"]
        run = snakemake(folder, *args, "--cores", "2")
        assert run.returncode == 0, run.stderr[-5000:]
        report = snakemake(folder, *args, "--report", "report.zip")
        assert report.returncode == 0, report.stderr[-5000:]
    finally:
        del ENV["DIP_DATA_DIR"]

    results = folder / "results"
    summary = pd.read_csv(results / "summary.csv", dtype={"level": str})
    assert summary.status.eq("ok").all(), summary[summary.status != "ok"].to_dict("records")
    grid = {task: {str(level) for level in levels} for task, levels in config["tasks"].items()}
    assert {task: set(summary.level[summary.task == task]) for task in grid} == grid
    dip_runs = summary[summary.variant.fillna("") != ""]
    assert dip_runs.iterations.eq(SMOKE_ITERATIONS).all() and dip_runs.smoke_iterations.eq(SMOKE_ITERATIONS).all()
    fitted = set(zip(dip_runs.task, dip_runs.level, dip_runs.variant, strict=True))
    assert fitted == {
        (task, level, variant)
        for task, levels in grid.items()
        for level in levels
        for variant in level_fit(config, task, level)["variants"]
    }
    assert ("inpainting", "random50", "paper") in fitted  # restoration.ipynb's net for Table 1

    # Smoke mode changes the iteration count and nothing else: the rest is the task's paper settings.
    record = json.loads(
        (Path(folder / dip_runs.run_dir[dip_runs.task == "denoising"].iloc[0]) / "record.json").read_text()
    )
    assert (
        record["fit"]["ema"] == 0.99 and record["fit"]["backtrack_db"] == 5.0 and record["model"]["preset"] == "paper"
    )

    marker = f"SMOKE RUN: every DIP fit stopped after {SMOKE_ITERATIONS} iterations"
    for task in grid:
        for suffix in ("md", "tex", "html"):
            assert marker in (results / "tables" / f"{task}.{suffix}").read_text(), (task, suffix)
        for figure in ("psnr", "curves", "images"):
            assert (results / "figures" / f"{task}-{figure}.png").stat().st_size > 0
    assert "against the paper" in (results / "tables" / "super-resolution.md").read_text()
    # The paper's three denoising figures, each a row: after 1800 iterations, averaged, averaged over two runs.
    denoising = summary[summary.task == "denoising"]
    assert set(denoising.method) == {"dip-paper", "dip-paper-last", "dip-paper-mean2", "bm3d", "nlm"}
    against = (results / "tables" / "denoising.md").read_text().split("against the paper")[1]
    for method, figure in (("dip-paper-last", "29.22"), ("dip-paper", "30.43"), ("dip-paper-mean2", "31.00")):
        assert re.search(rf"\| +{method} +\| +mean +\| +rgb +\| +[\d.]+ +\| +{figure} +\|", against), method
    # Table 1's barbara, grey as restoration.ipynb has it, beside the paper's 32.22.
    barbara = summary[summary.image == "restoration-barbara"]
    assert set(barbara.method) == {"dip-paper", "biharmonic"}
    assert all(Image.open(folder / run / "restored.png").mode == "L" for run in barbara.run_dir)
    against = (results / "tables" / "inpainting.md").read_text().split("against the paper")[1]
    assert re.search(r"\| +dip-paper +\| +restoration-barbara +\| +rgb +\| +[\d.]+ +\| +32\.22 +\|", against)
    with zipfile.ZipFile(folder / "report.zip") as archive:
        names = archive.namelist()
        assert sum(name.endswith(".png") for name in names) >= 3 * len(grid)
        pages = [archive.read(name).decode(errors="replace") for name in names if name.endswith("report.html")]
    assert any("SMOKE RUN" in page for page in pages)
