"""The Snakemake workflow, run on copies of it in a temporary folder: the planned grid, config validation, lint and
format, the SLURM profile (its real runs are in tests/test_workflow_runs.py)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dip.io import write_image

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "profiles")
TEST_CONFIG = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
# Jobs call `dip`: put this interpreter's scripts first on PATH whether or not its venv is activated.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def workflow_copy(folder: Path, config: dict) -> Path:
    """The workflow's files copied into `folder`, with `config` as its config/config.yaml."""
    folder.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
    (folder / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )


def job_counts(output: str) -> dict[str, int]:
    """Jobs per rule from the job statistics of a dry run."""
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", output, re.MULTILINE)}


def planned_jobs(cwd: Path) -> dict[str, int]:
    """Jobs per rule of a dry run."""
    result = snakemake(cwd, "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr + result.stdout
    return job_counts(result.stdout)


@pytest.fixture(scope="module")
def grid_dry_run(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The output of `snakemake -n -p` for two datasets (embedded samples, a folder cut to 2 of its 3 images),
    5 levels, 2 variants on denoising, 2 seeds."""
    root = tmp_path_factory.mktemp("grid")
    for name in ("c", "a", "b"):
        write_image(root / "photos" / f"{name}.png", np.full((40, 40, 3), 0.5, dtype=np.float32))
    config = copy.deepcopy(TEST_CONFIG)
    config["datasets"] = {
        "samples": {"source": "skimage-samples", "images": ["astronaut", "coffee"]},
        "photos": {"source": str(root / "photos"), "limit": 2},
    }
    config["tasks"] = {"denoising": ["25", 50], "super-resolution": [4], "inpainting": ["random50", "box25"]}
    config["variants"] = {"tiny": {"preset": "tiny"}, "small": {"preset": "tiny", "channels_down": [8, 8, 8]}}
    config["fit"]["denoising"]["variants"] = ["tiny", "small"]
    config["fit"]["denoising"]["outputs"] = ["last", "seed-mean"]
    config["fit"]["super-resolution"].update(precision="bf16", channels_last=True)
    config["fit"]["inpainting"]["seeds"] = [3]
    config["seeds"] = [0, 1]
    config["baselines"] = {"denoising": ["nlm", "tv"], "super-resolution": ["bicubic", "lanczos"], "inpainting": []}
    result = snakemake(workflow_copy(root / "wf", config), "-n", "-p")
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_dry_run_plans_the_whole_grid(grid_dry_run: str) -> None:
    # 4 images (2 per dataset) × 5 levels = 20 observations; DIP runs per image: denoising 2 levels × 2 variants
    # × 2 seeds = 8, each with its last output, and a mean over seeds per level and variant (4), super-resolution
    # 1 × 1 × 2 = 2, inpainting 2 × 1 × its 1 seed = 2; baselines: 2 × 2 + 1 × 2 = 6.
    assert job_counts(grid_dry_run) == {
        "export_image": 4,
        "degrade": 20,
        "restore": 4 * 12,
        "last_output": 4 * 8,
        "seed_mean": 4 * 4,
        "baseline": 4 * 6,
        "evaluate": 4 * 30,
        "aggregate": 1,
        "render": 3,
        "publish": 3,
        "viewer": 1,
        "all": 1,
        "total": 273,
    }


def test_combined_outputs_are_made_from_the_fits(grid_dry_run: str) -> None:
    commands = re.findall(r"^Shell command: (dip combine .*)$", grid_dry_run, re.MULTILINE)
    run = "results/photos/denoising/50/a/dip-small"
    assert f"dip combine {run}/seed0 {run}/seed1 --method dip-small-mean2 --out {run}/seed-mean" in "\n".join(commands)
    assert f"dip combine {run}/seed1 --output last --method dip-small-last --out {run}/seed1-last" in "\n".join(
        commands
    )
    assert "--seed 3 " in next(c for c in grid_dry_run.splitlines() if "dip restore" in c and "/inpainting/" in c)


def checkpoint_of(command: str) -> str:
    return re.search(r"--checkpoint (\S+)", command).group(1)


def test_dip_command_lines_carry_the_variant_and_fit_settings(grid_dry_run: str) -> None:
    commands = re.findall(r"^Shell command: (dip restore .*)$", grid_dry_run, re.MULTILINE)
    small = next(c for c in commands if "/photos/denoising/50/a/" in c and "--variant small" in c and "--seed 1" in c)
    assert """--arch-json '{"channels_down": [8, 8, 8], "preset": "tiny"}'""" in small
    assert "--iterations 30 --trace-every 5" in small
    assert re.search(
        r"--checkpoint results/.checkpoints/photos/denoising/50/a/dip-small/seed1-[0-9a-f]{12}\.ckpt", small
    )
    tiny = next(c for c in commands if "/photos/denoising/50/a/" in c and "--variant tiny" in c and "--seed 1" in c)
    assert checkpoint_of(tiny) != checkpoint_of(small)  # named by the settings: another fit never meets it
    assert "--device cpu --threads 1" in small
    assert "--channels-last" not in small and "--precision" not in small
    fast = next(c for c in commands if "/super-resolution/" in c)
    assert "--channels-last" in fast and "--precision bf16" in fast


PLANNED_RULES = ("export_image", "degrade", "restore", "last_output", "seed_mean", "baseline")


def test_fits_per_gpu_reaches_each_fit_on_its_command_line(tmp_path: Path) -> None:
    folder = workflow_copy(tmp_path / "wf", TEST_CONFIG)
    result = snakemake(folder, "--config", "fits_per_gpu=3", "-n", "-p")
    assert result.returncode == 0, result.stderr + result.stdout
    fits = re.findall(r"^Shell command: (.*dip restore .*)$", result.stdout, re.MULTILINE)
    assert fits and all(fit.startswith("DIP_FITS_PER_GPU=3 dip restore ") for fit in fits)


def paper_workflow(folder: Path) -> Path:
    """A workflow copy whose config/paper.yaml can be dry-run offline."""
    # Set14's names are known once its zip is fetched: give them here, so that the dry run needs no network.
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    config["datasets"]["set14"]["images"] = [f"image{i:02d}" for i in range(14)]
    workflow_copy(folder, TEST_CONFIG)
    # The CBM3D images are a local folder: the workflow checks that it exists and has the images the config names.
    for image in config["datasets"]["cbm3d-color9"]["images"]:
        write_image(folder / "data/cbm3d-color9" / f"{image}.png", np.full((64, 64, 3), 0.5, dtype=np.float32))
    (folder / "config/paper.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def test_paper_config_plans_the_papers_grid(tmp_path: Path) -> None:
    folder = paper_workflow(tmp_path / "wf")
    result = snakemake(folder, "--configfile", "config/paper.yaml", "-n", "-p")
    assert result.returncode == 0, result.stderr + result.stdout
    # observations: SR (5 + 14) × 4 levels, denoising 9 × 2, inpainting 3 × (random50, file) + barbara's random50 =
    # 101; DIP: SR 76 + denoising 18 × 2 seeds + inpainting 4 (random50: the paper net) + 3 × 2 (file: the text and
    # region nets), and each denoising fit's last output and the mean of its two seeds; baselines: SR 76 × 2 +
    # denoising 18 × 2 + inpainting 7.
    counts = job_counts(result.stdout)
    assert {rule: counts[rule] for rule in PLANNED_RULES} == {
        "export_image": 5 + 14 + 9 + 3 + 3 + 1,
        "degrade": 101,
        "restore": 122,
        "last_output": 36,
        "seed_mean": 18,
        "baseline": 195,
    }
    commands = re.findall(r"^Shell command: (dip \w+ .*)$", result.stdout, re.MULTILINE)
    kate = next(c for c in commands if c.startswith("dip degrade") and "/file/inpainting-kate/" in c)
    assert "--mask-file results/dip-inpainting/images/inpainting-kate_mask/inpainting-kate_mask.png" in kate
    bicubic_lr = next(
        c for c in commands if c.startswith("dip degrade") and "set5/super-resolution/8-bicubic/bird" in c
    )
    assert "--level 8-bicubic" in bicubic_lr and "--label source=set5" in bicubic_lr
    fits = [c for c in commands if c.startswith("dip restore")]
    random50 = [c for c in fits if "/inpainting/random50/" in c]
    assert len(random50) == 4 and all("--variant paper" in c for c in random50)
    assert not any("--iterations" in c or "--reg-noise-std" in c for c in fits), "the paper's per-level defaults apply"
    assert not any("samples" in c for c in commands), "the default config must not be merged into a given one"


def test_the_paper_grids_smoke_run_needs_no_network(tmp_path: Path, monkeypatch) -> None:
    folder = workflow_copy(tmp_path / "wf", TEST_CONFIG)
    monkeypatch.setitem(ENV, "DIP_DATA_DIR", str(tmp_path / "empty-cache"))
    result = snakemake(folder, "--configfile", "config/paper.yaml", "--config", "smoke_iterations=2", "-n", "-p")
    assert result.returncode == 0, result.stderr + result.stdout
    notes = [line for line in result.stderr.splitlines() if line.startswith("smoke run: ")]
    assert len(notes) == 6, notes
    assert "`dip datasets fetch set14` fetches it" in notes[1] and "stands in for denoising" in notes[-1]
    # the paper's nets and per-level settings on the stand-in: SR ×4/×8 in both LR conventions, σ 25/50 with two
    # seeds, random50 inpainting (level `file` needs the dataset's own masks)
    counts = job_counts(result.stdout)
    assert counts["restore"] == 4 + 2 * 2 + 1 and counts["seed_mean"] == 2
    assert "offline-stand-in" in result.stdout and "set5" not in result.stdout


def test_followups_config_adds_every_other_task_to_the_papers_grid(tmp_path: Path) -> None:
    folder = paper_workflow(tmp_path / "wf")
    result = snakemake(folder, "--configfile", "config/paper.yaml", "config/followups.yaml", "-n", "-p")
    assert result.returncode == 0, result.stderr + result.stdout
    commands = re.findall(r"^Shell command: (dip \w+ .*)$", result.stdout, re.MULTILINE)
    planned = {
        (dataset, task, level)
        for dataset, task, level in (
            re.search(r"results/([^/]+)/([^/]+)/([^/]+)/", c).groups() for c in commands if c.startswith("dip restore")
        )
    }
    color9 = {("cbm3d-color9", "denoising", level) for level in ("25", "50")}
    color9 |= {("cbm3d-color9", "denoising", f"{kind}-{s}") for kind in ("impulse", "shot", "speckle") for s in "234"}
    color9 |= {("cbm3d-color9", "jpeg", q) for q in ("10", "20", "30", "40")}
    color9 |= {("cbm3d-color9", "deblurring", level) for level in ("gauss1.6-n2", "motion9-45deg-n2")}
    sparse = {("dip-restoration", "inpainting", level) for level in ("random50", "random98")}
    assert color9 | sparse | {("dip-flash", "flash-no-flash", "pair")} <= planned
    assert {(d, t) for d, t, _ in planned} >= {("set5", "super-resolution"), ("dip-inpainting", "inpainting")}

    # The paper's rows stay as they were; the noise kinds run one seed to the end with ES-WMV watching.
    counts = job_counts(result.stdout)
    assert (counts["last_output"], counts["seed_mean"]) == (36, 18)
    noise_fits = [c for c in commands if c.startswith("dip restore") and re.search(r"/(impulse|shot|speckle)-", c)]
    assert len(noise_fits) == 9 * 9 and all("--es-continue" in c and "--seed 0" in c for c in noise_fits)
    fits = [c for c in commands if c.startswith("dip restore")]
    assert all("--variant light" in c for c in fits if "/jpeg/" in c)
    assert all("--variant flash-no-flash" in c for c in fits if "/flash-no-flash/" in c)
    assert all("--variant paper" in c for c in fits if "/random98/" in c)
    baselines = {
        (re.search(r"results/[^/]+/([^/]+)/([^/-]+)", c).groups(), re.search(r"--method (\S+)", c).group(1))
        for c in commands
        if c.startswith("dip baseline")
    }
    for (task, level), method in [
        (("denoising", "impulse"), "median"),
        (("denoising", "shot"), "bm3d-vst"),
        (("denoising", "speckle"), "nlm"),
        (("jpeg", "10"), "tv"),
        (("deblurring", "motion9"), "wiener"),
        (("flash-no-flash", "pair"), "guided-filter"),
    ]:
        assert ((task, level), method) in baselines


@pytest.mark.parametrize(
    ("change", "messages"),
    [
        (
            lambda c: c["fit"]["denoising"].update(iterations=-5),
            ["Invalid configuration: fit.denoising.iterations: -5 is less than the minimum of 1"],
        ),
        (lambda c: c["tasks"].update(sharpening=["1"]), ["tasks.sharpening: unknown key"]),
        (lambda c: c["tasks"].update(denoising=["30"]), ["tasks.denoising[0]: '30' is not one of"]),
        (
            lambda c: c["fit"]["inpainting"].update(variants=["huge"]),
            ["fit.inpainting.variants: unknown variant 'huge'"],
        ),
        (lambda c: c["fit"].pop("inpainting"), ["fit.inpainting: a benchmarked task needs DIP fit settings"]),
        (
            lambda c: c["datasets"]["samples"].update(masks={"rocket": "coffee"}),
            ["datasets.samples.masks: masks of images not in the dataset: rocket"],
        ),
        (
            lambda c: c["datasets"]["samples"].update(tasks=["sharpening"]),
            ["datasets.samples.tasks[0]: 'sharpening' is not one of"],
        ),
        (
            lambda c: c["datasets"]["samples"].update(pairs={"astronaut": "astronaut_flash"}),
            ["Invalid configuration: datasets.samples.pairs: flash photos not in skimage-samples: astronaut_flash"],
        ),
    ],
    ids=[
        "negative-iterations",
        "unknown-task",
        "unknown-level",
        "unknown-variant",
        "task-without-fit",
        "mask-of-unknown-image",
        "unknown-dataset-task",
        "missing-flash-photo",
    ],
)
def test_a_bad_config_stops_before_any_job(tmp_path: Path, change, messages: list[str]) -> None:
    config = copy.deepcopy(TEST_CONFIG)
    change(config)
    folder = workflow_copy(tmp_path / "wf", config)
    result = snakemake(folder, "--cores", "1")
    assert result.returncode != 0
    assert all(message in result.stderr for message in messages), result.stderr
    assert not (folder / "results").exists()


def test_lint_and_format_pass(tmp_path: Path) -> None:
    lint = snakemake(workflow_copy(tmp_path / "wf", TEST_CONFIG), "--lint")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    snakefmt = Path(sys.executable).parent / "snakefmt"
    check = subprocess.run([snakefmt, "--check", "Snakefile", "workflow"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_slurm_profile_puts_dip_fits_on_the_gpu_partition(tmp_path: Path) -> None:
    result = snakemake(workflow_copy(tmp_path / "wf", TEST_CONFIG), "--profile", "profiles/slurm", "-n")
    assert result.returncode == 0, result.stderr
    jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", result.stdout, re.MULTILINE)
    partitions = {rule: re.search(r"slurm_partition=(\w+)", res).group(1) for rule, res in jobs}
    assert partitions.pop("restore") == "gpu"
    assert set(partitions.values()) == {"cpu"} and "degrade" in partitions
    assert all("gpu=1" in res for rule, res in jobs if rule == "restore")


def dry_run_error(folder: Path, *args: str) -> str:
    """The error of a dry run that must stop before any job: one short message, no traceback, nothing planned."""
    result = snakemake(folder, "-n", *args)
    output = result.stderr + result.stdout
    assert result.returncode != 0, output
    assert "Traceback" not in output and "Job stats" not in output and "\nrule " not in output, output
    assert not (folder / "results").exists()
    error = output[output.index("Error") :].strip().splitlines()
    assert len(error) < 5, output
    return "\n".join(error)


def with_variant(spec: dict) -> object:
    """A change of the test config that fits variant `net` (model spec `spec`) on denoising."""

    def change(config: dict) -> None:
        config["variants"]["net"] = spec
        config["fit"]["denoising"]["variants"] = ["tiny", "net"]

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            with_variant({"preset": "tiny", "channels": [8, 8]}),
            "variants.net: model key 'channels' is not a parameter of arch 'skip'",
        ),
        (
            lambda c: c["datasets"]["samples"].update(images=["astronaut", "lena"]),
            "datasets.samples.images: not in skimage-samples: lena",
        ),
        (
            lambda c: c["datasets"]["samples"].update(source="data/no-such-folder"),
            "datasets.samples.source: unknown dataset 'data/no-such-folder'",
        ),
        (
            lambda c: c["datasets"]["samples"].update(masks={"astronaut": "astronaut_mask"}),
            "datasets.samples.masks: mask images not in skimage-samples: astronaut_mask",
        ),
        (
            lambda c: c["fit"]["denoising"].update(es_continue=True),
            "fit.denoising.es_continue: watches an early-stopping rule",
        ),
        (
            with_variant({"preset": "paper"}),
            "datasets.samples.crop: 32 leaves 32×32 images to restore for denoising 25, but variant 'net'",
        ),
        (lambda c: c["fit"]["denoising"].update(iterations=-3), "fit.denoising.iterations: -3 is less than the"),
    ],
    ids=["variant-key", "unknown-image", "missing-folder", "unknown-mask-image", "es-continue", "crop", "schema"],
)
def test_a_config_error_is_one_short_message_before_any_job(tmp_path: Path, change, message: str) -> None:
    config = copy.deepcopy(TEST_CONFIG)
    change(config)
    error = dry_run_error(workflow_copy(tmp_path / "wf", config))
    assert f"Invalid configuration: {message}" in error


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["seeds=[0,1"], "seeds: '[0,1' is not a YAML value"),
        (["fit__denoising__iterations=-3"], "fit.denoising.iterations: -3 is less than the minimum of 1"),
        (["datasets__samples__crop=48", "variants__tiny__preset=paper"], "datasets.samples.crop: 48 leaves 32×32"),
        (["fit__denoising__colour=1"], "fit.denoising.colour: unknown key"),
    ],
    ids=["bad-yaml", "schema", "crop", "unknown-key"],
)
def test_a_bad_config_override_is_one_short_message(tmp_path: Path, overrides: list[str], message: str) -> None:
    error = dry_run_error(workflow_copy(tmp_path / "wf", TEST_CONFIG), "--config", *overrides)
    assert f"Invalid configuration: {message}" in error


def test_config_overrides_of_lists_and_nested_keys(tmp_path: Path) -> None:
    # Snakemake reads `seeds=[0,1]` as ["0", "1"] and refuses dots in a key: nested keys are joined by "__".
    folder = workflow_copy(tmp_path / "wf", TEST_CONFIG)
    result = snakemake(
        folder, "-n", "-p", "--config", "seeds=[0,1]", "fit__denoising__iterations=7", "tasks={inpainting: []}"
    )
    assert result.returncode == 0, result.stderr + result.stdout
    commands = re.findall(r"^Shell command: (dip restore .*)$", result.stdout, re.MULTILINE)
    assert len(commands) == 2 * 2  # denoising and super-resolution (inpainting has no levels now), 2 seeds each
    assert {re.search(r"--seed (\d+)", c).group(1) for c in commands} == {"0", "1"}
    denoising = [c for c in commands if "/denoising/" in c]
    assert len(denoising) == 2 and all("--iterations 7 " in c for c in denoising)
    assert all("--iterations 30 " in c for c in commands if "/super-resolution/" in c)


def test_batch_fits_runs_the_dip_fits_of_one_variant_and_settings_as_one_batch(tmp_path: Path) -> None:
    """With `batch_fits: 3` the test grid's three DIP fits (three tasks on one 32² crop) run in one `dip restore`
    process; each run directory is where it would be without batching, its record says the batch's size."""
    config = {**copy.deepcopy(TEST_CONFIG), "batch_fits": 3}
    folder = workflow_copy(tmp_path / "wf", config)
    assert planned_jobs(folder)["fit_batch"] == 1
    runs = [f"results/samples/{task}/astronaut/dip-tiny/seed0" for task in ("denoising/25", "super-resolution/2")]
    runs.append("results/samples/inpainting/random50/astronaut/dip-tiny/seed0")
    result = snakemake(folder, "--cores", "1", *runs)
    assert result.returncode == 0, result.stderr[-3000:]
    for run in runs:
        record = json.loads((folder / run / "record.json").read_text())
        assert record["batch"] == 3 and record["iterations"] == 30 and (folder / run / "restored.png").exists()
