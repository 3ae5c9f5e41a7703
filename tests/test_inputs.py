"""Inputs read as the user sees them, or refused in one line before the work: a photo turned as its EXIF orientation
says, a symbolic link loop anywhere, a fit too big for the memory, numbers no fit could run; and what a command did
with an input it took otherwise than as given (an animation, a grey mask, SGLD with no sample) said in a warning."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from dip import memory
from dip.io import read_image, read_mask
from tests import test_outputs
from tests.test_outputs import TINY, refused, run_dip, snapshot

made, work = test_outputs.made, test_outputs.work  # the fixtures: a folder of what the commands make, and its copy

RNG = np.random.default_rng(0)
OUT = ("--out", "r")
EXIF_ORIENTATION = 0x0112


def with_orientation(path: Path, pixels: np.ndarray, orientation: int) -> Path:
    """Save `pixels` at `path` with an EXIF orientation tag (as a phone saves a photo taken upright or on its side)."""
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = orientation
    image.save(path, exif=exif, **({"quality": 100} if path.suffix == ".jpg" else {}))
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("shape", [(6, 10, 3), (6, 10)], ids=["rgb", "grey"])
def test_an_image_is_read_turned_as_its_exif_orientation_says(tmp_path, orientation, shape):
    """Each of the eight orientations gives what Pillow's `exif_transpose` (as a viewer shows the file) gives for a
    PNG; a TIFF the same (Pillow itself scrambles a grey TIFF that it turns: it is read with tifffile)."""
    pixels = (RNG.random(shape) * 255).astype(np.uint8)
    png = with_orientation(tmp_path / "photo.png", pixels, orientation)
    tif = with_orientation(tmp_path / "photo.tif", pixels, orientation)
    with Image.open(png) as image:
        shown = np.asarray(ImageOps.exif_transpose(image), np.float32) / 255
    shown = shown if shown.ndim == 3 else shown[..., None]
    assert shown.shape[:2] == ((10, 6) if orientation >= 5 else (6, 10))
    assert np.array_equal(read_image(png), shown)
    assert np.array_equal(read_image(tif), shown)


def test_a_16_bit_tiff_is_turned_as_its_orientation_says_too(tmp_path):
    import tifffile

    pixels = (RNG.random((6, 10)) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "deep.tif", pixels, extratags=[(274, "H", 1, 6, False)])  # 274: Orientation
    assert np.array_equal(read_image(tmp_path / "deep.tif")[..., 0], np.rot90(pixels, -1) / np.float32(65535))


def warned(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


def test_an_animation_is_read_by_its_first_frame_with_a_warning(tmp_path, caplog):
    frames = [Image.fromarray(np.full((4, 4), value, np.uint8)) for value in (0, 128, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[1].save(tmp_path / "still.gif")
    assert not read_image(tmp_path / "anim.gif").any()
    assert warned(caplog) == [f"{tmp_path / 'anim.gif'}: an animation of 3 frames; its first frame is used"]
    caplog.clear()
    read_image(tmp_path / "still.gif")
    assert not warned(caplog)


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (np.array([[0, 100, 128, 255]], np.uint8), "a grey mask with 2 pixels neither black nor white"),
        (np.array([[[0, 0, 0], [255, 0, 0], [255, 255, 255]]], np.uint8), "a colour mask with 1 pixels neither"),
    ],
    ids=["grey", "colour"],
)
def test_a_mask_that_is_not_black_and_white_is_thresholded_with_a_warning(tmp_path, caplog, pixels, message):
    Image.fromarray(pixels).save(tmp_path / "mask.png")
    read_mask(tmp_path / "mask.png")
    (warning,) = warned(caplog)
    assert message in warning and "read as known where the grey level is >= 0.5" in warning


def test_a_black_and_white_mask_is_read_without_a_word(tmp_path, caplog):
    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("RGB").save(tmp_path / "mask.png")
    assert read_mask(tmp_path / "mask.png")[..., 0].tolist() == [[0, 1], [1, 0]]
    assert not warned(caplog)


def test_a_portrait_photo_is_degraded_and_exported_upright(work):
    """`dip degrade` (also `--observed`) and `dip datasets export` read a photo as it is shown."""
    pixels = (RNG.random((64, 96, 3)) * 255).astype(np.uint8)  # sides that divide by 32: degrade crops to that
    (work / "photos").mkdir()
    with_orientation(work / "photos" / "portrait.jpg", pixels, 6)
    assert run_dip("degrade", "photos/portrait.jpg", "--task", "denoising", "--level", 25, "--out", "p") == 0
    assert read_image(work / "p" / "clean.png").shape == (96, 64, 3)
    observed = ("degrade", "photos/portrait.jpg", "--task", "denoising", "--level", 25, "--observed", "--out", "q")
    assert run_dip(*observed) == 0
    assert read_image(work / "q" / "observed.png").shape == (96, 64, 3)
    assert run_dip("datasets", "export", "photos", "--images", "portrait", "--out", "e") == 0
    assert read_image(work / "e" / "portrait.png").shape == (96, 64, 3)


def free_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kilobytes: int) -> None:
    """The CPU's available memory, as /proc/meminfo would say it, and no cgroup limit."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: 999999999 kB\nMemAvailable: {kilobytes} kB\n")
    monkeypatch.setattr(memory, "MEMINFO", meminfo)
    monkeypatch.setattr(memory, "CGROUP_LIMIT", tmp_path / "no-cgroup")


