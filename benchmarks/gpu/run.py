"""The prepared GPU run (benchmarks/gpu/README.md), in one time budget: the gpu test tier, seconds per iteration of
the paper net side by side (the authors' code, ours in fp32 / TF32 / bf16 with 1, 2 and 4 fits at once, the FLOP
floor), and the paper's tables on the carried data through the workflow, in priority order (Set5 ×4, with a bf16
twin for the fp32/bf16 parity, F16, Set5 ×8, barbara, the rest). Once the budget is spent no fit starts
($DIP_DEADLINE); fits still running at the hard limit are stopped; the tables are then made of what ran, and list
what did not. Everything lands in OUTDIR as at most 8 files (summary.md, results.json, logs.tar.gz, tables.tar.gz).

    benchmarks/gpu/run.sh OUTDIR            # on the GPU machine (run.sh sets up the carried wheels)
    benchmarks/gpu/run.sh OUTDIR --smoke    # a few iterations on tiny crops, on any machine (tests/test_gpu_run.py)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
STAGES = (
    ("set5-x4", r"^results/metrics/set5/super-resolution/4/"),
    ("f16", r"^results/metrics/cbm3d-color9/denoising/"),
    ("set5-x8", r"^results/metrics/set5/super-resolution/8/"),
    ("barbara", r"^results/metrics/dip-restoration/"),
    ("rest", r"^results/metrics/"),
)
"""Priority order of the paper's grid: a stage's runs are the metrics files its pattern matches first."""
SET5_X4 = {"denoising": [], "super-resolution": ["4"], "inpainting": []}
RUNNING: list[subprocess.Popen] = []
"""The commands running now, each in a process group of its own: stopped when the run itself is stopped."""


class Budget:
    """Seconds left until the soft deadline (no new fit) and the hard one (stop what runs, keep time for tables)."""

    def __init__(self, seconds: float, reserve: float) -> None:
        self.start = time.time()
        self.soft = self.start + seconds - reserve
        self.hard = self.start + seconds - reserve / 2

    def left(self) -> float:
        return self.soft - time.time()

    def elapsed(self) -> float:
        return time.time() - self.start


def run_logged(command: list[str], log: Path, *, env: dict | None = None, until: float | None = None, cwd=None) -> int:
    """Run `command`, its output into `log`; stopped (SIGTERM to its process group, then SIGKILL) at time `until`."""
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(map(str, command))}\n")
        handle.flush()
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        RUNNING.append(process)
        timeout = None if until is None else max(1.0, until - time.time())
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            handle.write(f"\n[run.py] stopped at its time limit ({time.strftime('%H:%M:%S')})\n")
            return stop(process)
        finally:
            RUNNING.remove(process)


def stop(process: subprocess.Popen) -> int:
    """SIGTERM to the process group (a fit saves its checkpoint and stops), SIGKILL 20 s later."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def gpu_tier(out: Path, budget: Budget) -> dict:
    log = out / "logs" / "gpu-tier.log"
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-m", "gpu", "-p", "no:cacheprovider", "-rA"]
    code = run_logged(command, log, cwd=REPO, until=budget.start + 0.3 * (budget.soft - budget.start))
    tail = log.read_text().strip().splitlines()[-1:] or [""]
    return {"returncode": code, "summary": tail[0]}


