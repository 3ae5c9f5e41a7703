"""The workflow's outputs are what it makes: after a fit killed part-way through a run at new settings, a deleted run
or baseline folder, or a failed render, the same command brings every run to the current settings, and a failed render
leaves the last good tables and figures in place. Each test starts from a copy of one finished run."""

from __future__ import annotations

import copy
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.test_workflow import ENV, TEST_CONFIG, job_counts, snakemake, workflow_copy

ITERATIONS = 20
NEW_SETTINGS = ("--config", "fit__denoising__iterations=400", "resources__retries=0")
RUN = "results/samples/denoising/25/astronaut"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workflow run to its end on denoising alone: one DIP fit of 20 iterations and one baseline."""
    config = copy.deepcopy(TEST_CONFIG)
    config["tasks"] = {"denoising": ["25"]}
    config["fit"] = {
        "denoising": {"variants": ["tiny"], "iterations": ITERATIONS, "trace_every": 5, "checkpoint_every": 40}
    }
    config["baselines"] = {"denoising": ["nlm"]}
    folder = workflow_copy(tmp_path_factory.mktemp("finished") / "wf", config)
    result = snakemake(folder, "--cores", "2")
    assert result.returncode == 0, result.stderr[-5000:]
    return folder


def copy_of(run: Path, folder: Path) -> Path:
    """A copy of a finished workflow folder, its files' times and Snakemake's records with it."""
    shutil.copytree(run, folder, symlinks=True)
    return folder


def planned(folder: Path, *args: str) -> dict[str, int]:
    result = snakemake(folder, "-n", "--quiet", "rules", *args)
    assert result.returncode == 0, result.stderr + result.stdout
    return job_counts(result.stdout)


def summary_of(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "results/summary.csv", dtype={"level": str})


def report_files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for name in ("tables", "figures")
        for path in sorted((folder / "results" / name).iterdir())
    }


def interrupt_the_fit(folder: Path, signum: int, *args: str) -> None:
    """Run the workflow with `args` and send `signum` to its DIP fit's process alone once the fit saved a
    checkpoint, as `kill` or a cluster's preemption does; the workflow goes on with its other jobs and fails."""
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", *args],
        cwd=folder,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = folder / "results/.checkpoints"
    try:
        deadline = time.monotonic() + 120
        fit = None
        while fit is None and time.monotonic() < deadline and process.poll() is None:
            fits = [
                child
                for child in psutil.Process(process.pid).children(recursive=True)
                if "restore" in child.cmdline() and "python" in Path(child.cmdline()[0]).name
            ]
            if fits and list(checkpoints.rglob("*.ckpt")):
                fit = fits[0]
            time.sleep(0.05)
        assert fit is not None, "the fit ended, or saved no checkpoint, before it could be interrupted"
        fit.send_signal(signum)
    finally:
        returncode = process.wait(timeout=300)
    assert returncode != 0


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_fit_interrupted_at_new_settings_runs_again_at_them(finished_run: Path, tmp_path: Path, signum: int) -> None:
    folder = copy_of(finished_run, tmp_path / "wf")
    interrupt_the_fit(folder, signum, *NEW_SETTINGS)
    assert planned(folder, *NEW_SETTINGS)["restore"] == 1

    result = snakemake(folder, "--cores", "1", *NEW_SETTINGS)
    assert result.returncode == 0, result.stderr[-5000:]
    summary = summary_of(folder)
    assert summary.status.eq("ok").all() and set(summary.method) == {"dip-tiny", "nlm"}
    assert summary[summary.method == "dip-tiny"].iterations.eq(400).all()
    record = json.loads((folder / RUN / "dip-tiny/seed0/record.json").read_text())
    assert record["iterations"] == 400 and record["resumed_from"] > 0


@pytest.mark.slow
def test_deleted_run_and_baseline_folders_are_made_again(finished_run: Path, tmp_path: Path) -> None:
    folder = copy_of(finished_run, tmp_path / "wf")
    before = summary_of(folder)
    for run in ("dip-tiny/seed0", "nlm"):
        shutil.rmtree(folder / RUN / run)
    jobs = planned(folder)
    assert (jobs["restore"], jobs["baseline"], jobs["evaluate"], jobs["aggregate"]) == (1, 1, 2, 1)

    result = snakemake(folder, "--cores", "2")
    assert result.returncode == 0, result.stderr[-5000:]
    assert (folder / RUN / "dip-tiny/seed0/restored.png").is_file() and (folder / RUN / "nlm/restored.png").is_file()
    after = summary_of(folder)
    assert after.status.eq("ok").all()
    columns = ["method", "iterations", "psnr"]
    pd.testing.assert_frame_equal(after[columns], before[columns])  # the same fit and baseline, made again


@pytest.mark.slow
def test_a_failed_render_leaves_the_last_tables_and_figures_and_runs_again(finished_run: Path, tmp_path: Path) -> None:
    folder = copy_of(finished_run, tmp_path / "wf")
    last = report_files(folder)
    summary = folder / "results/summary.csv"
    good = summary.read_text()
    summary.write_text(good.replace(f"{RUN}/nlm", "results/elsewhere/nlm"))  # a summary `dip render` refuses

    failed = snakemake(folder, "--cores", "2")
    assert failed.returncode != 0 and "Error in rule render" in failed.stderr
    assert report_files(folder) == last
    assert planned(folder)["render"] == 1

    summary.write_text(good)
    result = snakemake(folder, "--cores", "2")
    assert result.returncode == 0, result.stderr[-5000:]
    assert report_files(folder).keys() == last.keys()
    assert "Nothing to be done" in snakemake(folder, "-n").stdout
