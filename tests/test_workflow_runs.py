"""Real runs of the Snakemake workflow on copies of it: the tiny grid down to the report (a bad image among its jobs,
the paper's three denoising rows), the runs without ground truth, and a killed fit that resumes from its checkpoint."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dip.io import read_image, write_image
from tests.test_workflow import ENV, TEST_CONFIG, planned_jobs, snakemake, workflow_copy

DENOISING_OUTPUTS = {"seeds": [0, 1], "outputs": ["last", "seed-mean"], "ema": 0.9}
"""The paper's three denoising rows: the averaged output, the last one, and the mean of two seeds' averaged outputs."""


@pytest.mark.slow
def test_tiny_run_end_to_end_and_report(tmp_path: Path) -> None:
    # The test grid, and a corrupt image among the denoising jobs: its runs are reported as missing, the rest as usual.
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    config = copy.deepcopy(TEST_CONFIG)
    config["datasets"]["broken"] = {"source": str(tmp_path / "broken"), "tasks": ["denoising"]}
    config["fit"]["denoising"].update(DENOISING_OUTPUTS)
    folder = workflow_copy(tmp_path / "wf", config)
    run = snakemake(folder, "--cores", "2", "--keep-going")
    assert run.returncode == 0, run.stderr[-5000:]
    assert "6 of 16 runs failed" in run.stderr
    results = folder / "results"
    everything = pd.read_csv(results / "summary.csv", dtype={"level": str})
    failed = everything[everything.status == "failed"]
    assert set(failed.method) == {"dip-tiny", "dip-tiny-last", "dip-tiny-mean2", "nlm"}
    assert set(failed.stage) == {"datasets"}
    assert failed.error.str.contains(str(tmp_path / "broken" / "bad.png"), regex=False).all()
    (log,) = set(failed.log)
    assert "bad.png" in (folder / log).read_text()
    markdown = (results / "tables" / "denoising.md").read_text()
    assert f"missing broken/denoising/25/bad/nlm: datasets failed: {failed.error.iloc[0]} (log: {log})" in markdown
    assert re.search(r"^\| dip-tiny-mean2 +\| +[\d.]+ \(n=1\) \|$", markdown, re.MULTILINE)  # one mean of 2 seeds
    summary = everything[everything.status == "ok"]
    assert len(summary) == 10  # 3 tasks × (1 DIP variant + 1 baseline), denoising's 2nd seed, last outputs, mean
    assert set(zip(summary.task, summary.method, strict=True)) == {
        ("denoising", "dip-tiny"),
        ("denoising", "dip-tiny-last"),
        ("denoising", "dip-tiny-mean2"),
        ("denoising", "nlm"),
        ("super-resolution", "dip-tiny"),
        ("super-resolution", "bicubic"),
        ("inpainting", "dip-tiny"),
        ("inpainting", "biharmonic"),
    }
    assert summary.dataset.eq("samples").all() and summary.image.eq("astronaut").all()
    assert summary.source.eq("skimage-samples").all()
    assert set(summary.lr_convention[summary.task == "super-resolution"]) == {"lanczos"}
    assert summary.psnr.between(5, 60).all()
    traces = pd.read_csv(results / "traces.csv")
    assert set(traces.task) == {"denoising", "super-resolution", "inpainting"}
    assert traces.groupby("task").iteration.max().eq(29).all()  # iterations 0 … 29
    for task in ("denoising", "super-resolution", "inpainting"):
        for suffix in ("md", "tex", "html"):
            assert (results / "tables" / f"{task}.{suffix}").stat().st_size > 0
        for figure in ("psnr", "curves", "images"):
            assert (results / "figures" / f"{task}-{figure}.png").stat().st_size > 0
    assert not any((results / ".checkpoints").rglob("*.ckpt"))  # deleted by `dip restore` once finished

    report = snakemake(folder, "--report", "report.zip")
    assert report.returncode == 0, report.stderr[-5000:]
    with zipfile.ZipFile(folder / "report.zip") as archive:
        names = archive.namelist()
    assert any(name.endswith("denoising.html") for name in names)
    assert sum(name.endswith(".png") for name in names) >= 9

    # A changed fit setting reruns only the fits it applies to (Snakemake's params rerun trigger) and what follows.
    changed = copy.deepcopy(TEST_CONFIG)
    changed["fit"]["denoising"].update(DENOISING_OUTPUTS, lr=0.02)
    (folder / "config/config.yaml").write_text(yaml.safe_dump(changed))
    assert planned_jobs(folder) == {
        "restore": 2,
        "last_output": 2,
        "seed_mean": 1,
        "evaluate": 5,
        "aggregate": 1,
        "render": 3,
        "publish": 3,
        "viewer": 1,
        "all": 1,
        "total": 19,
    }


def viewer_data(viewer: Path) -> dict:
    """The page data of a viewer folder (viewer-data.js is `window.DIP_VIEWER_DATA = {...};`)."""
    text = (viewer / "viewer-data.js").read_text()
    return json.loads(text[text.index("{") : text.rindex("}") + 1].replace("<\\/", "</"))


@pytest.mark.slow
def test_runs_without_ground_truth_end_to_end(tmp_path: Path, shared_dir: Path) -> None:
    """The authors' flash/no-flash pair (shrunk ×8, cropped to 64 px) and an already-degraded photo of one's own
    (super-resolution: it is the low-resolution image) run through the whole workflow with no ground truth: DIP,
    a baseline, evaluate, summary, tables, figures and viewer, with no PSNR anywhere and a note that says why."""
    from PIL import Image

    pairs = shared_dir / "data/dip-paper/flash_no_flash"
    if not pairs.is_dir():
        pytest.skip(f"needs the flash/no-flash pair in {pairs}")
    for name in ("cave01_00_flash", "cave01_01_noflash"):
        photo = Image.open(pairs / f"{name}.jpg")
        (tmp_path / "cave").mkdir(exist_ok=True)
        photo.resize((photo.width // 8, photo.height // 8), Image.LANCZOS).save(tmp_path / "cave" / f"{name}.png")
    noisy = np.random.default_rng(0).random((40, 48, 3)).astype(np.float32)
    write_image(tmp_path / "mine" / "photo.png", noisy)
    fit = {"iterations": 3, "trace_every": 1}
    config = {
        "datasets": {
            "cave": {
                "source": str(tmp_path / "cave"),
                "images": ["cave01_01_noflash"],
                "pairs": {"cave01_01_noflash": "cave01_00_flash"},
                "crop": 64,
                "tasks": ["flash-no-flash"],
            },
            "mine": {"source": str(tmp_path / "mine"), "degraded": True},
        },
        # inpainting random50 has no observation: the photo's missing pixels are not known without a mask file
        "tasks": {"flash-no-flash": ["pair"], "super-resolution": ["2"], "inpainting": ["random50"]},
        "variants": {"tiny": {"preset": "tiny"}, "tiny-rgb": {"preset": "tiny", "input_depth": 3}},
        "fit": {
            "flash-no-flash": {"variants": ["tiny-rgb"], "frames": 2, **fit},
            "super-resolution": {"variants": ["tiny"], **fit},
            "inpainting": {"variants": ["tiny"], **fit},
        },
        "baselines": {"flash-no-flash": ["guided-filter"], "super-resolution": ["bicubic"]},
        "device": "cpu",
    }
    folder = workflow_copy(tmp_path / "wf", config)
    run = snakemake(folder, "--cores", "2")
    assert run.returncode == 0, run.stderr[-5000:]
    results = folder / "results"
    summary = pd.read_csv(results / "summary.csv", dtype={"level": str})
    assert set(zip(summary.dataset, summary.task, summary.method, strict=True)) == {
        ("cave", "flash-no-flash", "dip-tiny-rgb"),
        ("cave", "flash-no-flash", "guided-filter"),
        ("mine", "super-resolution", "dip-tiny"),
        ("mine", "super-resolution", "bicubic"),
    }
    assert summary.status.eq("ok").all() and not summary.ground_truth.any()
    assert "psnr" not in summary and "ssim" not in summary
    flash = results / "cave/flash-no-flash/pair/cave01_01_noflash"
    assert sorted(p.name for p in (flash / "observation").glob("*.png")) == ["guide.png", "observed.png"]
    assert read_image(flash / "dip-tiny-rgb/seed0/restored.png").shape == (64, 64, 3)
    restored = read_image(results / "mine/super-resolution/2/photo/dip-tiny/seed0/restored.png")
    assert restored.shape == (2 * 32, 2 * 48, 3)  # the photo is the LR image: 40×48 cropped to sides ÷ 16
    traces = pd.read_csv(results / "traces.csv")
    assert traces.psnr_gt.isna().all() and traces.psnr_obs.notna().all()
    for task, methods in (("flash-no-flash", ("guided-filter", "dip-tiny-rgb")), ("super-resolution", ("bicubic",))):
        markdown = (results / "tables" / f"{task}.md").read_text()
        assert "NO GROUND TRUTH" in markdown and "PSNR (dB)" not in markdown and "SSIM, " not in markdown
        assert f"## {task}: runs without ground truth" in markdown
        assert all(re.search(rf"^\| {re.escape(m)} +\| +n=1×1 \|$", markdown, re.M) for m in methods)
        for figure in ("psnr", "curves", "images"):
            assert (results / "figures" / f"{task}-{figure}.png").stat().st_size > 0
    assert not list((results / "tables").glob("inpainting.*"))
    data = viewer_data(results / "viewer")
    assert [o["has_truth"] for o in data["observations"]] == [False, False]
    assert data["notes"] == []  # no run is missing; each tile says "no ground truth" itself
    cave = next(o for o in data["observations"] if o["dataset"] == "cave")
    assert [e["kind"] for e in cave["entries"]] == ["observation", "guide", "baseline", "dip"]
    assert all(e["metrics"] is None for e in cave["entries"])
    assert (results / "viewer" / cave["entries"][1]["src"]).is_file()


def test_a_killed_fit_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """Kill the workflow mid-fit (as a cluster pre-empts a job): the checkpoint outside the job's outputs survives,
    and the next run resumes the fit from it instead of starting over."""
    config = copy.deepcopy(TEST_CONFIG)
    config["tasks"] = {"denoising": ["25"]}
    config["fit"] = {"denoising": {"variants": ["tiny"], "iterations": 800, "checkpoint_every": 20}}
    config["baselines"] = {"denoising": []}
    # no retry: Snakemake could otherwise restart the interrupted job before it sees the Ctrl-C, and wait for it
    config["resources"] = {"retries": 0}
    cwd = workflow_copy(tmp_path / "wf", config)
    checkpoints = cwd / "results" / ".checkpoints"
    command = [sys.executable, "-m", "snakemake", "--cores", "1", "--resources", "gpu=1"]
    process = subprocess.Popen(
        command, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not list(checkpoints.rglob("*.ckpt")) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert list(checkpoints.rglob("*.ckpt")), "no checkpoint was written"
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: snakemake and its running job get SIGINT
        process.wait(timeout=120)
    assert list(checkpoints.rglob("*.ckpt")), "the checkpoint did not survive the interruption"
    assert not list((cwd / "results").rglob("restored.png"))

    result = snakemake(cwd, "--cores", "1", "--resources", "gpu=1")
    assert result.returncode == 0, result.stderr[-3000:]
    (record,) = (cwd / "results").rglob("dip-tiny/seed0/record.json")
    assert json.loads(record.read_text())["resumed_from"] > 0
    assert not list(checkpoints.rglob("*.ckpt"))