def flops(size: int, device: str) -> float:
    """FLOPs of one forward + backward of the paper net at size², by torch's FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dip.models import build_model, make_input

    net = build_model("paper", 3).to(device)
    z = make_input("paper", size, size, torch.Generator().manual_seed(0)).to(device)
    with FlopCounterMode(display=False) as counter:
        net(z).square().mean().backward()
    return float(counter.get_total_flops())


def authors(out: Path, carry: Path, size: int, device: str, iterations: int, until: float) -> dict | None:
    """s/iter of the authors' denoising loop (their modules, their notebook's loop) on F16 at size² (512: the file
    itself; 256 and 64: centre crops made by prepare.sh)."""
    data = carry / "cache" / "dip-paper" if size == 512 else carry / "authors" / f"data-{size}"
    result = out / "logs" / f"authors-{size}.json"
    command = [sys.executable, str(carry / "authors" / "orig_dip_bench.py"), "--repo", str(carry / "authors")]
    command += ["--data", str(data), "--mode", "denoise", "--device", device, "--iters", str(iterations)]
    command += ["--warmup", str(min(3, iterations)), "--threads", "4", "--json", str(result)]
    run_logged(command, out / "logs" / "speed.log", cwd=carry / "authors", until=until)
    return json.loads(result.read_text())["result"] if result.is_file() else None


def peak(out: Path, carry: Path, device: str) -> dict:
    """The device's measured matmul and conv rates (the authors' driver, --mode peak)."""
    result = out / "logs" / "peak.json"
    command = [sys.executable, str(carry / "authors" / "orig_dip_bench.py"), "--repo", str(carry / "authors")]
    command += ["--mode", "peak", "--bf16", "--device", device, "--peak-reps", "5", "--json", str(result)]
    run_logged(command, out / "logs" / "speed.log", cwd=carry / "authors")
    return json.loads(result.read_text())["peak"] if result.is_file() else {}


def ours(out: Path, case: str, size: int, device: str, iterations: int, fits: int, until: float) -> list[dict]:
    """s/iter of our fit (benchmarks/bench_fit.py) with `fits` processes at once on the device (stopped at `until`)."""
    command = [sys.executable, str(REPO / "benchmarks" / "bench_fit.py"), "--single", case, "--device", device]
    command += ["--size", str(size), "--iterations", str(iterations), "--warmup", str(min(3, iterations))]
    log = out / "logs" / "speed.log"
    with log.open("a") as handle:
        handle.write(f"$ {fits} × {' '.join(command)}\n")
        handle.flush()
        processes = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=handle, text=True, start_new_session=True)
            for _ in range(fits)
        ]
        RUNNING.extend(processes)
        outputs = []
        for process in processes:
            try:
                outputs.append(process.communicate(timeout=max(1.0, until - time.time()))[0])
            except subprocess.TimeoutExpired:
                stop(process)
                handle.write(f"[run.py] {case} × {fits} stopped at the time limit of the timings\n")
            RUNNING.remove(process)
    rows = []
    for output in outputs:
        lines = output.strip().splitlines()
        if lines:
            rows.append(json.loads(lines[-1]))
    return rows


def speed(out: Path, carry: Path, args: argparse.Namespace, budget: Budget) -> list[dict]:
    """The side-by-side s/iter table: the authors' code, ours per precision (one fit, then 2 and 4 at once at the
    largest size), the floor (FLOPs over the measured peak)."""
    device = "cpu" if args.smoke else "cuda"
    sizes = (64,) if args.smoke else (256, 512)
    precisions = ("fp32",) if args.smoke else ("fp32", "tf32", "bf16")
    iterations = 2 if args.smoke else 30
    until = budget.start + 0.5 * (budget.soft - budget.start)  # the rest is the paper's grid's
    rates = {} if args.smoke else peak(out, carry, device)
    work = {size: flops(size, device) for size in sizes}
    rows = []

    def measure(size: int, precision: str, fits: int) -> None:
        if time.time() > until:
            return
        case = f"paper-{256 if size == 64 else size}-{precision}"
        results = ours(out, case, size, device, iterations, fits, until)
        if results:
            per_fit = sum(row["s_per_iter"] for row in results) / len(results)
            rows.append(
                {
                    "code": "ours",
                    "size": size,
                    "precision": precision,
                    "fits": fits,
                    "s_per_iter": per_fit,
                    "s_per_iter_throughput": per_fit / fits,
                    "gflop_per_iter": work[size] / 1e9,
                    "peak_gpu_gb": max((row["peak_gpu_gb"] or 0) for row in results),
                }
            )

    for size in sizes:
        if time.time() < until and (mine := authors(out, carry, size, device, iterations, until)):
            rows.append({"code": "authors", "size": size, "precision": "fp32", "fits": 1, **_timing(mine, work[size])})
        for precision in precisions:
            measure(size, precision, 1)
        floors = {"fp32": rates.get("matmul_8192_gflops_best"), "bf16": rates.get("matmul_8192_bf16_gflops_median")}
        for precision, rate in floors.items():
            if rate:
                floor = work[size] / rate / 1e9
                rows.append({"code": "floor", "size": size, "precision": precision, "fits": 1, "s_per_iter": floor})
    for fits in (2,) if args.smoke else (2, 4):
        for precision in precisions:
            measure(sizes[-1], precision, fits)
    return rows


def _timing(result: dict, work: float) -> dict:
    return {
        "s_per_iter": result["s_per_iter_median"],
        "s_per_iter_throughput": result["s_per_iter_median"],
        "gflop_per_iter": work / 1e9,
        "peak_gpu_gb": (result.get("peak_gpu_mb") or 0) / 1024,
    }


def overlay(carry: Path, args: argparse.Namespace, fits_per_gpu: int) -> dict:
    """The config over config/paper.yaml: datasets read from the carried cache (no network), the sets not carried
    (Set14, CBM3D's other images) left out, the GPU shared by `fits_per_gpu` fits."""
    config = {
        "datasets": {
            # no Set14 here: no image of it is carried, and flash-no-flash (which needs pairs) gives it no job
            "set14": {"source": "set14", "images": ["absent"], "tasks": ["flash-no-flash"]},
            "cbm3d-color9": {"source": str(carry / "cbm3d-color9"), "images": ["image_F16_512rgb"]},
        },
        "device": "cpu" if args.smoke else "cuda",
        "threads": 2,
        "fits_per_gpu": fits_per_gpu,
        "resources": {"gpu": 1},
    }
    if args.smoke:  # Set5 ×4 alone, two images cropped to 64², two iterations
        config["smoke_iterations"] = 2
        config["datasets"]["set5"] = {"source": "set5", "crop": 64, "images": ["bird", "butterfly"]}
        config["tasks"] = SET5_X4
    return config


def snakemake(
    folder: Path, configs: list[Path], env: dict, log: Path, options: list[str], targets=(), until: float | None = None
) -> int:
    """The workflow in `folder` (targets first: --configfile and --quiet take every word after them)."""
    command = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(REPO / "Snakefile")]
    command += ["--directory", str(folder), *options, "--configfile", *map(str, configs)]
    return run_logged(command, log, env=env, until=until)


