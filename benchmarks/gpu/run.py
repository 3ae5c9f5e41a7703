"""The prepared GPU run (benchmarks/gpu/README.md), in one time budget planned from each part's cost: the gpu test
tier, seconds per iteration of the paper net side by side (the authors' code and ours in the same float32
arithmetic; ours in fp32 / TF32 / bf16 with 1, 2 and 4 fits timed over one shared window), and the paper's tables on
the carried data through the workflow, in priority order (Set5 ×4 with its bf16 twin beside it, for the fp32/bf16
parity; F16, Set5 ×8, barbara, the rest). Each part has a slice; an item starts only if its cost fits what is left of
its slice (the costs: ESTIMATES, or those a previous run measured, --costs), and is stopped at the slice's end. Past
the grid's slice no fit starts ($DIP_DEADLINE, checked before torch is imported: dip_command.py); the tables of both
results folders are then made of what ran, and list what did not. Everything lands in OUTDIR as at most 8 files
(summary.md, results.json, logs.tar.gz, tables.tar.gz).

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
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STAGES = (
    ("set5-x4", r"^results/metrics/set5/super-resolution/4/"),
    ("f16", r"^results/metrics/cbm3d-color9/denoising/"),
    ("set5-x8", r"^results/metrics/set5/super-resolution/8/"),
    ("barbara", r"^results/metrics/dip-restoration/"),
    ("rest", r"^results/metrics/"),
)
"""Priority order of the paper's grid: a stage's runs are the metrics files its pattern matches first."""
SET5_X4 = {"denoising": [], "super-resolution": ["4"], "inpainting": []}
ARITHMETIC = {"fp32": "fp32 (IEEE: TF32 off)", "tf32": "TF32", "bf16": "bf16 autocast"}
"""How each precision computes on CUDA, as the table says it (ours: dip.device.configure_cuda; the authors':
authors.py sets the same flags)."""

ESTIMATES = {
    "full": {
        "tier": 50,  # pytest -n 4 of tests/test_gpu.py: its workflow test (~10 jobs importing torch) is the longest
        "fleet": 7,  # a timing process's start: python, torch, CUDA's context, dip
        "case": 3,  # one timed case beside its window: its net, 10 warm-up iterations (cuDNN autotuning), the barrier
        "authors": 12,  # the authors' driver: start, set-up, 5 + 60 iterations with a host copy each
        "floor": 15,  # the device's peak rates (authors' driver, --mode peak) and the FLOPs of one iteration
        "fit": 30,  # one Set5 ×4 fit, 2000 iterations, four at once: no fit starts closer than this to the grid's end
        "tables": 35,  # both results folders' tables at once: every never-started job (~0.3 s each), aggregate, render
    },
    "smoke": {"tier": 0, "fleet": 8, "case": 3, "authors": 10, "floor": 0, "fit": 0, "tables": 60},
}
"""Seconds each part or item is expected to take, before anything was measured on the GPU machine (README: "The
plan"); results.json's `costs` holds what a run measured, and --costs plans from them."""
CAPS = {"full": {"tier": 75, "speed": 105, "tables": 40}, "smoke": {"tier": 0, "speed": 150, "tables": 120}}
"""Each part's slice at most (seconds); the grid of the paper's tables has what is left before the tables' slice."""
MARGIN = 1.5
"""A part's slice over its cost (estimated or measured): room for a slower machine, not for a different plan."""
RUNNING: list[subprocess.Popen] = []
"""The commands running now, each in a process group of its own: stopped when the run itself is stopped."""


@dataclass
class Plan:
    """The run's budget in slices: `open(part)` starts a part and says when it must end, `fits(until, cost)` whether
    an item of that cost can still start before then, `close(part)` records what the part took in `costs`."""

    seconds: float
    estimates: dict
    caps: dict
    start: float = field(default_factory=time.time)
    began: dict = field(default_factory=dict)
    costs: dict = field(default_factory=dict)

    @property
    def end(self) -> float:
        return self.start + self.seconds

    @property
    def grid_end(self) -> float:
        return self.end - self.slice("tables")

    def slice(self, part: str) -> float:
        """A part's seconds: its cost with a margin (MARGIN), at most its cap; the grid's: what is left."""
        if part not in self.caps:
            return self.seconds
        cost = self.estimates.get(part)
        return self.caps[part] if cost is None else min(self.caps[part], MARGIN * cost)

    def open(self, part: str) -> float:
        """Begin `part` now; when it must end (its slice, and never past the grid's end, but the tables)."""
        now = self.began[part] = time.time()
        return self.end if part == "tables" else min(now + self.slice(part), self.grid_end)

    def close(self, part: str) -> None:
        self.costs[part] = round(time.time() - self.began[part], 1)

    def fits(self, until: float, cost: float) -> bool:
        return time.time() + cost <= until

    def elapsed(self) -> float:
        return time.time() - self.start


def run_logged(command: list, log: Path, *, env: dict | None = None, until: float | None = None, cwd=None) -> int:
    """Run `command`, its output into `log`; stopped (SIGTERM to its process group, then SIGKILL) at time `until`."""
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(map(str, command))}\n")
        handle.flush()
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        return wait(process, until, handle)


