"""Every level the workflow's schema admits, through `dip degrade → restore → baseline → evaluate` (the `tiny` net,
a few iterations): each task object's level grammar, paper settings, baselines and protocols meet the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from skimage import data

from dip.cli import main
from dip.io import write_image, write_mask
from dip.methods import METHODS
from dip.tasks import make_operator

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text())
SCHEMA_LEVELS = sorted(
    {
        (task, str(level))
        for task, spec in SCHEMA["properties"]["tasks"]["properties"].items()
        for level in spec["items"]["enum"]
    }
)


def run_dip(*args: object) -> int:
    return main([str(a) for a in args])


def _smoke(method: str) -> list[object]:
    """A few iterations for a method that fits a net (the zero-shot denoisers), as DIP gets here: the levels are
    checked, not the methods' results (tests/test_methods_nets.py checks those)."""
    return ["--smoke-iterations", 3, "--device", "cpu"] if METHODS[method].fits_net else []


@pytest.fixture(scope="module")
def image_and_mask(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 96×96 astronaut crop (its sides divide by 32 and by every SR factor) and a mask file for level `file`."""
    folder = tmp_path_factory.mktemp("level-inputs")
    write_image(folder / "astronaut.png", data.astronaut()[20:116, 170:266].astype(np.float32) / 255)
    mask = np.ones((96, 96, 1), np.float32)
    mask[36:60, 30:66] = 0
    write_mask(folder / "mask.png", mask)
    return folder / "astronaut.png", folder / "mask.png"


def test_the_schema_admits_every_task() -> None:
    tasks = {"denoising", "super-resolution", "inpainting", "jpeg", "deblurring", "flash-no-flash"}
    assert {task for task, _ in SCHEMA_LEVELS} == tasks
    assert ("super-resolution", "8-bicubic") in SCHEMA_LEVELS and ("denoising", "shot-3") in SCHEMA_LEVELS


@pytest.mark.parametrize(("task", "level"), SCHEMA_LEVELS)
def test_every_schema_level_runs_end_to_end(task: str, level: str, image_and_mask, tmp_path: Path) -> None:
    image, mask = image_and_mask
    operator = make_operator(task, level)
    obs = tmp_path / "obs"
    flags = ["--mask-file", mask] if operator.needs_mask_file else []
    flags += ["--flash-file", image] if operator.needs_flash_file else []  # a pair of one photo twice: any same size
    assert run_dip("degrade", image, "--task", task, "--level", level, *flags, "--out", obs) == 0
    arch = {"preset": "tiny", "input_depth": 3} if operator.needs_flash_file else {"preset": "tiny"}
    runs = {"dip": ["restore", obs, "--arch-json", json.dumps(arch), "--iterations", 3, "--quiet"]}
    runs |= {method: ["baseline", obs, "--method", method, *_smoke(method)] for method in operator.baselines}
    for name, command in runs.items():
        if name == "bm3d":
            pytest.importorskip("bm3d", reason="the optional bm3d extra is not installed")
        assert run_dip(*command, "--out", tmp_path / name) == 0, name
        assert run_dip("evaluate", tmp_path / name, "--observation", obs, "--out", tmp_path / f"{name}.json") == 0
        metrics = json.loads((tmp_path / f"{name}.json").read_text())
        assert metrics["ground_truth"] is operator.has_ground_truth
        if operator.has_ground_truth:
            assert metrics["protocol"] == operator.metric_protocol and np.isfinite(metrics["psnr"]), name
        else:
            assert "psnr" not in metrics and "ssim" not in metrics, name
        assert metrics["level"] == operator.level
    fit = json.loads((tmp_path / "dip" / "record.json").read_text())["fit"]
    paper = operator.paper_fit()
    assert fit["iterations"] == 3
    assert {key: fit[key] for key in paper if key != "iterations"} == {
        k: v for k, v in paper.items() if k != "iterations"
    }
