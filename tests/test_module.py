"""dip-bench as a module of another workflow (config/README.md, "As a module"): a tiny outer workflow in a folder of
its own, with the test grid's denoising as its config, imports every rule, runs them all and renders the report."""

from __future__ import annotations

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
"""


@pytest.mark.slow
def test_the_workflow_runs_as_a_module(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(OUTER.format(snakefile=str(REPO / "Snakefile")))
    config = {**TEST_CONFIG, "tasks": {"denoising": ["25"]}}  # the schema of the module checks and completes it
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def snakemake(*args: str) -> None:
        command = [sys.executable, "-m", "snakemake", *args]
        result = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-5000:]

    snakemake("--cores", "2")
    results = tmp_path / "results"
    summary = pd.read_csv(results / "summary.csv")
    assert list(summary.method) == ["dip-tiny", "nlm"] and summary.status.eq("ok").all()
    assert (results / "tables/denoising.md").is_file() and (results / "figures/denoising-images.png").is_file()
    snakemake("--report", "report.zip")
    with zipfile.ZipFile(tmp_path / "report.zip") as archive:
        assert any(name.endswith("denoising.html") for name in archive.namelist())