def paper_tables(out: Path, carry: Path, args: argparse.Namespace, budget: Budget) -> dict:
    """The paper's grid on the carried data, stage by stage in priority order, then the tables of what ran."""
    work = Path(tempfile.mkdtemp(prefix="dip-gpu-run-"))
    fits = 1 if args.smoke else args.fits_per_gpu
    config = work / "overlay.yaml"
    config.write_text(yaml.safe_dump(overlay(carry, args, fits)))
    env = {**os.environ, "DIP_DATA_DIR": str(carry / "cache"), "DIP_FITS_PER_GPU": str(fits)}
    env["DIP_DEADLINE"] = str(budget.soft)
    cores = str(os.cpu_count() or 2)
    common = ["--cores", cores, "--resources", f"gpu={fits}", "--keep-going", "--quiet", "rules"]
    paper = REPO / "config" / "paper.yaml"
    log = out / "logs" / "workflow.log"
    snakefile, directory = str(REPO / "Snakefile"), str(work / "fp32")
    dry_run = ["--configfile", str(paper), str(config), "-n", "-p"]
    plan = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", snakefile, "--directory", directory, *dry_run],
        capture_output=True,
        text=True,
        env=env,
    )
    (work / "fp32").mkdir(exist_ok=True)
    metrics = sorted(set(re.findall(r"--out (results/metrics/\S+\.json)", plan.stdout)))
    with log.open("a") as handle:
        handle.write(plan.stdout[-3000:] + plan.stderr[-3000:])
    stages, left = {}, set(metrics)
    for name, pattern in STAGES:
        stages[name] = sorted(target for target in left if re.match(pattern, target))
        left -= set(stages[name])
    ran = []
    parity = work / "parity.yaml"
    low = {"precision": "bf16", "channels_last": True} if args.smoke else {"precision": "bf16"}  # what auto runs
    parity.write_text(yaml.safe_dump({"tasks": SET5_X4, "fit": {"super-resolution": low}}))
    for name, targets in stages.items():
        if budget.left() <= 0 or not targets:
            continue
        ran.append(name)
        snakemake(work / "fp32", [paper, config], env, log, common, targets, until=budget.hard)
        if name == "set5-x4" and budget.left() > 0:  # the bf16 twin of Set5 ×4, for the parity (its own tables)
            ran.append("set5-x4-bf16")
            snakemake(work / "bf16", [paper, config, parity], env, log, common, until=budget.hard)
    # The tables of everything: fits never started are recorded as such (DIP_DEADLINE is past by now, or set so).
    env["DIP_DEADLINE"] = str(min(budget.soft, time.time()))
    snakemake(work / "fp32", [paper, config], env, log, common, until=budget.hard + args.reserve / 2 - 5)
    tables = {}
    for name in ("fp32", "bf16"):
        results = work / name / "results"
        if (results / "tables").is_dir():
            tables[name] = results
    with tarfile.open(out / "tables.tar.gz", "w:gz") as archive:
        for name, results in tables.items():
            archive.add(results / "tables", arcname=f"{name}/tables")
            for file in ("summary.csv", "traces.csv"):
                if (results / file).is_file():
                    archive.add(results / file, arcname=f"{name}/{file}")
        for name in ("fp32", "bf16"):
            logs = work / name / "results" / "logs"
            if logs.is_dir():
                archive.add(logs, arcname=f"{name}/logs")
    summary = {"stages": {name: len(targets) for name, targets in stages.items()}, "stages_run": ran}
    summary["left_out"] = [name for name in [*stages, "set5-x4-bf16"] if name not in ran and stages.get(name, 1)]
    summary["parity"] = _parity(tables)
    summary["markdown"] = {
        name: sorted(p.name for p in (results / "tables").glob("*.md")) for name, results in tables.items()
    }
    shutil.rmtree(work, ignore_errors=True)
    return summary


