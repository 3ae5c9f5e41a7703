"""The `dip` command end to end: help, degrade → restore / baseline → evaluate, bad input, interrupt and resume."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from dip.cli import COMMANDS, main
from dip.fit import CHECKPOINT_VERSION
from dip.io import read_image, write_image
from dip.record import TRACE_COLUMNS
from dip.tasks.denoising import Denoising
from tests.test_fit import ShiftedOn


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


def error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    """The one line a failed `dip <command>` printed on stderr."""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dip {command}: error: "), lines
    return lines[0]


def degrade(image: Path, out: Path, *args: object) -> Path:
    """`dip degrade image` for denoising σ=25 into `out`."""
    assert run_dip("degrade", image, "--task", "denoising", "--level", "25", *args, "--out", out) == 0
    return out


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A directory path this process cannot write in: a read-only one, or (as root, whom its mode does not stop)
    one under a regular file."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):
        (tmp_path / "a-file").write_text("")
        yield tmp_path / "a-file" / "run"
    else:
        yield folder
    folder.chmod(0o755)


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
    assert record["warnings"] == []
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
    assert "divisible by 32" in err and str(small) in err and not (tmp_path / "run" / "restored.png").exists()


@pytest.mark.parametrize(("shape", "arch"), [((32, 32), "paper"), ((32, 20000), "inpaint-text")])
def test_restore_refuses_an_image_too_small_for_the_nets_depth(tmp_path, capsys, shape, arch):
    """A 5-scale net needs 2 px at its coarsest scale: one line naming the user's file, not a torch traceback."""
    source = tmp_path / "narrow.png"
    write_image(source, np.full((*shape, 3), 0.5, np.float32))
    obs = degrade(source, tmp_path / "obs", "--label", "image=narrow")
    capsys.readouterr()
    assert run_dip("restore", obs, "--arch", arch, "--iterations", 1, "--quiet", "--out", tmp_path / "run") == 2
    line = error_line(capsys, "restore")
    assert str(source) in line and "image=narrow" in line and "≥ 64" in line


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
    common += ["--device", "cpu"]  # bit-exact there, whatever else the host has
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


@pytest.mark.parametrize("option", ["--out", "--checkpoint"])
def test_restore_refuses_an_unwritable_destination_before_fitting(
    tiny_png, tmp_path, capsys, monkeypatch, unwritable, option
):
    obs = degrade(tiny_png, tmp_path / "obs")
    monkeypatch.setattr("dip.restoration.restore", lambda *args, **kwargs: pytest.fail("the fit started"))
    out = unwritable if option == "--out" else tmp_path / "run"
    checkpoint = unwritable / "fit.pt" if option == "--checkpoint" else tmp_path / "ckpt" / "fit.pt"
    capsys.readouterr()
    assert run_dip("restore", obs, "--arch", "tiny", "--checkpoint", checkpoint, "--out", out) == 2
    line = error_line(capsys, "restore")
    under_a_file = unwritable.parent.is_file()  # as root: no mode stops the process
    reason = f"lies under {unwritable.parent}, a file" if under_a_file else f"cannot write in {unwritable}"
    assert option in line and reason in line


@pytest.mark.parametrize(
    "fit_args",
    [["--ema", 0], ["--stopping", "es-wmv", "--es-window", 5, "--es-patience", 5]],
    ids=["last-output", "es-wmv"],
)
def test_outputs_that_cannot_be_written_keep_the_final_checkpoint(tiny_png, tmp_path, capsys, monkeypatch, fit_args):
    """The same command run again resumes at the end: no more iterations, the uninterrupted run's bytes."""
    obs = degrade(tiny_png, tmp_path / "obs")
    common = ["--arch", "tiny", "--iterations", 40, *fit_args, "--quiet", "--device", "cpu"]  # bit-exact there
    assert run_dip("restore", obs, *common, "--out", tmp_path / "reference") == 0
    checkpoint = tmp_path / "ckpt" / "fit.pt"
    command = ["restore", obs, *common, "--checkpoint", checkpoint, "--out", tmp_path / "run"]

    def out_folder_removed(path: Path, *args: object, **kwargs: object) -> None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))

    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr("dip.api.restoring.write_image", out_folder_removed)
        assert run_dip(*command) == 2
    line = error_line(capsys, "restore")
    assert "restored.png" in line and str(checkpoint) in line and checkpoint.exists()

    assert run_dip(*command) == 0
    record, reference = metrics_of(tmp_path / "run" / "record.json"), metrics_of(tmp_path / "reference" / "record.json")
    assert record["resumed_from"] == record["iterations"] == reference["iterations"]
    assert record["stop_reason"] == reference["stop_reason"]
    assert not checkpoint.exists()
    assert (tmp_path / "run" / "restored.png").read_bytes() == (tmp_path / "reference" / "restored.png").read_bytes()


def test_a_checkpoint_of_another_fit_is_left_alone(tiny_png, tmp_path):
    obs = degrade(tiny_png, tmp_path / "obs")
    checkpoint = tmp_path / "ckpt" / "fit.pt"
    checkpoint.parent.mkdir()
    torch.save({"version": CHECKPOINT_VERSION, "fingerprint": "another fit"}, checkpoint)
    saved = checkpoint.read_bytes()
    args = ["--arch", "tiny", "--iterations", 5, "--checkpoint-every", 2, "--quiet", "--checkpoint", checkpoint]
    assert run_dip("restore", obs, *args, "--out", tmp_path / "run") == 0
    assert (tmp_path / "run" / "restored.png").exists()
    assert checkpoint.read_bytes() == saved


