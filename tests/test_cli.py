"""The `dip` command end to end: help, degrade → restore / baseline → evaluate, bad input, interrupt and resume."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from dip.cli import COMMANDS, main
from dip.io import write_image
from dip.record import TRACE_COLUMNS


@pytest.fixture
def crop_png(tmp_path: Path) -> Path:
    """A 64×64 crop of scikit-image's astronaut (face and suit: texture and edges)."""
    path = tmp_path / "astronaut.png"
    write_image(path, data.astronaut()[40:104, 180:244].astype(np.float32) / 255)
    return path


@pytest.fixture
def tiny_png(tmp_path: Path) -> Path:
    """A 32×32 crop: the smallest image the `tiny` net takes comfortably."""
    path = tmp_path / "tiny.png"
    write_image(path, data.astronaut()[60:92, 200:232].astype(np.float32) / 255)
    return path


def run_dip(*args: object) -> int:
    return main([str(a) for a in args])


def metrics_of(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"] if command else ["--help"])
    assert exit_info.value.code == 0
    assert "usage: dip" in capsys.readouterr().out


def test_archs_lists_the_paper_net(capsys):
    assert run_dip("archs") == 0
    out = capsys.readouterr().out
    assert "paper" in out and "2,217,831" in out


def test_degrade_is_byte_stable(crop_png, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert (
            run_dip(
                "degrade", crop_png, "--task", "denoising", "--level", "25", "--seed", seed, "--out", tmp_path / name
            )
            == 0
        )
    observed = {name: (tmp_path / name / "observed.png").read_bytes() for name in "abc"}
    assert observed["a"] == observed["b"] != observed["c"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "denoising", "--level", "loud"], "level"),
        (["--task", "inpainting", "--level", "file"], "mask"),
        (["--task", "denoising", "--level", "25", "--multiple", "128"], "128"),
    ],
)
def test_degrade_bad_values(crop_png, tmp_path, capsys, args, message):
    assert run_dip("degrade", crop_png, *args, "--out", tmp_path / "obs") == 2
    err = capsys.readouterr().err
    assert err.startswith("dip degrade: error:") and message in err
    assert "Traceback" not in err


def test_degrade_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    assert run_dip("degrade", bad, "--task", "denoising", "--level", "25", "--out", tmp_path / "obs") == 2
    assert str(bad) in capsys.readouterr().err