def wait(process: subprocess.Popen, until: float | None, log) -> int:
    """Wait for `process` until time `until`, then stop it."""
    RUNNING.append(process)
    try:
        return process.wait(timeout=None if until is None else max(1.0, until - time.time()))
    except subprocess.TimeoutExpired:
        log.write(f"\n[run.py] stopped at its time limit ({time.strftime('%H:%M:%S')})\n")
        log.flush()
        return stop(process)
    finally:
        RUNNING.remove(process)


def stop(process: subprocess.Popen) -> int:
    """SIGTERM to the process group (a fit saves its checkpoint and stops), SIGKILL 10 s later."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()
    except ProcessLookupError:
        return process.wait()


def gpu_tier(out: Path, plan: Plan) -> dict:
    """tests/test_gpu.py in 4 workers (correctness, not timing: they may share the GPU)."""
    log = out / "logs" / "gpu-tier.log"
    command = [sys.executable, "-m", "pytest", "-q", "-n", "4", "-m", "gpu", "-p", "no:cacheprovider", "-rfE"]
    code = run_logged([*command, "tests/test_gpu.py"], log, cwd=REPO, until=plan.open("tier"))
    plan.close("tier")
    tail = log.read_text().strip().splitlines()[-1:] or [""]
    return {"returncode": code, "summary": tail[0]}


def authors(out: Path, carry: Path, size: int, arithmetic: str, device: str, iterations: int, until: float):
    """s/iter of the authors' denoising loop (their modules, their notebook's loop) on F16 at size² (512: the file
    itself; 256 and 64: centre crops made by prepare.sh), in the named float32 arithmetic (authors.py)."""
    data = carry / "cache" / "dip-paper" if size == 512 else carry / "authors" / f"data-{size}"
    result = out / "logs" / f"authors-{size}-{arithmetic}.json"
    command = [sys.executable, HERE / "authors.py", "--arithmetic", arithmetic, carry / "authors" / "orig_dip_bench.py"]
    command += ["--repo", carry / "authors", "--data", data, "--mode", "denoise", "--device", device]
    command += ["--iters", str(iterations), "--warmup", str(min(5, iterations)), "--threads", "4", "--json", result]
    run_logged(command, out / "logs" / "speed.log", cwd=carry / "authors", until=until)
    if not result.is_file():
        return None
    timing = json.loads(result.read_text())["result"]
    compute = timing["s_fwd_median"] + timing["s_loss_bwd_median"] + timing["s_step_median"]
    return {
        "code": "authors",
        "size": size,
        "precision": "fp32" if arithmetic == "ieee" else "tf32",
        "fits": 1,
        "s_per_iter": timing["s_per_iter_median"],
        "s_per_iter_throughput": timing["s_per_iter_median"],
        "peak_gpu_gb": (timing.get("peak_gpu_mb") or 0) / 1024,
        "note": f"median of {iterations}; a host copy and PSNR each iteration (compute alone {compute:.4f} s)",
    }


def at_once(out: Path, carry: Path, cases: list[str], size: int, fits: int, args, until: float) -> list[dict]:
    """Our fits, `fits` processes at once, each case timed over one window shared by all (at_once.py): per case, the
    mean s/iter of a fit, the throughput (the window's span over the iterations all made) and the overlap (the
    share of the span that every fit covered)."""
    barrier = Path(tempfile.mkdtemp(prefix="dip-barrier-"))
    command = [sys.executable, HERE / "at_once.py", *cases, "--barrier", barrier, "--fits", str(fits)]
    command += ["--device", args.device, "--size", str(size), "--window", str(args.window)]
    command += ["--warmup", str(args.warmup), "--image", carry / "cache" / "dip-paper" / "denoising" / "F16_GT.png"]
    log = out / "logs" / "speed.log"
    with log.open("a") as handle:
        handle.write(f"$ {fits} × {' '.join(map(str, command))}\n")
        handle.flush()
        processes = [
            subprocess.Popen(
                [*map(str, command), "--index", str(index), "--threads", str(max(1, (os.cpu_count() or 1) // fits))],
                stdout=subprocess.PIPE,
                stderr=handle,
                text=True,
                start_new_session=True,
            )
            for index in range(fits)
        ]
        lines = []
        for process in processes:
            RUNNING.append(process)
            try:
                lines += process.communicate(timeout=max(1.0, until - time.time()))[0].splitlines()
            except subprocess.TimeoutExpired:
                stop(process)
                lines += process.communicate()[0].splitlines()  # the cases it timed before
                handle.write(f"[run.py] {fits} at once stopped at the end of the timings' slice\n")
            finally:
                RUNNING.remove(process)
        for line in lines:
            handle.write(line + "\n")
    shutil.rmtree(barrier, ignore_errors=True)
    return [row for case in cases if (row := window_row([json.loads(line) for line in lines], case, fits))]


def window_row(reports: list[dict], case: str, fits: int) -> dict | None:
    """The table's row of `case` from the reports of its `fits` processes; None unless all timed it."""
    timed = [report for report in reports if report["case"] == case and "iterations" in report]
    if len(timed) < fits:
        return None
    first, last = min(r["began"] for r in timed), max(r["ended"] for r in timed)
    shared = min(r["ended"] for r in timed) - max(r["began"] for r in timed)
    return {
        "code": "ours",
        "size": timed[0]["size"],
        "precision": timed[0]["precision"],
        "fits": fits,
        "s_per_iter": sum(r["s_per_iter"] for r in timed) / fits,
        "s_per_iter_throughput": (last - first) / sum(r["iterations"] for r in timed),
        "window_s": timed[0]["window_s"],
        "overlap": max(0.0, shared) / (last - first),
        "iterations": [r["iterations"] for r in timed],
        "peak_gpu_gb": max((r["peak_gpu_gb"] or 0) for r in timed),
    }


