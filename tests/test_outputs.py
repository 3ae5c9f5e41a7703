"""Nothing lost, whatever the user types: every command checks the paths it writes (`dip.outputs`) and its inputs
before any work, refuses a bad one in one line (exit 2), and leaves every file that was there as it was."""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dip import outputs
from dip.cli import main
from dip.errors import ImageError, OutputRefused

TINY = ("--arch", "tiny", "--iterations", "2", "--quiet")
OUT = ("--out", "o")


def run_dip(*args: object) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of what the commands make, 64-px crops and fits of two iterations of the tiny net: images (an
    export), observations (denoising σ 25 and 50, inpainting), two DIP runs, a baseline run and their mean, a metrics
    record, a summary and its traces, a report and a viewer; and things of the user's: a note, an empty folder, a
    folder of their own, a black mask, a binary file, a restored.png of their own."""
    base = tmp_path_factory.mktemp("made")
    cwd = os.getcwd()
    os.chdir(base)
    try:
        export = ("datasets", "export", "skimage-samples", "--images", "astronaut", "chelsea", "--crop", 64)
        steps = [
            (*export, "--out", "img"),
            ("degrade", "img/astronaut.png", "--task", "denoising", "--level", "25", "--out", "obs"),
            ("degrade", "img/astronaut.png", "--task", "denoising", "--level", "50", "--out", "obs50"),
            ("degrade", "img/astronaut.png", "--task", "inpainting", "--level", "random50", "--out", "obs_inp"),
            ("restore", "obs", *TINY, "--out", "run_dip"),
            ("restore", "obs", *TINY, "--seed", 1, "--out", "run_dip1"),
            ("baseline", "obs", "--method", "nlm", "--out", "run_nlm"),
            ("evaluate", "run_dip", "--observation", "obs", "--out", "m.json"),
            ("aggregate", "m.json", "--out", "s.csv", "--traces-out", "t.csv"),
            ("combine", "run_dip", "run_dip1", "--out", "run_mean"),
            ("render", "s.csv", "--traces", "t.csv", "--tables", "rendered", "--figures", "rendered"),
            ("viewer", "s.csv", "--out", "v"),
        ]
        for step in steps:
            assert run_dip(*step) == 0, step
    finally:
        os.chdir(cwd)
    (base / "notes.txt").write_text("mine\n")
    (base / "adir").mkdir()
    (base / "mine").mkdir()
    (base / "mine" / "thesis.md").write_text("mine\n")
    (base / "my-tables").mkdir()
    (base / "my-tables" / "denoising.md").write_text("| my | table |\n")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(base / "black.png")
    (base / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (base / "restored.png").write_bytes((base / "run_dip" / "restored.png").read_bytes())
    return base


@pytest.fixture
def work(made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of `made`, the working directory of the test."""
    folder = tmp_path / "work"
    shutil.copytree(made, folder)
    monkeypatch.chdir(folder)
    return folder


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` and its bytes' digest ('dir' for a folder)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in root.rglob("*")
    }


def refused(work: Path, capsys: pytest.CaptureFixture[str], argv: tuple, fragment: str) -> None:
    """`dip argv` exits 2 with one line on stderr holding `fragment`, and every path under `work` is as it was (no
    file changed, lost or added)."""
    capsys.readouterr()
    before = snapshot(work)
    assert run_dip(*argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dip {argv[0]}: error: "), lines
    assert fragment in lines[0], lines[0]
    assert snapshot(work) == before


# The commands and what they write: the argument list with OUT where the output path goes, the output's kind, and
# paths that are this command's own input, another command's output of the same shape (folder or file), and inside
# another command's folder.
COMMANDS = {
    "degrade": (("degrade", "img/astronaut.png", "--task", "denoising", "--level", "25", "--out", "OUT"), "run_dip"),
    "restore": (("restore", "obs", *TINY, "--out", "OUT"), "run_nlm"),
    "restore --checkpoint": (("restore", "obs", *TINY, "--out", "new", "--checkpoint", "OUT"), "m.json"),
    "baseline": (("baseline", "obs", "--method", "nlm", "--out", "OUT"), "run_dip"),
    "combine": (("combine", "run_dip", "run_dip1", "--out", "OUT"), "run_nlm"),
    "evaluate": (("evaluate", "run_dip", "--observation", "obs", "--out", "OUT"), "s.csv"),
    "aggregate": (("aggregate", "m.json", "--out", "OUT"), "t.csv"),
    "aggregate --traces-out": (("aggregate", "m.json", "--out", "new.csv", "--traces-out", "OUT"), "s.csv"),
    "render --tables": (("render", "s.csv", "--tables", "OUT", "--figures", "figures"), "run_dip"),
    "render --figures": (("render", "s.csv", "--tables", "tables", "--figures", "OUT"), "obs"),
    "viewer": (("viewer", "s.csv", "--out", "OUT"), "run_dip"),
    "datasets export": (("datasets", "export", "img", "--images", "chelsea", "--out", "OUT"), "obs"),
}
FOLDER_OUTPUTS = {"degrade", "restore", "baseline", "combine", "render --tables", "render --figures", "viewer"}
FOLDER_OUTPUTS |= {"datasets export"}
INPUT = {"degrade": "img/astronaut.png", "restore": "obs", "restore --checkpoint": "obs", "baseline": "obs"}
INPUT |= {"combine": "run_dip1", "evaluate": "run_dip", "aggregate": "m.json", "aggregate --traces-out": "m.json"}
INPUT |= {"render --tables": "s.csv", "render --figures": "s.csv", "viewer": "s.csv", "datasets export": "img"}
RECORDS_FAILURES = {"degrade", "restore", "baseline", "combine", "evaluate", "datasets export"}


def bad_outputs(command: str) -> Iterator[tuple[str, str, str]]:
    """(class, path, a fragment of the refusal) for every class of bad output path of `command`."""
    folder = command in FOLDER_OUTPUTS
    yield "empty", "", "an empty path"
    yield "working directory", ".", "the working directory itself"
    yield "working directory, spelt otherwise", "adir/..", "the working directory itself"
    yield "own input", INPUT[command], "one of the command's own inputs"
    yield "under a file", "notes.txt/x", "lies under notes.txt, a file"
    yield "inside another command's folder", "obs/x", "lies inside obs, an observation"
    yield "a user's file", "notes.txt", "not a folder" if folder else "a file, not"
    if folder:
        yield "another command's folder", COMMANDS[command][1], "holds"
        held = "files that dip render did not write" if command.startswith("render") else "other files"
        yield "a folder of the user's", "mine", f"holds {held} (thesis.md)"
    else:
        yield "another command's file", COMMANDS[command][1], "not a"
        yield "a folder", "adir", "a folder, not"
    if command.startswith("render"):
        yield (
            "a file of the user's by a name render writes",
            "my-tables",
            "holds files that dip render did not write (denoising.md)",
        )
    yield "a broken link", "dangling", "a broken symbolic link"


CASES = [
    pytest.param(command, path, fragment, record, id=f"{command}: {name}{' + --record-failure' if record else ''}")
    for command in COMMANDS
    for name, path, fragment in bad_outputs(command)
    for record in ((False, True) if command in RECORDS_FAILURES else (False,))
]


@pytest.mark.parametrize(("command", "path", "fragment", "record"), CASES)
def test_every_command_refuses_every_bad_output_and_loses_nothing(work, capsys, command, path, fragment, record):
    (work / "dangling").symlink_to(work / "nowhere")
    argv = tuple(path if arg == "OUT" else arg for arg in COMMANDS[command][0])
    refused(work, capsys, argv + (("--record-failure", "job.log") if record else ()), fragment)


BAD_INPUTS = {
    "restore: a missing observation": (("restore", "nowhere", *TINY, "--out", "r"), "not an observation directory"),
    "restore: an empty observation path": (("restore", "", *TINY, "--out", "r"), "not an observation directory"),
    "restore: a run for an observation": (("restore", "run_dip", *TINY, "--out", "r"), "not an observation directory"),
    "restore: a seed given twice": (("restore", "obs", *TINY, "--seeds", 1, 1, "--out", "b"), "--seeds: 1 given twice"),
    "restore: an observation given twice": (
        ("restore", "obs", "obs/", *TINY, "--seeds", 1, "--out", "b"),
        "obs: given twice",
    ),
    "restore: two observations of one run name": (
        ("restore", "obs", "copy/obs", *TINY, "--seeds", 1, "--out", "b"),
        "obs and copy/obs would both write b/denoising/25/obs/dip-tiny/seed1",
    ),
    "restore: 100000 threads (OpenMP crashed)": (
        ("restore", "obs", *TINY, "--threads", 100000, "--out", "r"),
        "threads must be from 1 to",
    ),
    "restore: a seed of 2**64": (("restore", "obs", *TINY, "--seed", 2**64, "--out", "r"), "from 0 to 2**63 - 1"),
    "restore: a seed of 2**63": (("restore", "obs", *TINY, "--seed", 2**63, "--out", "r"), "from 0 to 2**63 - 1"),
    "degrade: a seed of 2**63": (
        ("degrade", "img/astronaut.png", "--task", "denoising", "--level", "25", "--seed", 2**63, "--out", "o"),
        "from 0 to 2**63 - 1",
    ),
    "degrade: a mask with no known pixel": (
        ("degrade", "img/astronaut.png", "--task", "inpainting", "--level", "file", "--mask-file", "black.png", *OUT),
        "black.png: the mask has no known pixel",
    ),
    "degrade: a Gaussian kernel larger than the image": (
        ("degrade", "img/astronaut.png", "--task", "deblurring", "--level", "gauss100000-n2", "--out", "o"),
        "the blur kernel's radius 400000",
    ),
    "degrade: a motion kernel larger than the image": (
        ("degrade", "img/astronaut.png", "--task", "deblurring", "--level", "motion100000-45deg-n2", "--out", "o"),
        "the blur kernel's radius 35355",
    ),
    "evaluate: another task's observation": (
        ("evaluate", "run_dip", "--observation", "obs_inp", "--out", "m2.json"),
        "run_dip: restores another observation than obs_inp",
    ),
    "evaluate: another level's observation": (
        ("evaluate", "run_dip", "--observation", "obs50", "--out", "m2.json"),
        "run_dip: restores another observation than obs50",
    ),
    "combine: runs of two observations": (
        ("combine", "run_dip", "run_nlm_50", "--out", "c"),
        "run_nlm_50: restores another observation than run_dip",
    ),
    "evaluate: a binary run record": (
        ("evaluate", "run_binary", "--observation", "obs", "--out", "m2.json"),
        "run_binary/record.json: not a run record",
    ),
    "combine: a run record that is a JSON list": (
        ("combine", "run_dip", "run_list", "--out", "c"),
        "run_list/record.json: not a run record",
    ),
    "combine: runs of two methods, unnamed": (
        ("combine", "run_dip", "run_nlm", "--out", "c"),
        "run_nlm is a run of nlm, run_dip of dip-tiny: a mean over runs of different methods needs a name",
    ),
    "combine: one run twice": (("combine", "run_dip", "run_dip/", "--out", "c"), "run_dip: given twice"),
    "datasets export: an unknown image": (
        ("datasets", "export", "skimage-samples", "--images", "nothere", "--out", "e"),
        "has no image 'nothere'",
    ),
    "aggregate: one record twice": (("aggregate", "m.json", "m.json", "--out", "s2.csv"), "scores the same run as"),
    "aggregate: two records of one run": (
        ("aggregate", "m.json", "run_dip/metrics.json", "--out", "s2.csv"),
        "run_dip/metrics.json: scores the same run as m.json",
    ),
    "aggregate: a seed beyond int64": (("aggregate", "m63.json", "--out", "s2.csv"), "m63.json: seed must be"),
    "aggregate: a binary file": (("aggregate", "binary.bin", "--out", "s2.csv"), "cannot read the metrics record"),
    "aggregate: a JSON list": (("aggregate", "list.json", "--out", "s2.csv"), "not a metrics record"),
    "aggregate: a run scored against another observation": (
        ("aggregate", "m_refitted.json", "--out", "s2.csv"),
        "scores run_refitted against another observation than the one it restores",
    ),
    "render: a binary summary": (("render", "binary.bin", "--tables", "t", "--figures", "f"), "cannot read the table"),
    "render: binary traces": (
        ("render", "s.csv", "--traces", "binary.bin", "--tables", "t", "--figures", "f"),
        "cannot read the table",
    ),
    "render: run folders gone": (
        ("render", "gone.csv", "--tables", "t", "--figures", "f"),
        "of its runs' folders are not here (e.g. gone)",
    ),
    "viewer: a binary summary": (("viewer", "binary.bin", "--out", "v"), "cannot read the table"),
    "viewer: run folders gone": (("viewer", "gone.csv", "--out", "v"), "none of the summary's run folders exists"),
}


@pytest.mark.parametrize(("argv", "fragment"), list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_every_command_refuses_bad_input_and_loses_nothing(work, capsys, argv, fragment):
    (work / "list.json").write_text("[1, 2]\n")
    metrics = json.loads((work / "m.json").read_text())
    (work / "m63.json").write_text(json.dumps({**metrics, "seed": 2**63}))
    for name, record in (("run_binary", b"\x80\x81"), ("run_list", b"[1]")):
        shutil.copytree(work / "run_dip", work / name)
        (work / name / "record.json").write_bytes(record)
    shutil.copy(work / "m.json", work / "run_dip" / "metrics.json")
    (work / "gone.csv").write_text((work / "s.csv").read_text().replace("run_dip", "gone"))
    if "copy/obs" in argv:
        shutil.copytree(work / "obs", work / "copy" / "obs")
    if "run_nlm_50" in argv:
        assert run_dip("baseline", "obs50", "--method", "nlm", "--out", "run_nlm_50") == 0
    if "m_refitted.json" in argv:  # a run scored, then fitted again to another observation
        assert run_dip("evaluate", "run_dip", "--observation", "obs", "--out", "m_refitted.json") == 0
        metrics = json.loads((work / "m_refitted.json").read_text())
        shutil.copytree(work / "run_dip", work / "run_refitted")
        assert run_dip("restore", "obs50", *TINY, "--out", "run_refitted") == 0
        (work / "m_refitted.json").write_text(json.dumps({**metrics, "run_dir": "run_refitted"}))
    refused(work, capsys, tuple(str(arg) for arg in argv), fragment)


def test_a_command_replaces_its_own_output_and_nothing_else(work):
    """The same kind of command may replace its output; what the old output had and the new one has not goes (a
    degrade over an inpainting observation leaves no mask; a fit over a failed one no failure record); a file of
    the user's in a folder of its own stays."""
    assert run_dip("degrade", "img/astronaut.png", "--task", "denoising", "--level", "25", "--out", "obs_inp") == 0
    assert {path.name for path in (work / "obs_inp").iterdir()} == {"clean.png", "observation.json", "observed.png"}
    assert run_dip("restore", "obs", *TINY, "--seed", -1, "--out", "run_dip1", "--record-failure", "job.log") == 0
    assert sorted(path.name for path in (work / "run_dip1").iterdir()) == ["failure.json"]
    assert run_dip("restore", "obs", *TINY, "--out", "run_dip1") == 0
    assert "failure.json" not in {path.name for path in (work / "run_dip1").iterdir()}
    assert run_dip("evaluate", "run_dip1", "--observation", "obs", "--out", "run_dip1/metrics.json") == 0
    assert run_dip("restore", "obs", *TINY, "--out", "run_dip1") == 0  # a run's metrics record is left alone
    assert (work / "run_dip1" / "metrics.json").is_file()
    assert json.loads((work / "run_dip1" / "record.json").read_text())["kind"] == "restore"
    assert run_dip("baseline", "obs", "--method", "nlm", "--out", "run_nlm") == 0
    assert run_dip("evaluate", "run_dip", "--observation", "obs", "--out", "m.json") == 0
    assert run_dip("aggregate", "m.json", "--out", "s.csv", "--traces-out", "t.csv") == 0
    assert run_dip("viewer", "s.csv", "--out", "v") == 0
    assert run_dip("viewer", "s.csv", "--out", "v") == 0
    assert run_dip("render", "s.csv", "--tables", "report", "--figures", "report") == 0
    assert run_dip("render", "s.csv", "--tables", "report", "--figures", "report") == 0
    assert (work / "restored.png").read_bytes() == (work / "run_dip" / "restored.png").read_bytes()


def test_a_refusal_with_record_failure_writes_no_failure_record(work, capsys):
    """--record-failure turns a user error into a failure record in the output folder, but not a refused output
    folder: the record would go where the command may not write."""
    refused(work, capsys, ("baseline", "obs", "--method", "nlm", "--out", "run_dip", "--record-failure", "l"), "holds")


def test_the_biharmonic_baseline_records_a_mask_with_no_known_pixel_as_a_failure(work):
    """A mask with no known pixel (an observation folder whose mask was blacked out) is a user error that the
    workflow records, not a traceback: for the baseline and for a fit, before it starts."""
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(work / "obs_inp" / "mask.png")
    assert run_dip("baseline", "obs_inp", "--method", "biharmonic", "--out", "b", "--record-failure", "l") == 0
    assert "the mask has no known pixel" in json.loads((work / "b" / "failure.json").read_text())["error"]
    assert run_dip("restore", "obs_inp", *TINY, "--out", "r", "--record-failure", "l") == 0
    assert "the mask has no known pixel" in json.loads((work / "r" / "failure.json").read_text())["error"]
    assert sorted(path.name for path in (work / "r").iterdir()) == ["failure.json"]


def test_a_failed_save_of_the_checkpoint_leaves_no_temporary_file(work, monkeypatch, capsys):
    """A checkpoint that cannot be saved (a disk full) is one line, and leaves no half-written .tmp beside it."""
    import torch

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    assert run_dip("restore", "obs", *TINY, "--out", "r", "--checkpoint", "fit.ckpt") == 2
    assert "cannot save the checkpoint fit.ckpt (No space left on device)" in capsys.readouterr().err
    assert not [path for path in work.iterdir() if "fit.ckpt" in path.name]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            OSError(28, "No space left on device", "r/trace.csv"),
            "r/trace.csv (No space left on device); the fit is kept",
        ),
        (ImageError("r/trace.csv: refused"), "r/trace.csv: refused"),  # as an image that is not finite is refused
    ],
    ids=["disk full", "refused"],
)
def test_outputs_cut_short_leave_no_part_that_stops_the_same_command(work, monkeypatch, capsys, error, message):
    """A fit whose outputs could not all be written (a full disk after restored.png, or an output refused) leaves
    nothing of them (they were built beside --out), so the same command run again finishes from the checkpoint into
    the folder, instead of meeting files it cannot tell as its own."""
    from dip.api import restoring

    write_trace = restoring.write_trace

    def failing(*args, **kwargs):
        raise error

    command = ("restore", "obs", *TINY, "--out", "r", "--checkpoint", "fit.ckpt")
    monkeypatch.setattr(restoring, "write_trace", failing)
    assert run_dip(*command) == 2
    assert message in capsys.readouterr().err
    assert not (work / "r").exists() and leftovers(work) == []
    monkeypatch.setattr(restoring, "write_trace", write_trace)
    assert run_dip(*command) == 0
    assert json.loads((work / "r" / "record.json").read_text())["resumed_from"] == 2


NAMES = st.sampled_from(["", ".", "..", "obs", "run_dip", "run_nlm", "notes.txt", "adir", "mine", "img", "new", "x"])
NAMES |= st.sampled_from(["m.json", "s.csv", "t.csv", "thesis.md", "restored.png", "observation.json", "record.json"])
KINDS = [outputs.OBSERVATION, outputs.DIP_RUN, outputs.BASELINE_RUN, outputs.COMBINED_RUN, outputs.IMAGES]
KINDS += [outputs.VIEWER, outputs.REPORT, outputs.METRICS, outputs.SUMMARY, outputs.TRACES, outputs.CHECKPOINT]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(NAMES, min_size=0, max_size=4), kind=st.sampled_from(KINDS), absolute=st.booleans())
def test_a_claim_writes_nothing_and_accepts_only_what_is_free(made, parts, kind, absolute):
    """Any path made of the folder's names: `claim` writes nothing, refuses in one line, and accepts only a path that
    is not the working directory, lies under no file nor in another command's folder, and is new or of its kind."""
    cwd = os.getcwd()
    os.chdir(made)
    try:
        before = snapshot(made)
        text = os.path.join(*parts) if parts else ""
        text = str(made / text) if absolute and text else text
        try:
            path = outputs.claim(text, kind)
        except OutputRefused as refusal:
            assert "\n" not in str(refusal)
        else:
            resolved = path.resolve()
            assert text.strip() and resolved != made.resolve()
            assert all(parent.is_dir() for parent in resolved.parents if parent.exists())
            hosts = [(resolved.parent, run) for run in outputs.RUNS] if kind is outputs.METRICS else []
            owned = [(parent, other) for parent in resolved.parents for other in outputs.FOLDERS if other.owns(parent)]
            assert set(owned) <= set(hosts)
            if path.exists():
                assert path.is_dir() == kind.folder
                assert (kind.folder and not any(path.iterdir())) or kind.owns(path)
        assert snapshot(made) == before
    finally:
        os.chdir(cwd)


def test_a_render_cut_short_leaves_no_part_of_a_file_that_blocks_the_next(work, monkeypatch):
    """The workflow renders its tasks at once into one shared folder, each checking the folder's files first: a
    render killed while it writes a figure must leave either the whole file or none, never a part that the next
    render (or one of another task, running beside it) takes for a file of the user's."""
    from matplotlib.figure import Figure

    real_savefig = Figure.savefig

    def savefig_then_die(figure, target, **kwargs):
        real_savefig(figure, target, **kwargs)
        if hasattr(target, "truncate"):  # cut short within the PNG's header
            target.truncate(16)
        else:
            Path(target).write_bytes(Path(target).read_bytes()[:16])
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", savefig_then_die)
    assert run_dip("render", "s.csv", "--tables", "report", "--figures", "report") != 0  # "interrupted"
    monkeypatch.setattr(Figure, "savefig", real_savefig)
    assert run_dip("render", "s.csv", "--tables", "report", "--figures", "report") == 0


@pytest.mark.parametrize(
    "command",
    [("render", "s.csv", "--tables", "report", "--figures", "report"), ("viewer", "s.csv", "--out", "report")],
    ids=["render", "viewer"],
)
def test_a_corrupt_restored_image_stops_render_and_viewer_before_they_replace_anything(work, capsys, command):
    """A restored image that cannot be read is named in one line, and the report or viewer made before stays whole:
    both build everything before they write (the viewer in a folder of its own beside --out)."""
    assert run_dip(*command) == 0
    summary = (work / "s.csv").read_text()
    (work / "s.csv").write_text(summary.replace("dip-tiny", "dip-other"))  # new tables, if any were written
    (work / "run_dip" / "restored.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    before = snapshot(work)
    capsys.readouterr()
    assert run_dip(*command) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "run_dip/restored.png" in error, error
    assert snapshot(work) == before


# Interruptions, a full disk, what an interrupted command leaves, and two commands at once (`dip.replacing`): each
# command over its own earlier output (a named path, made by `made`), and what it writes there.
REPLACING = {
    "degrade": ("degrade", "img/astronaut.png", "--task", "denoising", "--level", "50", "--out", "obs"),
    "restore": ("restore", "obs", *TINY, "--seed", 2, "--out", "run_dip"),
    "restore --checkpoint": ("restore", "obs", *TINY, "--out", "new", "--checkpoint", "fit.ckpt"),
    "baseline": ("baseline", "obs", "--method", "tv", "--out", "run_nlm"),
    "combine": ("combine", "run_dip1", "run_dip", "--out", "run_mean"),
    "evaluate": ("evaluate", "run_dip1", "--observation", "obs", "--out", "m.json"),
    "aggregate": ("aggregate", "m.json", "--out", "s.csv", "--traces-out", "t.csv"),
    "render": ("render", "s.csv", "--tables", "rendered", "--figures", "rendered"),
    "viewer": ("viewer", "s.csv", "--image-side", 32, "--out", "v"),
    "datasets export": ("datasets", "export", "skimage-samples", "--images", "coffee", "--crop", 64, "--out", "img"),
}
LOCKED = {  # each output path a command locks: (command, option)
    (command, option)
    for command, argv in REPLACING.items()
    for option in ("--out", "--checkpoint", "--traces-out")
    if option in argv and command != "render"  # the tasks render into one folder at once, file by file: no lock
}
LEFTOVER = r"\..+\.([0-9a-f]{32}\.(tmp|old)|dip-lock)"
"""What an interrupted command leaves beside its output (`dip.replacing`): a folder or file built part-way, an old
output moved aside, a lock file."""


def argv_of(command: str) -> tuple[str, ...]:
    return tuple(str(arg) for arg in REPLACING[command])


def output_of(argv: tuple[str, ...], option: str = "--out") -> str:
    return argv[argv.index(option) + 1] if option in argv else argv[argv.index("--tables") + 1]


def leftovers(root: Path) -> list[str]:

    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if re.fullmatch(LEFTOVER, path.name))


def writes_refused_by_a_full_disk(root: Path):
    """`open` where every file opened for writing under `root` is created but nothing fits in it (ENOSPC)."""

    real_open = builtins.open

    def opening(file, mode="r", *args, **kwargs):
        writing = isinstance(file, str | os.PathLike) and set(str(mode)) & set("wxa+")
        if writing and Path(file).resolve().is_relative_to(root.resolve()):
            real_open(file, mode, *args, **kwargs).close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, mode, *args, **kwargs)

    return opening


@pytest.mark.parametrize("command", list(REPLACING))
def test_a_full_disk_is_one_line_and_every_earlier_file_keeps_its_bytes(work, capsys, monkeypatch, command):
    """On a full disk (ENOSPC on every file written, injected), each command replacing its earlier output says so in
    one line (exit 2, no traceback) and leaves every file as it was: the old run, observation, summary and traces,
    report, viewer and export, and no part of the new one."""
    opening = writes_refused_by_a_full_disk(work)
    monkeypatch.setattr(builtins, "open", opening)
    monkeypatch.setattr(io, "open", opening)
    refused(work, capsys, argv_of(command), "No space left on device")


@pytest.mark.parametrize("command", ["degrade", "restore", "baseline", "datasets export"])
def test_a_full_disk_with_record_failure_is_still_one_line(work, capsys, monkeypatch, command):
    """A command that cannot write its output nor, then, its failure record (`--record-failure`) says both in one
    line, exit 2, and leaves every file as it was."""
    opening = writes_refused_by_a_full_disk(work)
    monkeypatch.setattr(builtins, "open", opening)
    monkeypatch.setattr(io, "open", opening)
    argv = (*argv_of(command), "--record-failure", "job.log")
    refused(work, capsys, argv, "(failure record not written: cannot write")


@pytest.fixture
def full_disk(made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of `made` on a tmpfs of its own (the working directory), then filled up to its last byte."""

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the tests as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        shutil.copytree(made, disk / "work")
        monkeypatch.chdir(disk / "work")
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            for chunk in (2**16, 2**12, 1):
                with pytest.raises(OSError, match="No space left"):
                    while True:
                        os.write(fd, b"\0" * chunk)
        finally:
            os.close(fd)
        yield disk / "work"
    finally:
        monkeypatch.undo()
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize("command", ["restore", "aggregate", "render", "viewer", "degrade"])
def test_a_full_tmpfs_is_one_line_and_every_earlier_file_keeps_its_bytes(full_disk, capsys, command):
    """The same on a real full disk (a tmpfs): `dip restore --out RUN` over a good run, `dip aggregate` over a
    summary and its traces, `dip render`, `dip viewer` and `dip degrade` over their earlier outputs."""
    refused(full_disk, capsys, argv_of(command), "No space left on device")
    assert leftovers(full_disk) == []


@pytest.mark.parametrize("command", list(REPLACING))
def test_what_an_interrupted_command_left_never_blocks_it(work, capsys, command):
    """A command killed part-way leaves, beside its output, the folder or temporary file it was building and its lock
    file (with the pid of a process that is gone); run again, it replaces its output and removes them."""
    argv = argv_of(command)
    written = {output_of(argv, option) for option in ("--out", "--checkpoint", "--traces-out") if option in argv}
    for name in written - {"rendered"}:
        (work / f".{name}.dip-lock").write_text("999999999\n")
        part = work / f".{name}.{'0' * 32}.tmp"
        part.mkdir()
        (part / "observed.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # a part of an image, as a kill leaves it
    shared = [f"rendered/.denoising.md.{'1' * 32}.tmp"] if command == "render" else []
    for name in shared:  # in a report folder, which tasks render into at once: tolerated, not removed
        (work / name).write_text("| cut")
    assert run_dip(*argv) == 0
    assert leftovers(work) == shared


KILLED = """
import contextlib, os, sys
import dip.io

real, started = dip.io.atomic_file, []


@contextlib.contextmanager
def killed_at_the_nth(path):
    started.append(path)
    if len(started) == int(sys.argv[1]):
        os.kill(os.getpid(), 9)
    with real(path) as handle:
        yield handle


dip.io.atomic_file = killed_at_the_nth
from dip.cli import main

main(sys.argv[2:])
"""


def visible(root: Path) -> dict[str, str]:
    """`snapshot` but for what an interrupted command leaves beside its output."""

    return {path: digest for path, digest in snapshot(root).items() if not re.search(LEFTOVER, path)}


@pytest.mark.parametrize(
    ("argv", "file"),
    [
        (REPLACING["degrade"], 2),  # observed.png written, clean.png and observation.json not
        (("degrade", "img/astronaut.png", "--task", "denoising", "--level", "50", "--out", "obs_new"), 2),
        (("datasets", "export", "skimage-samples", "--images", "coffee", "rocket", "--crop", 64, "--out", "img"), 2),
        (("datasets", "export", "skimage-samples", "--crop", 64, "--out", "img_new"), 3),  # 2 images, no sources.json
        (REPLACING["restore"], 2),  # restored.png written, record.json not
        (("baseline", "obs", "--method", "tv", "--out", "run_new"), 2),  # the same: a folder holding only restored.png
        (("aggregate", "m.json", "m1.json", "--out", "s.csv", "--traces-out", "t.csv"), 2),  # the new summary written
    ],
    ids=["degrade over obs", "degrade", "export over img", "export", "restore over run", "baseline", "aggregate"],
)
def test_a_killed_command_leaves_its_earlier_output_whole_and_its_rerun_replaces_it(work, argv, file):
    """A command killed (SIGKILL: no clean-up runs) as it starts the `file`-th file of its output leaves every earlier
    file as it was and nothing at a new output path; the same command run again succeeds, and leaves nothing of the
    first."""
    from dip import datasets

    for name in datasets.list_images("skimage-samples"):  # each sample in the cache: an export writes only its own
        datasets.image_path("skimage-samples", name)
    assert run_dip("evaluate", "run_dip1", "--observation", "obs", "--out", "m1.json") == 0
    argv = tuple(str(arg) for arg in argv)
    before = visible(work)
    killed = subprocess.run([sys.executable, "-c", KILLED, str(file), *argv], cwd=work, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert visible(work) == before
    assert leftovers(work)  # what the kill left: the part built, the lock file
    assert run_dip(*argv) == 0
    assert leftovers(work) == []


def test_a_kill_between_the_two_renames_of_a_swap_loses_nothing(work):
    """Killed after it moved the old output aside and before it moved the new one in, a command leaves both whole;
    run again, it puts the old one back and then replaces it."""
    script = """
import os, sys
from pathlib import Path

real = Path.rename


def rename_then_killed(path, target):
    moved = real(path, target)
    if str(target).endswith(".old"):
        os.kill(os.getpid(), 9)
    return moved


Path.rename = rename_then_killed
from dip.cli import main

main(sys.argv[2:])
"""
    argv = argv_of("baseline")
    old = snapshot(work / "run_nlm")
    killed = subprocess.run([sys.executable, "-c", script, "0", *argv], cwd=work, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert not (work / "run_nlm").exists()
    (aside,) = work.glob(".run_nlm.*.old")
    assert snapshot(aside) == old
    assert run_dip(*argv) == 0
    assert json.loads((work / "run_nlm" / "record.json").read_text())["method"] == "tv"
    assert leftovers(work) == []


@pytest.mark.parametrize(("command", "option"), sorted(LOCKED))
def test_a_command_on_an_output_another_is_writing_is_refused(work, capsys, command, option):
    """Two commands on one output are not raced (the last writer winning, or two fits sharing one checkpoint's
    temporary file): while one holds the output's lock, the other is refused in one line naming its pid, and changes
    nothing."""
    from dip.replacing import locked

    argv = argv_of(command)
    with locked(Path(output_of(argv, option)), option):
        refused(work, capsys, argv, f"another dip command is writing it (pid {os.getpid()})")


def test_the_lock_is_held_by_another_process_until_it_ends(work, capsys):
    """Held by another process, the lock refuses the command with that process's pid; once it ends, however it
    ends, the command runs."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pathlib import Path; from dip.replacing import locked\n"
            "with locked(Path('run_dip')):\n    print('held', flush=True)\n    input()",
        ],
        cwd=work,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        refused(work, capsys, argv_of("restore"), f"another dip command is writing it (pid {holder.pid})")
    finally:
        holder.kill()
        holder.wait()
    assert run_dip(*argv_of("restore")) == 0
    assert leftovers(work) == []


def test_temporary_files_of_one_path_have_names_of_their_own(tmp_path):
    """Two writers of one file at once (two fits saving one checkpoint) each write a temporary file of its own: each
    leaves the file whole, never a mix of the two."""
    from dip.io import atomic_file

    path = tmp_path / "fit.ckpt"
    with atomic_file(path) as first, atomic_file(path) as second:
        first.write(b"first" * 1000)
        second.write(b"second" * 1000)
        assert first.name != second.name
    assert path.read_bytes() == b"first" * 1000  # the last to finish
    assert [p.name for p in tmp_path.iterdir()] == ["fit.ckpt"]