def test_denoising_beats_the_noisy_input_by_2db(crop_png, tmp_path):
    obs, out = tmp_path / "obs", tmp_path / "run"
    run_dip("degrade", crop_png, "--task", "denoising", "--level", "25", "--label", "image=astronaut", "--out", obs)
    assert run_dip("restore", obs, "--arch", "light", "--iterations", 300, "--quiet", "--out", out) == 0
    assert run_dip("evaluate", out, "--observation", obs, "--out", out / "metrics.json") == 0
    metrics = metrics_of(out / "metrics.json")
    assert metrics["psnr"] >= metrics["psnr_observed"] + 2.0, metrics
    assert metrics["image"] == "astronaut" and metrics["method"] == "dip-light" and metrics["protocol"] == "rgb"

    record = metrics_of(out / "record.json")
    assert record["iterations"] == 300 and record["fit"]["ema"] == 0.99 and record["parameters"] > 0
    assert record["model"]["preset"] == "light" and "torch" in record["versions"]
    with (out / "trace.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == TRACE_COLUMNS and rows[-1]["iteration"] == "299"


def test_super_resolution_beats_bicubic(tmp_path):
    hr = tmp_path / "coffee.png"
    write_image(hr, data.coffee()[100:228, 200:328].astype(np.float32) / 255)
    obs = tmp_path / "obs"
    run_dip("degrade", hr, "--task", "super-resolution", "--level", 4, "--out", obs)
    run_dip("restore", obs, "--arch", "light", "--iterations", 400, "--quiet", "--out", tmp_path / "dip")
    run_dip("baseline", obs, "--method", "bicubic", "--out", tmp_path / "bicubic")
    scores = {}
    for method in ("dip", "bicubic"):
        run_dip("evaluate", tmp_path / method, "--observation", obs, "--out", tmp_path / method / "m.json")
        scores[method] = metrics_of(tmp_path / method / "m.json")
    assert scores["dip"]["protocol"] == "y-dip" and "psnr_y_matlab" in scores["dip"]
    assert scores["dip"]["psnr"] > scores["bicubic"]["psnr"], scores


def test_inpainting_and_baseline(crop_png, tmp_path):
    obs = tmp_path / "obs"
    run_dip("degrade", crop_png, "--task", "inpainting", "--level", "random50", "--out", obs)
    assert (obs / "mask.png").exists()
    assert run_dip("restore", obs, "--arch", "tiny", "--iterations", 20, "--quiet", "--out", tmp_path / "dip") == 0
    assert run_dip("baseline", obs, "--method", "biharmonic", "--out", tmp_path / "bh") == 0
    assert run_dip("evaluate", tmp_path / "bh", "--observation", obs, "--out", tmp_path / "bh" / "m.json") == 0
    metrics = metrics_of(tmp_path / "bh" / "m.json")
    assert metrics["psnr"] > metrics["psnr_observed"] + 5


def test_baseline_for_the_wrong_task(crop_png, tmp_path, capsys):
    run_dip("degrade", crop_png, "--task", "denoising", "--level", "25", "--out", tmp_path / "obs")
    assert run_dip("baseline", tmp_path / "obs", "--method", "bicubic", "--out", tmp_path / "b") == 2
    assert "bicubic" in capsys.readouterr().err


def test_restore_refuses_an_image_too_small_for_the_net(tmp_path, capsys):
    small = tmp_path / "small.png"
    write_image(small, data.astronaut()[:40, :40].astype(np.float32) / 255)
    run_dip("degrade", small, "--task", "denoising", "--level", "25", "--multiple", 8, "--out", tmp_path / "obs")
    assert run_dip("restore", tmp_path / "obs", "--arch", "paper", "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "divisible by 32" in err and not (tmp_path / "run" / "restored.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch-json", "{not json"], "JSON"),
        (["--arch-json", '{"preset": "tiny", "chanels_down": [8]}'], "chanels_down"),
        (["--arch", "huge"], "huge"),
        (["--iterations", "0"], "iterations"),
        (["--ema", "1.5"], "ema"),
        (["--device", "tpu"], "tpu"),
    ],
)
def test_restore_bad_values(crop_png, tmp_path, capsys, args, message):
    run_dip("degrade", crop_png, "--task", "denoising", "--level", "25", "--out", tmp_path / "obs")
    assert run_dip("restore", tmp_path / "obs", *args, "--out", tmp_path / "run") == 2
    assert message in capsys.readouterr().err


def test_checkpoint_inside_the_outputs_is_refused(crop_png, tmp_path, capsys):
    run_dip("degrade", crop_png, "--task", "denoising", "--level", "25", "--out", tmp_path / "obs")
    args = ("--arch", "tiny", "--checkpoint", tmp_path / "run" / "c.pt", "--out", tmp_path / "run")
    assert run_dip("restore", tmp_path / "obs", *args) == 2
    assert "outside --out" in capsys.readouterr().err


def test_interrupted_restore_resumes_to_the_same_result(tiny_png, tmp_path):
    """SIGTERM mid-fit saves a checkpoint; the same command resumes to the uninterrupted result, byte for byte."""
    obs = tmp_path / "obs"
    run_dip("degrade", tiny_png, "--task", "denoising", "--level", "25", "--out", obs)
    common = ["--arch", "tiny", "--iterations", "300", "--checkpoint-every", "10", "--threads", "1", "--quiet"]
    run_dip("restore", obs, *common, "--out", tmp_path / "reference")

    checkpoint = tmp_path / "ckpt" / "fit.pt"
    command = [sys.executable, "-m", "dip", "restore", str(obs), *common, "--checkpoint", str(checkpoint)]
    command += ["--out", str(tmp_path / "resumed")]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted at iteration" in err and checkpoint.exists()
    assert not (tmp_path / "resumed" / "restored.png").exists()

    assert subprocess.run(command, capture_output=True, text=True).returncode == 0
    record = metrics_of(tmp_path / "resumed" / "record.json")
    assert record["resumed_from"] > 0 and record["iterations"] == 300
    assert not checkpoint.exists()
    reference = (tmp_path / "reference" / "restored.png").read_bytes()
    assert (tmp_path / "resumed" / "restored.png").read_bytes() == reference
