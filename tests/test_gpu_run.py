"""The prepared GPU run (benchmarks/gpu/) in smoke mode on the CPU, so that it cannot rot: its carry is made from
../shared (no wheels: snakemake and bm3d come from this environment), the gpu tier is skipped, and the run ends with
its summary, results, tables and logs in the output folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_run_in_smoke_mode(tmp_path: Path, shared_dir: Path) -> None:
    carry, out = tmp_path / "carry", tmp_path / "out"
    env = {**os.environ, "SHARED": str(shared_dir), "PYTHON": sys.executable, "CARRY": str(carry), "WHEELS": "0"}
    prepared = subprocess.run([REPO / "benchmarks/gpu/prepare.sh"], env=env, capture_output=True, text=True)
    assert prepared.returncode == 0, prepared.stderr
    command = [REPO / "benchmarks/gpu/run.sh", out, "--smoke", "--budget", "400", "--reserve", "120", "--carry", carry]
    run = subprocess.run(command, env={**env, "LIMIT": "440"}, capture_output=True, text=True, timeout=500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert sorted(path.name for path in out.iterdir()) == ["logs.tar.gz", "results.json", "summary.md", "tables.tar.gz"]
    results = json.loads((out / "results.json").read_text())
    assert results["smoke"] and results["gpu_tier"] is None
    assert {row["code"] for row in results["speed"]} >= {"authors", "ours"}
    assert all(row["s_per_iter"] > 0 for row in results["speed"])
    assert results["tables"]["stages"]["set5-x4"] > 0 and "set5-x4" in results["tables"]["stages_run"]
    with tarfile.open(out / "tables.tar.gz") as archive:
        names = archive.getnames()
    assert "fp32/tables/super-resolution.md" in names and "fp32/summary.csv" in names
    assert "# GPU run (smoke)" in (out / "summary.md").read_text()