REFUSED = {
    "degrade: a symbolic link loop as the image": (
        ("degrade", "loop", "--task", "denoising", "--level", 25, "--out", "o"),
        "loop: a symbolic link loop",
    ),
    "degrade: a symbolic link loop as --out": (
        ("degrade", "img/astronaut.png", "--task", "denoising", "--level", 25, "--out", "loop"),
        "--out loop: a symbolic link loop",
    ),
    "degrade: a symbolic link loop above --out": (
        ("degrade", "img/astronaut.png", "--task", "denoising", "--level", 25, "--out", "loop/o"),
        "--out loop/o: a symbolic link loop",
    ),
    "degrade: a symbolic link loop as --mask-file": (
        ("degrade", "img/astronaut.png", "--task", "inpainting", "--level", "file", "--mask-file", "loop", *OUT),
        "loop: a symbolic link loop",
    ),
    "restore: a symbolic link loop as the observation": (
        ("restore", "loop", *TINY, "--out", "r"),
        "loop: a symbolic link loop",
    ),
    "restore: a symbolic link loop as --checkpoint": (
        ("restore", "obs", *TINY, "--out", "r", "--checkpoint", "loop"),
        "--checkpoint loop: a symbolic link loop",
    ),
    "restore: a net of 100000 channels": (
        ("restore", "obs", "--arch-json", '{"preset": "tiny", "channels_down": [100000, 8, 8]}', *TINY[2:], *OUT),
        "model key 'channels_down[0]' must be at most 4096, got 100000",
    ),
    "restore: a fit bigger than the free memory": (
        ("restore", "obs", *TINY, "--out", "r"),
        "a fit of tiny (143,887 parameters) on a 64×64 image needs about",
    ),
    "restore: --smoke-iterations 0": (
        ("restore", "obs", *TINY, "--smoke-iterations", 0, "--out", "r"),
        "smoke_iterations must be a whole number ≥ 1, not 0",
    ),
    "render: a summary with no runs": (
        ("render", "header.csv", "--tables", "t", "--figures", "f"),
        "header.csv: holds no runs; nothing to render",
    ),
    "render: a restored.png replaced by another size": (
        ("render", "s.csv", "--tables", "t", "--figures", "f"),
        "run_dip/restored.png: 32×32, but the image it restores is 64×64",
    ),
    "viewer: a restored.png replaced by another size": (
        ("viewer", "s.csv", "--out", "v"),
        "run_dip/restored.png: 32×32, but the image it restores is 64×64",
    ),
    "aggregate: a trace.csv that is not a trace": (
        ("aggregate", "m.json", "--out", "s2.csv", "--traces-out", "t2.csv"),
        "run_dip/trace.csv: not a trace written by `dip restore` (no column 'iteration')",
    ),
}


@pytest.mark.parametrize(("argv", "fragment"), list(REFUSED.values()), ids=list(REFUSED))
def test_every_input_no_command_can_use_is_refused_in_one_line_and_loses_nothing(
    work, capsys, monkeypatch, tmp_path, request, argv, fragment
):
    case = request.node.callspec.id
    (work / "loop").symlink_to("loop")
    (work / "header.csv").write_text((work / "s.csv").read_text().splitlines()[0] + "\n")
    if "restored.png replaced" in case:
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(work / "run_dip" / "restored.png")
    if "not a trace" in case:
        (work / "run_dip" / "trace.csv").write_text("garbage\n1\n")
    if "free memory" in case:
        free_memory(monkeypatch, tmp_path, 1000)  # 1 MB
    refused(work, capsys, tuple(str(arg) for arg in argv), fragment)


def test_a_fit_or_batch_bigger_than_the_free_memory_gets_a_failure_record(work, capsys, monkeypatch, tmp_path):
    """With --record-failure, the refusal is the run's failure record (each fit's, for a batch), and the job goes on."""
    free_memory(monkeypatch, tmp_path, 1000)
    capsys.readouterr()
    assert run_dip("restore", "obs", *TINY, "--out", "r", "--record-failure", "job.log") == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert "needs about" in line and "free; use a smaller net, image or batch" in line
    assert [path.name for path in (work / "r").iterdir()] == ["failure.json"]
    assert "needs about" in json.loads((work / "r" / "failure.json").read_text())["error"]
    assert run_dip("restore", "obs", *TINY, "--seeds", 0, 1, "--out", "b", "--record-failure", "job.log") == 0
    records = sorted((work / "b").rglob("failure.json"))
    errors = {json.loads(path.read_text())["error"] for path in records}
    assert len(records) == 2 and len(errors) == 1
    assert "2 fits of tiny (143,887 parameters) on a 64×64 image need about" in errors.pop()


