"""The workflow on a real SLURM cluster (tests/slurm_cluster.py: one node on localhost, partitions `cpu` and `gpu`):
the tiny test grid through `--profile profiles/slurm` to completion, DIP fits on `gpu` and everything else on `cpu`
(as sacct saw them), the same restored images as a local run, and a fit cancelled mid-way with `scancel` that
Snakemake's retry resumes from its checkpoint to the same restored.png. Skipped where the SLURM daemons cannot run."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.slurm_cluster import Cluster, ClusterUnavailable, start_cluster
from tests.test_workflow import ENV, TEST_CONFIG, workflow_copy

# The node has no GPU: the fits go to the `gpu` partition without asking for one (`resources.gpu` 0). Status checks
# start 2 s after a submission or a finished job, not the 40 s a real cluster gets.
SLURM_ARGS = ("--profile", "profiles/slurm", "--config", "resources__gpu=0")
SLURM_ARGS += ("--slurm-init-seconds-before-status-checks", "2")
DENOISING_FIT = "rule_restore_wildcards_samples_denoising_25_astronaut_tiny_0"
# The test grid's runs (one image, one level per task, the DIP variant `tiny` and one baseline per task).
RUN_DIRS = [
    f"results/samples/{task}/{levels[0]}/astronaut/{run}"
    for task, levels in TEST_CONFIG["tasks"].items()
    for run in ["dip-tiny/seed0", *TEST_CONFIG["baselines"][task]]
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        running = start_cluster(tmp_path_factory.mktemp("slurm"))
    except ClusterUnavailable as error:
        pytest.skip(f"no SLURM cluster here: {error}")
    try:
        yield running
    finally:
        running.stop()


def start(cwd: Path, args: tuple[str, ...], env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "snakemake", *args]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def finish(process: subprocess.Popen, timeout: float) -> None:
    """Wait for a run to succeed; one still going after `timeout` is interrupted and fails the test."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        pytest.fail(f"snakemake still running after {timeout} s:\n{output[-5000:]}")
    assert process.returncode == 0, output[-5000:]


def cancel_after_first_checkpoint(cluster: Cluster, checkpoints: Path, run: subprocess.Popen) -> str:
    """`scancel` the denoising fit once it has saved a checkpoint; returns its SLURM job id."""
    deadline = time.monotonic() + 300
    while not list(checkpoints.rglob("*.ckpt")):
        assert run.poll() is None and time.monotonic() < deadline, "the denoising fit wrote no checkpoint"
        time.sleep(0.2)
    queue = cluster.command("squeue", "--noheader", "--format=%i|%k").stdout.splitlines()
    (job,) = [line.split("|")[0] for line in queue if line.endswith(f"|{DENOISING_FIT}")]
    assert cluster.command("scancel", job).returncode == 0
    return job


def accounting(cluster: Cluster) -> pd.DataFrame:
    """sacct's record of every job of the cluster: rule (from the job comment), partition, state.

    sacct shows only jobs since midnight unless told a start time: a run across midnight would lose its first jobs.
    """
    rows = cluster.command(
        "sacct", "-X", "--starttime=2000-01-01", "--parsable2", "--noheader", "--format=JobID,Partition,State,Comment"
    )
    jobs = pd.DataFrame(
        [line.split("|") for line in rows.stdout.splitlines()], columns=["id", "partition", "state", "comment"]
    )
    return jobs.assign(rule=jobs.comment.str.extract(r"^rule_([a-z_]+?)(?:_wildcards_|$)")[0])


def restored_images(workdir: Path) -> list[bytes]:
    return [(workdir / run / "restored.png").read_bytes() for run in RUN_DIRS]


@pytest.mark.slow
def test_tiny_grid_on_slurm(cluster: Cluster, tmp_path: Path) -> None:
    config = copy.deepcopy(TEST_CONFIG)
    config["fit"]["denoising"].update(iterations=200, checkpoint_every=5)  # long enough to be cancelled mid-way
    local, remote = workflow_copy(tmp_path / "local", config), workflow_copy(tmp_path / "slurm", config)
    slurm_run = start(remote, SLURM_ARGS, {**ENV, "SLURM_CONF": cluster.env["SLURM_CONF"]})
    # meanwhile, the same runs on this machine: the cluster's jobs mostly wait for status checks
    local_run = start(local, ("--cores", "2", *RUN_DIRS), ENV)
    try:
        cancelled = cancel_after_first_checkpoint(cluster, remote / "results/.checkpoints/samples/denoising", slurm_run)
        finish(local_run, timeout=400)
        finish(slurm_run, timeout=400)
    finally:
        for run in (slurm_run, local_run):
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)

    jobs = accounting(cluster)
    assert jobs.rule.notna().all(), jobs
    fits, others = jobs[jobs.rule == "restore"], jobs[jobs.rule != "restore"]
    assert set(fits.partition) == {"gpu"} and set(others.partition) == {"cpu"}, jobs
    assert set(others.rule) == {"degrade", "baseline", "evaluate"} and set(others.state) == {"COMPLETED"}, jobs
    states = dict(zip(fits.id, fits.state, strict=True))
    assert states.pop(cancelled).startswith("CANCELLED"), jobs  # "CANCELLED by <uid>"
    assert list(states.values()) == ["COMPLETED"] * 3, jobs  # the three fits, one of them the cancelled one's retry

    record = json.loads((remote / RUN_DIRS[0] / "record.json").read_text())
    assert record["resumed_from"] > 0 and record["iterations"] == 200
    assert restored_images(remote) == restored_images(local)
    summary = pd.read_csv(remote / "results/summary.csv")
    assert len(summary) == len(RUN_DIRS) and summary.status.eq("ok").all()