def floor_rows(out: Path, carry: Path, sizes: tuple[int, ...], device: str, until: float) -> list[dict]:
    """The floor: FLOPs of one iteration (torch's FlopCounterMode) over the device's measured matmul peak (the
    authors' driver, --mode peak, IEEE float32 as our fp32)."""
    result = out / "logs" / "peak.json"
    command = [sys.executable, HERE / "authors.py", "--arithmetic", "ieee", carry / "authors" / "orig_dip_bench.py"]
    command += ["--repo", carry / "authors", "--mode", "peak", "--bf16", "--device", device, "--peak-reps", "5"]
    run_logged([*command, "--json", result], out / "logs" / "speed.log", cwd=carry / "authors", until=until)
    rates = json.loads(result.read_text())["peak"] if result.is_file() else {}
    rows = []
    for size in sizes:
        work = flops(size)
        for precision, key in (("fp32", "matmul_8192_gflops_best"), ("bf16", "matmul_8192_bf16_gflops_median")):
            if rates.get(key):
                seconds = work / rates[key] / 1e9
                rows.append({"code": "floor", "size": size, "precision": precision, "fits": 1, "s_per_iter": seconds})
                rows[-1]["gflop_per_iter"] = work / 1e9
    return rows


def flops(size: int) -> float:
    """FLOPs of one forward + backward of the paper net at size², by torch's FlopCounterMode (counted on the CPU:
    the count is the device's too, and this process then holds no GPU memory while the grid runs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dip.models import build_model, make_input

    net = build_model("paper", 3)
    z = make_input("paper", size, size, torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        net(z).square().mean().backward()
    return float(counter.get_total_flops())


def speed_items(args) -> list[tuple[str, float, object]]:
    """The timings in priority order: (label, estimated seconds, what runs it and returns its rows)."""
    cost = args.estimates
    sizes, precisions = ((64,), ["fp32"]) if args.smoke else ((256, 512), ["fp32", "tf32", "bf16"])
    big, iterations = sizes[-1], 2 if args.smoke else 60
    cases = [f"paper-256-{precision}" for precision in precisions]  # resized by --size
    fleet = cost["fleet"] + len(cases) * (cost["case"] + args.window)

    def ours(size: int, fits: int):
        return lambda out, carry, until: at_once(out, carry, cases, size, fits, args, until)

    def theirs(size: int, arithmetic: str):
        return lambda out, carry, until: [authors(out, carry, size, arithmetic, args.device, iterations, until)]

    items = [(f"ours-{big}-x1", fleet, ours(big, 1)), (f"authors-{big}-ieee", cost["authors"], theirs(big, "ieee"))]
    if not args.smoke:
        items.append((f"authors-{big}-tf32", cost["authors"], theirs(big, "tf32")))
    items += [(f"ours-{big}-x{fits}", fleet, ours(big, fits)) for fits in ((2,) if args.smoke else (2, 4))]
    for size in sizes[:-1]:
        items += [
            (f"ours-{size}-x1", fleet, ours(size, 1)),
            (f"authors-{size}-ieee", cost["authors"], theirs(size, "ieee")),
        ]
    if not args.smoke:
        items.append(("floor", cost["floor"], lambda out, carry, until: floor_rows(out, carry, sizes, "cuda", until)))
    return [(label, args.estimates.get(f"speed:{label}", seconds), run) for label, seconds, run in items]


def speed(out: Path, carry: Path, args, plan: Plan) -> dict:
    """The side-by-side s/iter table, item by item while each item's cost fits what is left of the slice."""
    until = plan.open("speed")
    rows, left_out = [], []
    for label, seconds, run in speed_items(args):
        if not plan.fits(until, seconds):
            left_out.append(label)
            continue
        began = time.time()
        rows += [row for row in run(out, carry, until) if row]
        plan.costs[f"speed:{label}"] = round(time.time() - began, 1)
    plan.close("speed")
    return {"rows": rows, "left_out": left_out}


