"""`config/stopping.yaml` end to end in smoke mode: ES-WMV's grid shape (Gaussian, impulse, shot and speckle noise at
three levels), every stopping rule watching every fit, plain DIP, DIP-TV and Bayesian DIP (SGLD) as methods, two
iterations per fit, down to the rules' table and figure and the report. One image, cropped to 64 px, and one level of
each noise kind (its middle one; the config's other levels are the same jobs with another level string) keep the run
within the test suite's budget."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.test_workflow import REPO, snakemake, workflow_copy

SMOKE_ITERATIONS = 2


@pytest.mark.slow
def test_the_stopping_grid_runs_in_smoke_mode(tmp_path: Path) -> None:
    folder = workflow_copy(tmp_path / "wf", yaml.safe_load((REPO / "config/config.yaml").read_text()))
    config = yaml.safe_load((REPO / "config/stopping.yaml").read_text())
    config["datasets"]["samples"].update(images=["astronaut"], crop=64)
    assert len(config["tasks"]["denoising"]) == 12  # four noise kinds at three levels: ES-WMV's grid shape
    config["tasks"]["denoising"] = config["tasks"]["denoising"][1::3]
    (folder / "config/stopping.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    args = ["--configfile", "config/stopping.yaml", "--config", f"smoke_iterations={SMOKE_ITERATIONS}"]
    run = snakemake(folder, *args, "--cores", "2", "--resources", "gpu=2")
    assert run.returncode == 0, run.stderr[-5000:]
    report = snakemake(folder, *args, "--report", "report.zip")
    assert report.returncode == 0, report.stderr[-5000:]

    results = folder / "results"
    summary = pd.read_csv(results / "summary.csv", dtype={"level": str})
    assert summary.status.eq("ok").all(), summary[summary.status != "ok"].to_dict("records")
    levels = [str(level) for level in config["tasks"]["denoising"]]
    assert set(summary.level) == set(levels) == {"45.9", "impulse-3", "shot-3", "speckle-3"}
    dip_runs = summary[summary.variant.fillna("") != ""]
    assert set(dip_runs.method) == {"dip-paper", "dip-tv", "dip-sgld"}
    assert len(dip_runs) == 3 * len(levels) and dip_runs.iterations.eq(SMOKE_ITERATIONS).all()
    # Every applicable rule watched every fit: noise-level only where σ is known (the Gaussian levels).
    records = {run: json.loads((folder / run / "record.json").read_text()) for run in dip_runs.run_dir}
    for run, record in records.items():
        gaussian = record["observation"]["level"] == "45.9"
        assert set(record["watched"]) == {"es-wmv", "es-emv"} | ({"noise-level"} if gaussian else set()), run
        assert record["fit"]["stopping"] == "fixed" and (record["fit"]["noise_sigma"] is not None) == gaussian
    assert {"watch_es_wmv_selected_iteration", "watch_es_emv_psnr_gt", "watch_noise_level_stop_iteration"} <= set(
        summary
    )
    tv = next(record for run, record in records.items() if "/dip-tv/" in run)
    sgld = next(record for run, record in records.items() if "/dip-sgld/" in run)
    assert tv["fit"]["tv_weight"] == 0.01 and sgld["fit"]["langevin_sigma"] == 2.0

    marker = f"SMOKE RUN: every DIP fit stopped after {SMOKE_ITERATIONS} iterations"
    markdown = (results / "tables" / "denoising.md").read_text()
    assert marker in markdown
    assert "every stopping rule against the oracle" in markdown  # es-emv picks from its second output on
    assert (results / "figures" / "denoising-rules.png").stat().st_size > 0
    with zipfile.ZipFile(folder / "report.zip") as archive:
        assert any(name.endswith("denoising-rules.png") for name in archive.namelist())


def test_the_stopping_config_plans_es_wmvs_grid_with_every_method(tmp_path: Path) -> None:
    """A dry run of the whole config: 3 images × 12 levels, 3 methods each, the baselines where they apply, and the
    variants' own fit options on their fits."""
    import re

    from tests.test_workflow import job_counts

    folder = workflow_copy(tmp_path / "wf", yaml.safe_load((REPO / "config/config.yaml").read_text()))
    result = snakemake(folder, "--configfile", "config/stopping.yaml", "-n", "-p")
    assert result.returncode == 0, result.stderr + result.stdout
    counts = job_counts(result.stdout)
    # baselines: Gaussian bm3d and nlm, impulse median, shot bm3d-vst, speckle nlm: 3 × (3 × 2 + 3 + 3 + 3)
    assert (counts["degrade"], counts["restore"], counts["baseline"]) == (36, 108, 45)
    fits = re.findall(r"^Shell command: (dip restore .*)$", result.stdout, re.MULTILINE)
    assert all("--stopping fixed" in fit and "--iterations 5000" in fit and "--watch" not in fit for fit in fits)
    assert all("--tv-weight 0.01" in fit for fit in fits if "--variant tv " in fit)
    sgld = [fit for fit in fits if "--variant sgld " in fit]
    assert len(sgld) == 36 and all("--langevin-sigma 2.0" in fit and "--weight-decay 5e-08" in fit for fit in sgld)
    assert not any("--tv-weight" in fit or "--langevin" in fit for fit in fits if "--variant paper " in fit)