def _parity(tables: dict[str, Path]) -> dict:
    """Set5 ×4 (Lanczos LR): per image and mean PSNR of dip-paper in fp32 and bf16."""
    import pandas as pd

    parity = {}
    for name, results in tables.items():
        summary = results / "summary.csv"
        if not summary.is_file():
            continue
        frame = pd.read_csv(summary, dtype={"level": str})
        rows = frame[
            (frame.dataset == "set5") & (frame.level == "4") & (frame.method == "dip-paper") & (frame.status == "ok")
        ]
        if len(rows):
            parity[name] = {"images": dict(zip(rows.image, rows.psnr, strict=True)), "mean": float(rows.psnr.mean())}
    if "fp32" in parity and "bf16" in parity:
        parity["bf16_minus_fp32_db"] = parity["bf16"]["mean"] - parity["fp32"]["mean"]
    return parity


def markdown(results: dict) -> str:
    lines = [f"# GPU run ({'smoke' if results['smoke'] else 'full'}): {results['wall_s']:.0f} s", ""]
    tier = results.get("gpu_tier")
    absent = "skipped (smoke)" if results["smoke"] else "did not finish"
    lines += [f"gpu tier: {tier['summary'] if tier else absent}", "", "## s/iter (paper net)", ""]
    lines += ["| code | size | precision | fits | s/iter per fit | s/iter throughput | GFLOP/iter | peak GPU GB |"]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for row in results["speed"]:
        cells = [row["code"], row["size"], row["precision"], row["fits"], f"{row['s_per_iter']:.4f}"]
        cells += [f"{row.get('s_per_iter_throughput', row['s_per_iter']):.4f}"]
        cells += [f"{row['gflop_per_iter']:.1f}" if "gflop_per_iter" in row else ""]
        cells += [f"{row['peak_gpu_gb']:.2f}" if row.get("peak_gpu_gb") else ""]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    tables = results["tables"]
    lines += ["", "## paper's tables", ""]
    lines += [f"stages run: {', '.join(tables.get('stages_run', [])) or 'none'}"]
    lines += [f"left out (time budget): {', '.join(tables.get('left_out', [])) or 'nothing'}"]
    lines += [f"Set5 ×4 parity (dip-paper, mean PSNR): {json.dumps(tables.get('parity', {}))}", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--smoke", action="store_true", help="a few iterations on tiny crops, on the CPU; no gpu tier")
    parser.add_argument("--budget", type=float, default=450, help="seconds for the whole run (default 450)")
    parser.add_argument("--reserve", type=float, default=120, help="seconds kept for the tables at the end")
    parser.add_argument("--fits-per-gpu", type=int, default=4, help="fits at once on the GPU in the workflow")
    parser.add_argument("--carry", type=Path, default=REPO / ".gpu-carry", help="what prepare.sh made")
    args = parser.parse_args()
    if not (args.carry / "cache").is_dir():
        sys.exit(f"no carried data in {args.carry}: run benchmarks/gpu/prepare.sh first")
    out = args.outdir
    (out / "logs").mkdir(parents=True, exist_ok=True)
    budget = Budget(args.budget, args.reserve)
    results: dict = {"smoke": args.smoke, "gpu_tier": None, "speed": [], "tables": {}}
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # run.sh's hard limit: keep what ran
    try:
        if not args.smoke:
            results["gpu_tier"] = gpu_tier(out, budget)
        results["speed"] = speed(out, args.carry, args, budget)
        results["tables"] = paper_tables(out, args.carry, args, budget)
    finally:
        for process in list(RUNNING):
            stop(process)
        results["wall_s"] = budget.elapsed()
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / "summary.md").write_text(markdown(results))
        with tarfile.open(out / "logs.tar.gz", "w:gz") as archive:
            archive.add(out / "logs", arcname="logs")
        shutil.rmtree(out / "logs")
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