def overlay(carry: Path, args, fits_per_gpu: int) -> dict:
    """The config over config/paper.yaml: datasets read from the carried cache (no network), the sets not carried
    (Set14, CBM3D's other images) left out, the GPU shared by `fits_per_gpu` fits."""
    config = {
        "datasets": {
            # no Set14 here: no image of it is carried, and flash-no-flash (which needs pairs) gives it no job
            "set14": {"source": "set14", "images": ["absent"], "tasks": ["flash-no-flash"]},
            "cbm3d-color9": {"source": str(carry / "cbm3d-color9"), "images": ["image_F16_512rgb"]},
        },
        "device": args.device,
        "threads": 2,
        "fits_per_gpu": fits_per_gpu,
        "resources": {"gpu": 1},
    }
    if args.smoke:  # Set5 ×4 alone, two images cropped to 64², two iterations
        config["smoke_iterations"] = 2
        config["datasets"]["set5"] = {"source": "set5", "crop": 64, "images": ["bird", "butterfly"]}
        config["tasks"] = SET5_X4
    return config


class Workflow:
    """The paper's grid in one results folder (fp32, or the bf16 twin of Set5 ×4), through snakemake."""

    def __init__(self, folder: Path, configs: list[Path], env: dict, log: Path) -> None:
        self.folder, self.configs, self.env, self.log = folder, configs, env, log
        folder.mkdir(parents=True, exist_ok=True)

    def command(self, targets: list[str], gpus: int, *options: str) -> list[str]:
        """snakemake's command line (targets first: --configfile takes every word after it)."""
        command = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(REPO / "Snakefile")]
        command += ["--directory", str(self.folder), "--cores", str(os.cpu_count() or 2), "--resources", f"gpu={gpus}"]
        command += ["--keep-going", "--rerun-incomplete", "--nolock", *options]
        return [*command, "--configfile", *map(str, self.configs)]

    def start(self, targets: list[str], gpus: int, deadline: float) -> subprocess.Popen:
        """Run `targets` (all: the tables) with `gpus` fits at once; no fit starts after `deadline`."""
        command, env = self.command(targets, gpus, "--quiet", "rules"), {**self.env, "DIP_DEADLINE": str(deadline)}
        with self.log.open("a") as handle:  # the child writes to its own copy of the file
            handle.write(f"$ DIP_DEADLINE={deadline:.0f} {' '.join(command)}\n")
            handle.flush()
            return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def metrics(self) -> list[str]:
        """The metrics files of the whole grid (a dry run)."""
        dry = subprocess.run(self.command([], 1, "-n", "-p"), capture_output=True, text=True, env=self.env)
        with self.log.open("a") as handle:
            handle.write(dry.stdout[-3000:] + dry.stderr[-3000:])
        return sorted(set(re.findall(r"--out (results/metrics/\S+\.json)", dry.stdout)))

    @property
    def results(self) -> Path:
        return self.folder / "results"


