"""Nothing lost, whatever the user types: every command checks the paths it writes (`dip.outputs`) and its inputs
before any work, refuses a bad one in one line (exit 2), and leaves every file that was there as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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
    export), observations (denoising σ 25 and 50, inpainting), two DIP runs and a baseline run, a metrics record, a
    summary and its traces; and things of the user's: a note, an empty folder, a folder of their own, a black mask,
    a binary file, a restored.png of their own."""
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
    assert not [path for path in work.iterdir() if path.name.startswith("fit.ckpt")]


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
    """A fit whose outputs could not all be written (a full disk after restored.png, or an output refused) takes
    back what it wrote, so the same command run again finishes from the checkpoint into the folder, instead of
    meeting files it cannot tell as its own."""
    from dip.api import restoring

    write_trace = restoring.write_trace

    def failing(*args, **kwargs):
        raise error

    command = ("restore", "obs", *TINY, "--out", "r", "--checkpoint", "fit.ckpt")
    monkeypatch.setattr(restoring, "write_trace", failing)
    assert run_dip(*command) == 2
    assert message in capsys.readouterr().err
    assert not any((work / "r").iterdir())
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