def test_outputs_get_the_usual_permissions(tiny_png, tmp_path):
    obs, out = tmp_path / "obs", tmp_path / "run"
    umask = os.umask(0o027)
    try:
        assert run_dip("degrade", tiny_png, "--task", "inpainting", "--level", "random50", "--out", obs) == 0
        assert run_dip("restore", obs, "--arch", "tiny", "--iterations", 3, "--quiet", "--out", out) == 0
    finally:
        os.umask(umask)
    written = [obs / name for name in ("observed.png", "clean.png", "mask.png", "observation.json")]
    written += [out / name for name in ("restored.png", "record.json", "trace.csv")]
    assert {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in written} == {
        path.name: oct(0o666 & ~0o027) for path in written
    }


def test_evaluate_without_a_record_says_so(tiny_png, tmp_path, capsys):
    obs = degrade(tiny_png, tmp_path / "obs")
    run = tmp_path / "run"
    run.mkdir()
    capsys.readouterr()
    assert run_dip("evaluate", run, "--observation", obs, "--out", run / "metrics.json") == 2
    assert error_line(capsys, "evaluate") == f"dip evaluate: error: {run}: not a run directory (no record.json)"


@pytest.mark.parametrize(
    ("command", "option", "value", "message"),
    [
        ("restore", "--lr", "inf", "lr must be a positive finite number, not inf"),
        ("restore", "--lr", "nan", "lr must be a positive finite number, not nan"),
        ("restore", "--seed", "-1", "seed must be an integer from 0 to 2**63 - 1, not -1"),
        ("degrade", "--seed", "-1", "seed must be an integer from 0 to 2**63 - 1, not -1"),
    ],
)
def test_non_finite_lr_and_negative_seeds_are_refused_alike(
    tiny_png, tmp_path, capsys, command, option, value, message
):
    obs = tmp_path / "obs"
    if command == "degrade":
        args = ["degrade", tiny_png, "--task", "denoising", "--level", "25", option, value, "--out", obs]
    else:
        args = ["restore", degrade(tiny_png, obs), "--arch", "tiny", option, value, "--out", tmp_path / "run"]
    capsys.readouterr()
    assert run_dip(*args) == 2
    assert error_line(capsys, command) == f"dip {command}: error: {message}"


def test_a_fit_that_ends_worse_than_it_began_warns(tiny_png, tmp_path, caplog, monkeypatch):
    obs, out = degrade(tiny_png, tmp_path / "obs"), tmp_path / "run"
    # from iteration 15 on, a data term ≥ 81, above its start (≤ 1), whatever the rounding
    monkeypatch.setattr(Denoising, "forward_model", lambda self, observation, device="cpu": ShiftedOn(range(16, 21)))
    assert run_dip("restore", obs, "--arch", "tiny", "--iterations", 20, "--quiet", "--out", out) == 0
    warnings = metrics_of(out / "record.json")["warnings"]
    assert len(warnings) == 1 and "did not converge" in warnings[0]
    assert warnings[0] in caplog.text


def test_a_transparent_image_is_refused_with_a_fix_that_exists(tmp_path, capsys):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 3] = 128
    source = tmp_path / "logo.png"
    Image.fromarray(rgba, "RGBA").save(source)
    assert run_dip("degrade", source, "--task", "denoising", "--level", "25", "--out", tmp_path / "obs") == 2
    line = error_line(capsys, "degrade")
    assert str(source) in line and "alpha channel" in line and "alpha=" not in line


def test_messages_name_the_users_file_not_its_exported_copy(tiny_png, tmp_path, capsys):
    assert run_dip("datasets", "export", tiny_png.parent, "--images", "tiny", "--out", tmp_path / "copy") == 0
    copy = tmp_path / "copy" / "tiny.png"
    assert (
        run_dip("degrade", copy, "--task", "denoising", "--level", "25", "--multiple", 64, "--out", tmp_path / "o") == 2
    )
    err = capsys.readouterr().err
    assert err.startswith(f"dip degrade: error: {tiny_png}: image is 32×32") and str(copy) not in err


def test_messages_name_the_crop_of_the_users_file(tiny_png, tmp_path, capsys):
    """A cropped export is not the user's file as it is: the message names the file and what the export made of it."""
    assert run_dip("datasets", "export", tiny_png.parent, "--crop", 16, "--out", tmp_path / "copy") == 0
    copy = tmp_path / "copy" / "tiny.png"
    assert run_dip("degrade", copy, "--task", "super-resolution", "--level", "4", "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dip degrade: error: {tiny_png} (centre-cropped to 16×16): image is 16×16"), err


def test_export_shrinks_the_whole_photo_then_crops_it(tmp_path):
    out = tmp_path / "img"
    assert (
        run_dip(
            "datasets", "export", "skimage-samples", "--images", "chelsea", "--shrink", 64, "--crop", 64, "--out", out
        )
        == 0
    )
    exported = read_image(out / "chelsea.png")  # 300×451 → 64×96 → its centre 64×64
    assert exported.shape == (64, 64, 3)
    assert run_dip("datasets", "export", "skimage-samples", "--images", "chelsea", "--shrink", 0, "--out", out) == 2
