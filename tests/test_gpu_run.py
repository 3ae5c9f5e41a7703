"""The prepared GPU run (benchmarks/gpu/), on the CPU, so that it cannot rot: its parts one by one (the shared window
of fits at once, the authors' arithmetic, the deadline answered before torch, the carried versions, the plan, the
parity of a cut twin), then the whole run in smoke mode, from a carry made of ../shared (no wheels: snakemake and bm3d
come from this environment), the gpu tier skipped."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
GPU = REPO / "benchmarks" / "gpu"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def load(name: str):
    """A script of benchmarks/gpu/ as a module."""
    spec = importlib.util.spec_from_file_location(f"gpu_{name}", GPU / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# --- fits at once: one barrier, one window ---


def test_the_barrier_gives_every_fit_one_start_after_the_last_arrival(tmp_path: Path) -> None:
    at_once = load("at_once")
    starts, arrivals = {}, {}

    def arrive(index: int) -> None:
        time.sleep(0.3 * index)
        arrivals[index] = time.time()
        starts[index] = at_once.barrier(tmp_path, "case", index, 3, timeout=20)

    threads = [threading.Thread(target=arrive, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(starts.values())) == 1
    assert starts[0] >= max(arrivals.values()) and starts[0] - max(arrivals.values()) < at_once.MARGIN_S + 0.1


def test_a_fit_whose_sibling_never_arrives_gets_no_start(tmp_path: Path) -> None:
    assert load("at_once").barrier(tmp_path, "case", 0, 2, timeout=0.2) is None


@pytest.mark.slow
def test_fits_started_apart_are_timed_over_one_shared_window(tmp_path: Path, shared_dir: Path) -> None:
    """The second fit starts 4 s after the first, longer than the 1 s window: timed each on its own (as before the
    barrier), they would not overlap at all."""
    image = shared_dir / "data" / "dip-paper" / "denoising" / "F16_GT.png"
    command = [sys.executable, GPU / "at_once.py", "tiny-256-fp32", "--size", "32", "--barrier", tmp_path]
    command += ["--fits", "2", "--device", "cpu", "--image", image, "--window", "1", "--warmup", "1", "--threads", "1"]
    first = subprocess.Popen([*command, "--index", "0"], env=ENV, stdout=subprocess.PIPE, text=True)
    time.sleep(4)
    second = subprocess.Popen([*command, "--index", "1"], env=ENV, stdout=subprocess.PIPE, text=True)
    rows = [json.loads(process.communicate(timeout=300)[0].strip().splitlines()[-1]) for process in (first, second)]
    assert len({row["start"] for row in rows}) == 1
    for row in rows:
        assert row["began"] >= row["start"] and row["ended"] >= row["start"] + 1
        assert row["iterations"] >= 1 and row["s_per_iter"] == pytest.approx(
            (row["ended"] - row["began"]) / row["iterations"]
        )
    assert max(row["began"] for row in rows) < min(row["ended"] for row in rows)
    table = load("run").window_row(rows, "tiny-256-fp32", 2)
    assert 0 < table["overlap"] <= 1 and table["iterations"] == [row["iterations"] for row in rows]
    assert table["s_per_iter_throughput"] == pytest.approx(
        (max(r["ended"] for r in rows) - min(r["began"] for r in rows)) / sum(r["iterations"] for r in rows)
    )


def test_no_row_unless_every_fit_was_timed() -> None:
    timed = {"case": "c", "size": 64, "precision": "fp32", "began": 0.0, "ended": 1.0, "iterations": 4}
    timed |= {"s_per_iter": 0.25, "window_s": 1.0, "peak_gpu_gb": None}
    failed = {"case": "c", "error": "not all 2 fits reached the barrier"}
    assert load("run").window_row([timed, failed], "c", 2) is None


# --- the authors' row in our arithmetic ---


@pytest.mark.parametrize(("arithmetic", "expected"), [("ieee", "ieee ieee"), ("tf32", "tf32 tf32")])
def test_the_authors_driver_runs_in_the_arithmetic_named(tmp_path: Path, arithmetic: str, expected: str) -> None:
    """authors.py sets cuDNN's and cuBLAS's float32 arithmetic before the driver runs (flags only: no GPU needed)."""
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import sys, torch\n"
        "b = torch.backends\n"
        "print(b.cudnn.conv.fp32_precision, b.cuda.matmul.fp32_precision, b.cudnn.benchmark, sys.argv[1:])\n"
    )
    command = [sys.executable, GPU / "authors.py", "--arithmetic", arithmetic, driver, "--device", "cuda", "--x", "1"]
    run = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == f"{expected} False ['--device', 'cuda', '--x', '1']"


# --- the deadline answered before torch ---


@pytest.fixture
def observation(tmp_path: Path) -> Path:
    image = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "observation"
    command = [sys.executable, "-m", "dip", "degrade", image, "--task", "super-resolution", "--level", "4"]
    subprocess.run([*command, "--label", "image=x", "--out", out], env=ENV, check=True, timeout=120)
    return out


@pytest.mark.parametrize(
    "arguments",
    [["restore", "--variant", "paper", "--seed", "1", "--device", "cpu"], ["baseline", "--method", "bicubic"]],
    ids=["restore", "baseline"],
)
def test_past_the_deadline_the_runs_dip_writes_dips_record_without_torch(
    tmp_path: Path, observation: Path, arguments: list[str]
) -> None:
    """With a torch that cannot be imported, the run's `dip` still records the job as not started, exactly as
    `dip` itself does; before the deadline it hands the call to `dip` (which then needs torch)."""
    broken = tmp_path / "broken"
    (broken / "torch").mkdir(parents=True)
    (broken / "torch" / "__init__.py").write_text("raise ImportError('torch was imported')\n")
    without_torch = {**ENV, "PYTHONPATH": os.pathsep.join([str(broken), ENV["PYTHONPATH"]])}
    command, options = arguments[0], arguments[1:]

    def call(how: list, out: Path, env: dict, deadline: float) -> subprocess.CompletedProcess:
        argv = [*how, command, observation, *options, "--out", out, "--record-failure", "job.log"]
        env = {**env, "DIP_DEADLINE": str(deadline)}
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    ours = call([sys.executable, GPU / "dip_command.py"], tmp_path / "ours", without_torch, time.time() - 1)
    theirs = call([sys.executable, "-m", "dip"], tmp_path / "theirs", ENV, time.time() - 1)
    assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
    assert ours.stderr.strip() == theirs.stderr.strip().splitlines()[-1]
    records = [json.loads((tmp_path / name / "failure.json").read_text()) for name in ("ours", "theirs")]
    assert records[0] == records[1] and "not started" in records[0]["error"]
    before = call([sys.executable, GPU / "dip_command.py"], tmp_path / "later", without_torch, time.time() + 600)
    assert before.returncode != 0 and "torch was imported" in before.stderr
    assert not (tmp_path / "later" / "failure.json").exists()


# --- the carried versions ---


def wheel(folder: Path, name: str, version: str, *requires: str) -> None:
    metadata = "\n".join([f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)])
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", metadata + "\n")


def test_carried_versions_are_checked_against_the_machines_list(tmp_path: Path) -> None:
    check = load("check_carry")
    image = tmp_path / "image.txt"
    image.write_text("# the machine\npython==3.12.3\npackaging\nnumpy==2.5.2\n")
    wheel(
        tmp_path,
        "snakemake",
        "9.27.1",
        "packaging<26,>=24",
        "numpy<2",
        "absent>=1",
        'typing-extensions; python_version < "3.10"',
    )
    wheel(tmp_path, "packaging", "26.0")
    problems, _ = check.check_offline(check.carried(tmp_path), check.image(image))
    assert sorted(problems) == [
        "snakemake 9.27.1 needs absent>=1: neither carried nor on the machine",
        "snakemake 9.27.1 needs numpy<2; the machine has 2.5.2",
        "snakemake 9.27.1 needs packaging<26,>=24; carried 26.0",
    ]
    (tmp_path / "packaging-26.0-py3-none-any.whl").unlink()
    problems, left = check.check_offline(check.carried(tmp_path), check.image(image))
    assert "snakemake needs packaging<26,>=24 (on the machine, version not known here)" in left
    assert not any("packaging" in line for line in problems)


def test_a_carried_wheel_shadowed_by_another_version_is_found_where_it_runs(tmp_path: Path) -> None:
    check = load("check_carry")
    wheel(tmp_path, "pyyaml", "0.0.1")
    problems, _ = check.check_installed(check.carried(tmp_path))
    assert any(line.startswith("pyyaml: carried 0.0.1, imported ") for line in problems)


# --- the plan ---


def test_the_plan_gives_the_paper_grid_what_the_other_parts_leave() -> None:
    """The full run's budget (run.sh's LIMIT of 380 s less its set-up) leaves the grid room for Set5 ×4 after the
    tier's and the timings' slices; a part's slice follows its measured cost (--costs) up to its cap."""
    run = load("run")
    budget = 380 - 20 - 15
    plan = run.Plan(budget, run.ESTIMATES["full"], run.CAPS["full"])
    grid = plan.grid_end - plan.start - plan.slice("tier") - plan.slice("speed")
    assert grid >= 4 * run.ESTIMATES["full"]["fit"]
    measured = run.Plan(budget, {**run.ESTIMATES["full"], "tier": 20}, run.CAPS["full"])
    assert measured.slice("tier") == 20 * run.MARGIN < plan.slice("tier") == run.CAPS["full"]["tier"]


