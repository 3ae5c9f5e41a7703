"""Frames of a fit: their schedule, that they change no number of the fit, checkpoint/resume, the sprite files, and
`dip restore --frames` leaving restored.png byte-identical."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage import data

from dip.cli import main
from dip.errors import ConfigError
from dip.fit import FitInterrupted, FitResult, FitSettings, fit
from dip.frames import FrameRecorder, frame_iterations, read_frames, write_frames
from dip.io import write_image
from dip.restoration import fit_identity
from tests.test_fit import StopAfter, small_problem


@pytest.mark.parametrize(("iterations", "count"), [(30, 8), (500, 40), (11000, 40), (2, 2), (10, 40), (100, 1)])
def test_frame_iterations_are_distinct_span_the_fit_and_are_dense_early(iterations, count):
    chosen = frame_iterations(iterations, count)
    assert len(chosen) == min(count, iterations)
    assert chosen == sorted(set(chosen)) and chosen[-1] == iterations - 1
    assert count == 1 or chosen[0] == 0
    gaps = np.diff(chosen)
    assert (gaps[1:] >= gaps[:-1] - 1).all(), "gaps never shrink (beyond rounding): geometric spacing"
    if 1 < count < iterations / 4:
        assert sum(i < iterations / 10 for i in chosen) >= count / 3, "a third of the frames in the first 10 %"


def numbers(result: FitResult) -> tuple:
    """Every number of a fit's result but its timings."""
    trace = [{k: v for k, v in row.items() if k != "seconds"} for row in result.trace]
    return (
        result.output.numpy().tobytes(),
        json.dumps(trace),
        result.iterations,
        result.selected_iteration,
        result.stop_reason,
        result.early_stop,
        result.backtracks,
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"iterations": 40, "ema": 0.9, "trace_every": 7},
        {"iterations": 120, "stopping": "es-wmv", "es_window": 10, "es_patience": 20, "reg_noise_std": 0.0},
        {"iterations": 120, "stopping": "es-wmv", "es_window": 10, "es_patience": 20, "es_continue": True},
    ],
    ids=["ema", "es-wmv", "es-continue"],
)
def test_frames_change_no_number_of_the_fit(settings):
    plain = fit(small_problem(), FitSettings(**settings))
    framed = fit(small_problem(), FitSettings(**settings, frames=12, frame_side=8))
    assert numbers(framed) == numbers(plain)
    assert not plain.frames
    assert framed.frames[0].iteration == 0 and framed.frames[-1].iteration == framed.iterations - 1
    assert all(tuple(frame.pixels.shape) == (3, 8, 8) and frame.pixels.dtype == torch.uint8 for frame in framed.frames)
    traced = {row["iteration"]: row for row in framed.trace}
    for frame in framed.frames:  # a frame's PSNRs are those of the trace where both exist
        if frame.iteration in traced:
            assert frame.psnr_obs == pytest.approx(traced[frame.iteration]["psnr_obs"], abs=1e-4)
            assert frame.psnr_gt == pytest.approx(traced[frame.iteration]["psnr_gt"], abs=1e-4)


def test_frames_survive_an_interruption_and_resume(tmp_path):
    settings = FitSettings(iterations=30, reg_noise_std=0.03, trace_every=5, checkpoint_every=7, frames=10)
    reference = fit(small_problem(), settings, fingerprint="a")
    checkpoint = tmp_path / "fit.ckpt"
    with pytest.raises(FitInterrupted):
        fit(small_problem(), settings, fingerprint="a", checkpoint=checkpoint, stop_event=StopAfter(12))
    resumed = fit(small_problem(), settings, fingerprint="a", checkpoint=checkpoint)
    assert resumed.resumed_from == 12
    assert [f.iteration for f in resumed.frames] == [f.iteration for f in reference.frames]
    assert all(torch.equal(a.pixels, b.pixels) for a, b in zip(resumed.frames, reference.frames, strict=True))


def test_frames_are_written_as_one_sprite(tmp_path):
    recorder = FrameRecorder(iterations=100, count=7, side=10)
    ramp = torch.linspace(0, 1, 30)
    for iteration in range(100):
        if recorder.due(iteration):
            output = (ramp[None, None, None, :] * (iteration + 1) / 100).expand(1, 3, 20, 30)
            recorder.capture(iteration, output, 20.0 + iteration, float("nan"))
    assert [tuple(f.pixels.shape) for f in recorder.frames] == [(3, 7, 10)] * 7
    write_frames(tmp_path, recorder.frames, (20, 30))
    index, frames = read_frames(tmp_path)
    assert index["columns"] == 3 and index["rows"] == 3 and (index["image_height"], index["image_width"]) == (20, 30)
    assert [item["iteration"] for item in index["frames"]] == frame_iterations(100, 7)
    assert index["frames"][0]["psnr_gt"] is None
    for frame, written in zip(recorder.frames, frames, strict=True):  # WebP of quality 90: close, not exact
        assert np.abs(frame.pixels.permute(1, 2, 0).numpy().astype(int) - written).mean() < 2
    assert read_frames(tmp_path / "none") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"frames": -1}, "frames must be an integer ≥ 0"),
        ({"frame_side": 4}, "frame_side must be an integer ≥ 8"),
        ({"frames": 5000, "frame_side": 2048}, "do not fit in one sprite"),
    ],
)
def test_bad_frame_settings_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        FitSettings(**change)


def test_a_fit_without_frames_keeps_its_fingerprint():
    """Checkpoints written before frames existed still resume: the frame settings count only when frames are saved."""
    assert "frames" not in fit_identity(FitSettings()) and "frame_side" not in fit_identity(FitSettings())
    assert fit_identity(FitSettings(frames=4))["frames"] == 4


def test_restore_with_frames_writes_the_same_restored_png(tmp_path):
    image = tmp_path / "tiny.png"
    write_image(image, data.astronaut()[60:92, 200:232].astype(np.float32) / 255)
    obs = tmp_path / "obs"
    assert main(["degrade", str(image), "--task", "denoising", "--level", "25", "--out", str(obs)]) == 0
    common = [
        "restore",
        str(obs),
        "--arch",
        "tiny",
        "--iterations",
        "40",
        "--threads",
        "1",
        "--quiet",
        "--device",
        "cpu",
    ]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--frames", "9", "--frame-side", "16", "--out", str(tmp_path / "framed")]) == 0
    restored = (tmp_path / "plain" / "restored.png").read_bytes()
    assert (tmp_path / "framed" / "restored.png").read_bytes() == restored
    assert not (tmp_path / "plain" / "frames.json").exists()
    index, frames = read_frames(tmp_path / "framed")
    assert len(frames) == 9 and frames[0].shape == (16, 16, 3)
    assert [item["iteration"] for item in index["frames"]] == frame_iterations(40, 9)
    record = json.loads((tmp_path / "framed" / "record.json").read_text())
    assert record["fit"]["frames"] == 9