def run_all(processes: list[subprocess.Popen], until: float, log: Path) -> None:
    """Wait for `processes` together, stopping them at time `until`."""
    with log.open("a") as handle:
        for process in processes:
            wait(process, until, handle)


def paper_tables(out: Path, carry: Path, args, plan: Plan) -> dict:
    """The paper's grid on the carried data, stage by stage in priority order (Set5 ×4 and its bf16 twin side by
    side), then the tables of both results folders from whatever finished."""
    work = Path(tempfile.mkdtemp(prefix="dip-gpu-run-"))
    config, twin = work / "overlay.yaml", work / "parity.yaml"
    config.write_text(yaml.safe_dump(overlay(carry, args, args.fits_per_gpu)))
    low = {"precision": "bf16", "channels_last": True} if args.smoke else {"precision": "bf16"}  # what auto runs
    twin.write_text(yaml.safe_dump({"tasks": SET5_X4, "fit": {"super-resolution": low}}))
    env = {**os.environ, "DIP_DATA_DIR": str(carry / "cache"), "DIP_FITS_PER_GPU": str(args.fits_per_gpu)}
    log, paper = out / "logs" / "workflow.log", REPO / "config" / "paper.yaml"
    fp32 = Workflow(work / "fp32", [paper, config], env, log)
    bf16 = Workflow(work / "bf16", [paper, config, twin], env, log)
    plan.open("grid")
    deadline = plan.grid_end - args.estimates["fit"]  # a fit started later would not end within the grid's slice
    stages, left = {}, set(fp32.metrics())
    for name, pattern in STAGES:
        stages[name] = sorted(target for target in left if re.match(pattern, target))
        left -= set(stages[name])
    ran = []
    half = max(1, args.fits_per_gpu // 2)
    for name, targets in stages.items():
        if time.time() >= deadline or not targets:
            continue
        ran.append(name)
        if name != "set5-x4":
            run_all([fp32.start(targets, args.fits_per_gpu, deadline)], plan.grid_end, log)
            continue
        ran.append("set5-x4-bf16")
        # smoke: the twin is cut after its first image, as a budget cuts it, so that the test sees a cut twin's tables
        twin_targets = [t for t in targets if "/bird/" in t] if args.smoke else targets
        processes = [fp32.start(targets, half, deadline), bf16.start(twin_targets, half, deadline)]
        run_all(processes, plan.grid_end, log)
    plan.close("grid")
    # The tables of both folders, from whatever finished: each fit never started is recorded as such at once (the
    # deadline is past, and dip_command.py answers before torch is imported), so every GPU slot may take one.
    until, now = plan.open("tables"), time.time()
    gpus = max(args.fits_per_gpu, os.cpu_count() or 2)
    run_all([workflow.start([], gpus, now) for workflow in (fp32, bf16)], until - 3, log)
    plan.close("tables")
    tables = {name: w.results for name, w in (("fp32", fp32), ("bf16", bf16)) if (w.results / "tables").is_dir()}
    with tarfile.open(out / "tables.tar.gz", "w:gz") as archive:
        for name, results in tables.items():
            archive.add(results / "tables", arcname=f"{name}/tables")
            for file in ("summary.csv", "traces.csv"):
                if (results / file).is_file():
                    archive.add(results / file, arcname=f"{name}/{file}")
        for name, workflow in (("fp32", fp32), ("bf16", bf16)):
            if (workflow.results / "logs").is_dir():
                archive.add(workflow.results / "logs", arcname=f"{name}/logs")
    summary = {"stages": {name: len(targets) for name, targets in stages.items()}, "stages_run": ran}
    summary["left_out"] = [name for name in [*stages, "set5-x4-bf16"] if name not in ran and stages.get(name, 1)]
    summary["parity"] = parity(tables)
    summary["markdown"] = {name: sorted(p.name for p in (r / "tables").glob("*.md")) for name, r in tables.items()}
    shutil.rmtree(work, ignore_errors=True)
    return summary


def parity(tables: dict[str, Path]) -> dict:
    """Set5 ×4 (Lanczos LR): the PSNR of dip-paper per image in fp32 and in bf16, and bf16 − fp32 over the images
    that finished in both (a cut twin gives fewer pairs, never a mean of unlike sets)."""
    import pandas as pd

    found = {}
    for name, results in tables.items():
        summary = results / "summary.csv"
        if not summary.is_file():
            continue
        frame = pd.read_csv(summary, dtype={"level": str})
        found[name] = {}
        if "psnr" in frame.columns:  # absent when no run finished
            ok = frame[
                (frame.dataset == "set5")
                & (frame.level == "4")
                & (frame.method == "dip-paper")
                & (frame.status == "ok")
            ]
            found[name] = {str(image): float(psnr) for image, psnr in zip(ok.image, ok.psnr, strict=True)}
    result: dict = {name: {"images": images} for name, images in found.items()}
    pairs = sorted(set(found.get("fp32", {})) & set(found.get("bf16", {})))
    result["pairs"] = pairs
    if pairs:
        differences = [found["bf16"][image] - found["fp32"][image] for image in pairs]
        result["bf16_minus_fp32_db"] = sum(differences) / len(differences)
        result["largest_abs_db"] = max(map(abs, differences))
    return result


def markdown(results: dict) -> str:
    lines = [f"# GPU run ({'smoke' if results['smoke'] else 'full'}): {results['wall_s']:.0f} s", ""]
    tier = results.get("gpu_tier")
    absent = "skipped (smoke)" if results["smoke"] else "did not finish"
    lines += [f"gpu tier: {tier['summary'] if tier else absent}", "", "## s/iter (paper net, denoising F16)", ""]
    lines += ["Rows of several fits: all timed over one shared window (overlap: the share every fit covered)."]
    lines += ["", "| code | size | arithmetic | fits at once | s/iter per fit | s/iter throughput | overlap |"]
    lines[-1] += " GFLOP/iter | peak GPU GB | note |"
    lines += ["|---|---|---|---|---|---|---|---|---|---|"]
    speed = results.get("speed") or {}
    for row in speed.get("rows", []):
        cells = [row["code"], row["size"], ARITHMETIC[row["precision"]], row["fits"], f"{row['s_per_iter']:.4f}"]
        cells += [f"{row.get('s_per_iter_throughput', row['s_per_iter']):.4f}"]
        cells += [f"{row['overlap']:.0%} of {row['window_s']:g} s" if "overlap" in row else ""]
        cells += [f"{row['gflop_per_iter']:.1f}" if "gflop_per_iter" in row else ""]
        cells += [f"{row['peak_gpu_gb']:.2f}" if row.get("peak_gpu_gb") else "", row.get("note", "")]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += [
        "",
        f"timings left out (their cost did not fit the slice): {', '.join(speed.get('left_out', [])) or 'none'}",
    ]
    tables = results["tables"]
    lines += ["", "## paper's tables", ""]
    lines += [f"stages run: {', '.join(tables.get('stages_run', [])) or 'none'}"]
    lines += [f"left out (time budget): {', '.join(tables.get('left_out', [])) or 'nothing'}"]
    lines += [f"Set5 ×4 parity (dip-paper PSNR, bf16 − fp32): {json.dumps(tables.get('parity', {}))}", ""]
    lines += ["## plan and costs (s)", "", f"plan: {json.dumps(results['plan'])}", "", json.dumps(results["costs"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--smoke", action="store_true", help="a few iterations on tiny crops, on the CPU; no gpu tier")
    parser.add_argument("--budget", type=float, default=360, help="seconds for the whole run (run.sh: LIMIT − set-up)")
    parser.add_argument("--fits-per-gpu", type=int, default=4, help="fits at once on the GPU in the workflow")
    parser.add_argument("--carry", type=Path, default=REPO / ".gpu-carry", help="what prepare.sh made")
    parser.add_argument("--costs", type=Path, help="a previous run's results.json: plan from the costs it measured")
    parser.add_argument("--parts", default="tier,speed,tables", help="which parts run (a second try may skip some)")
    args = parser.parse_args()
    if not (args.carry / "cache").is_dir():
        sys.exit(f"no carried data in {args.carry}: run benchmarks/gpu/prepare.sh first")
    mode = "smoke" if args.smoke else "full"
    args.estimates = {**ESTIMATES[mode], **(json.loads(args.costs.read_text())["costs"] if args.costs else {})}
    args.device, args.window, args.warmup = ("cpu", 1.0, 2) if args.smoke else ("cuda", 3.0, 10)
    args.fits_per_gpu = 2 if args.smoke else args.fits_per_gpu
    parts = set(args.parts.split(",")) - ({"tier"} if args.smoke else set())
    out = args.outdir
    (out / "logs").mkdir(parents=True, exist_ok=True)
    plan = Plan(args.budget, args.estimates, CAPS[mode])
    results: dict = {"smoke": args.smoke, "gpu_tier": None, "speed": {}, "tables": {}}
    slices = {part: plan.slice(part) for part in CAPS[mode]}
    results["plan"] = {"budget_s": args.budget, "slices_s": slices, "estimates_s": args.estimates}
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # run.sh's hard limit: keep what ran
    try:
        if "tier" in parts:
            results["gpu_tier"] = gpu_tier(out, plan)
        if "speed" in parts:
            results["speed"] = speed(out, args.carry, args, plan)
        if "tables" in parts:
            results["tables"] = paper_tables(out, args.carry, args, plan)
    finally:
        for process in list(RUNNING):
            stop(process)
        results["wall_s"], results["costs"] = plan.elapsed(), plan.costs
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / "summary.md").write_text(markdown(results))
        with tarfile.open(out / "logs.tar.gz", "w:gz") as archive:
            archive.add(out / "logs", arcname="logs")
        shutil.rmtree(out / "logs")
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