@pytest.mark.parametrize(
    "error",
    [MemoryError(), __import__("torch").OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")],
    ids=["CPU MemoryError", "CUDA OutOfMemoryError"],
)
def test_a_fit_that_runs_out_of_memory_is_one_line_and_a_failure_record(work, capsys, monkeypatch, error):
    import torch

    def exhausted(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch.optim.Adam, "step", exhausted)
    before = snapshot(work)
    assert run_dip("restore", "obs", *TINY, "--out", "r") == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("dip restore: error: ") and "out of memory on cpu" in line, line
    assert snapshot(work) == before
    assert run_dip("restore", "obs", *TINY, "--out", "r", "--record-failure", "job.log") == 0
    assert "out of memory on cpu" in json.loads((work / "r" / "failure.json").read_text())["error"]


def test_a_huge_image_is_refused_before_its_fit_allocates_anything(work, capsys, monkeypatch, tmp_path):
    """A 2048² photo on a machine with 4 GB free: refused by the estimate (the net never built), in one line."""
    import dip.restoration

    side = 2048
    ramp = np.tile(np.linspace(0, 255, side).astype(np.uint8), (side, 1))
    Image.fromarray(ramp).save(work / "big.png")
    assert run_dip("degrade", "big.png", "--task", "denoising", "--level", 25, "--out", "big") == 0
    free_memory(monkeypatch, tmp_path, 4_000_000)
    monkeypatch.setattr(dip.restoration, "build_model", lambda *args: pytest.fail("the net was built"))
    capsys.readouterr()
    before = snapshot(work)
    assert run_dip("restore", "big", *TINY, "--out", "r") == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"on a {side}×{side} image needs about" in line and "but cpu has 4.1 GB free" in line, line
    assert snapshot(work) == before


def test_the_estimate_lets_an_ordinary_fit_run_and_grows_with_image_batch_and_width():
    from dip.fit_settings import FitSettings
    from dip.models import resolve_spec

    settings = FitSettings()
    tiny, paper = resolve_spec("tiny"), resolve_spec("paper")
    small, parameters = memory.fit_bytes(tiny, 3, 64, 64, settings)
    assert parameters == 143_887 and small < 100e6
    assert memory.fit_bytes(tiny, 3, 128, 128, settings)[0] > 3 * small
    assert memory.fit_bytes(tiny, 3, 64, 64, settings, batch=4)[0] == 4 * small
    assert memory.fit_bytes(paper, 3, 64, 64, settings)[0] > small


def test_sgld_that_takes_no_sample_says_so(work, caplog):
    argv = ("restore", "obs", *TINY[:2], "--iterations", 3, "--quiet", "--langevin-sigma", 2, "--out", "r")
    assert run_dip(*argv, "--langevin-burnin", 7000) == 0
    (warning,) = warned(caplog)
    assert "SGLD takes its first sample of the posterior at iteration 7050, past this fit's last (2)" in warning
    caplog.clear()
    assert run_dip(*argv[:-2], "--langevin-burnin", 0, "--langevin-every", 1, "--out", "r2") == 0
    assert not warned(caplog)


def test_a_failure_record_written_without_a_seed_is_aggregated_as_the_default_seed(work):
    assert run_dip("restore", "obs", *TINY, "--lr", -1, "--out", "rf", "--record-failure", "job.log") == 0
    assert json.loads((work / "rf" / "failure.json").read_text())["identity"]["seed"] is None
    assert run_dip("evaluate", "rf", "--observation", "obs", "--out", "mf.json", "--record-failure", "job.log") == 0
    assert run_dip("aggregate", "mf.json", "m.json", "--out", "s2.csv") == 0
    rows = (work / "s2.csv").read_text().splitlines()
    assert len(rows) == 3 and any("failed" in row for row in rows)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "soon"])
def test_a_deadline_that_is_no_time_is_refused_in_one_line(work, capsys, monkeypatch, value):
    """$DIP_DEADLINE=nan would never be reached (NaN compares false): a budgeted run would never stop starting fits."""
    monkeypatch.setenv("DIP_DEADLINE", value)
    refused(
        work,
        capsys,
        ("restore", "obs", *TINY, "--out", "r"),
        f"DIP_DEADLINE must be a Unix time in seconds, not '{value}'",
    )