def summary(folder: Path, rows: list[tuple[str, str, float | None]]) -> Path:
    lines = ["dataset,level,image,method,status,psnr"]
    lines += [f"set5,4,{image},dip-paper,{status},{'' if psnr is None else psnr}" for image, status, psnr in rows]
    folder.mkdir()
    (folder / "summary.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_the_parity_compares_only_the_images_both_finished(tmp_path: Path) -> None:
    fp32 = summary(tmp_path / "fp32", [("bird", "ok", 30.0), ("baby", "ok", 31.0), ("head", "ok", 29.0)])
    bf16 = summary(tmp_path / "bf16", [("bird", "ok", 30.1), ("baby", "failed", None), ("head", "ok", 28.8)])
    parity = load("run").parity({"fp32": fp32, "bf16": bf16})
    assert parity["pairs"] == ["bird", "head"]
    assert parity["bf16_minus_fp32_db"] == pytest.approx(-0.05) and parity["largest_abs_db"] == pytest.approx(0.2)


# --- the whole run ---


@pytest.mark.slow
def test_the_gpu_run_in_smoke_mode(tmp_path: Path, shared_dir: Path) -> None:
    carry, out = tmp_path / "carry", tmp_path / "out"
    env = {**os.environ, "SHARED": str(shared_dir), "PYTHON": sys.executable, "CARRY": str(carry), "WHEELS": "0"}
    prepared = subprocess.run([GPU / "prepare.sh"], env=env, capture_output=True, text=True)
    assert prepared.returncode == 0, prepared.stderr
    command = [GPU / "run.sh", out, "--smoke", "--carry", carry]
    run = subprocess.run(command, env={**env, "LIMIT": "560"}, capture_output=True, text=True, timeout=620)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert sorted(path.name for path in out.iterdir()) == ["logs.tar.gz", "results.json", "summary.md", "tables.tar.gz"]
    results = json.loads((out / "results.json").read_text())
    assert results["smoke"] and results["gpu_tier"] is None
    rows = results["speed"]["rows"]
    assert {(row["code"], row["precision"], row["fits"]) for row in rows} == {
        ("ours", "fp32", 1),
        ("authors", "fp32", 1),
        ("ours", "fp32", 2),
    }
    assert all(row["s_per_iter"] > 0 for row in rows)
    (together,) = [row for row in rows if row["fits"] == 2]
    assert together["overlap"] > 0 and len(together["iterations"]) == 2
    tables = results["tables"]
    assert tables["stages"]["set5-x4"] > 0 and {"set5-x4", "set5-x4-bf16"} <= set(tables["stages_run"])
    # The twin is cut after bird (smoke), as a budget cuts it: its tables list butterfly as not started, and the
    # parity pairs the image that finished in both.
    assert tables["parity"]["pairs"] == ["bird"] and set(tables["parity"]["fp32"]["images"]) == {"bird", "butterfly"}
    with tarfile.open(out / "tables.tar.gz") as archive:
        names = archive.getnames()
        twin = archive.extractfile("bf16/summary.csv").read().decode()
    assert {"fp32/tables/super-resolution.md", "bf16/tables/super-resolution.md", "fp32/summary.csv"} <= set(names)
    (butterfly,) = [line for line in twin.splitlines() if ",butterfly,dip-paper," in line]
    assert "not started" in butterfly
    assert {"speed", "grid", "tables"} <= set(results["costs"])
    assert "# GPU run (smoke)" in (out / "summary.md").read_text()
