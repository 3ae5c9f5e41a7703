"""Seconds per iteration and peak memory of the DIP fit, per net, image size and execution setting.

Each case runs in its own process (peak RSS is a per-process high-water mark) through `dip.fit.fit`, the code the CLI
runs. The image is F16 from ../shared/data/dip-paper when present, else scikit-image's astronaut, resized.

    python benchmarks/bench_fit.py                      # the default table (paper net 512², light net 256²)
    python benchmarks/bench_fit.py --iterations 20 --cases paper-512-fp32
    python benchmarks/bench_fit.py --device cuda --cases paper-512-fp32 paper-512-tf32 paper-512-bf16

The speed-up column is against the first case run with the same net and size (by default the untuned fp32 loop).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
F16 = ROOT.parent / "shared" / "data" / "dip-paper" / "denoising" / "F16_GT.png"


@dataclass(frozen=True)
class Case:
    name: str
    preset: str
    size: int
    precision: str = "fp32"
    channels_last: bool = False
    tune_allocator: bool = True
    early_stopping: bool = False
    inplace_activations: bool = True
    """False runs every LeakyReLU/ReLU out of place (the lever's "before")."""
    """Watch ES-WMV (window 2, so that it works from the second iteration on) on top of the fit."""


CASES = {
    case.name: case
    for case in (
        Case("paper-512-fp32-untuned", "paper", 512, tune_allocator=False),
        Case("paper-512-fp32", "paper", 512),
        Case("paper-512-tf32", "paper", 512, precision="tf32"),
        Case("paper-512-bf16", "paper", 512, precision="bf16"),
        Case("paper-256-fp32", "paper", 256),
        Case("paper-256-tf32", "paper", 256, precision="tf32"),
        Case("paper-256-bf16", "paper", 256, precision="bf16"),
        Case("paper-512-fp32-cl", "paper", 512, channels_last=True),
        Case("paper-512-bf16-cl", "paper", 512, precision="bf16", channels_last=True),
        Case("paper-512-bf16-cl-outofplace", "paper", 512, "bf16", True, inplace_activations=False),
        Case("paper-512-fp32-outofplace", "paper", 512, inplace_activations=False),
        Case("light-256-fp32", "light", 256),
        Case("light-256-fp32-es", "light", 256, early_stopping=True),
        Case("tiny-256-fp32", "tiny", 256),
        Case("tiny-256-fp32-es", "tiny", 256, early_stopping=True),
    )
}
DEFAULT_CASES = (
    "paper-512-fp32-untuned",
    "paper-512-fp32",
    "paper-512-fp32-cl",
    "paper-512-bf16",
    "paper-512-bf16-cl",
    "light-256-fp32",
)


def load_image(size: int):
    """A size×size RGB test image in [0, 1] (F16 if available)."""
    import numpy as np
    from PIL import Image

    if F16.exists():
        image = Image.open(F16).convert("RGB")
    else:
        from skimage import data

        image = Image.fromarray(data.astronaut())
    return np.asarray(image.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0


def run_case(case: Case, iterations: int, warmup: int, threads: int | None, device_name: str) -> dict:
    """Time one case in this process; returns s/iter and peak memory."""
    import torch

    from dip.device import (
        check_precision,
        configure_cuda,
        configure_threads,
        describe_device,
        select_device,
        tune_cpu_allocator,
    )
    from dip.fit import fit
    from dip.fit_settings import FitSettings
    from dip.models import resolve_spec
    from dip.restoration import build_problem
    from dip.tasks import make_operator

    configure_threads(threads)
    device = select_device(device_name)
    check_precision(case.precision, device)
    configure_cuda(device, case.precision)  # fp32 is IEEE float32 on CUDA; tf32 turns TensorFloat-32 on
    if case.tune_allocator and device.type == "cpu":
        tune_cpu_allocator()
    operator = make_operator("denoising", "25")
    observation = operator.observe(load_image(case.size), seed=0)
    problem = build_problem(observation, operator, resolve_spec(case.preset), seed=0, device=device)
    for module in problem.net.modules():
        if isinstance(module, (torch.nn.LeakyReLU, torch.nn.ReLU)):
            module.inplace = case.inplace_activations
    total = warmup + iterations
    settings = FitSettings(
        iterations=total,
        reg_noise_std=1 / 30,
        ema=0.99,
        trace_every=warmup,
        precision=case.precision,
        channels_last=case.channels_last,
        **({"stopping": "es-wmv", "es_window": 2, "es_continue": True} if case.early_stopping else {}),
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = fit(problem, settings, progress=False)
    times = {row["iteration"]: row["seconds"] for row in result.trace}
    seconds_per_iteration = (times[total - 1] - times[warmup]) / (total - 1 - warmup)
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    peak_gpu_gb = torch.cuda.max_memory_allocated() / 1024**3 if device.type == "cuda" else None
    return {
        "case": case.name,
        "net": case.preset,
        "size": case.size,
        "precision": case.precision,
        "channels_last": case.channels_last,
        "allocator_tuned": case.tune_allocator,
        "early_stopping": case.early_stopping,
        "s_per_iter": seconds_per_iteration,
        "peak_rss_gb": peak_rss_gb,
        "peak_gpu_gb": peak_gpu_gb,
        "device": describe_device(device),
        "final_psnr_obs": result.trace[-1]["psnr_obs"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), choices=sorted(CASES))
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--size", type=int, help="with --single: this image size instead of the case's")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.single:
        case = CASES[args.single]
        if args.size:
            case = replace(case, size=args.size)
        row = run_case(case, args.iterations, args.warmup, args.threads, args.device)
        print(json.dumps(row))
        return

    rows = []
    print(f"{'case':<30} {'s/iter':>8} {'speed-up':>9} {'peak RSS GB':>12} {'peak GPU GB':>12}  device")
    for name in args.cases:
        command = [sys.executable, __file__, "--single", name, "--iterations", str(args.iterations)]
        command += ["--warmup", str(args.warmup), "--device", args.device]
        if args.threads:
            command += ["--threads", str(args.threads)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row = json.loads(output.strip().splitlines()[-1])
        rows.append(row)
        gpu = f"{row['peak_gpu_gb']:.2f}" if row["peak_gpu_gb"] is not None else "-"
        same_size = next(r for r in rows if (r["net"], r["size"]) == (row["net"], row["size"]))
        speedup = f"{same_size['s_per_iter'] / row['s_per_iter']:.2f}x"
        memory = f"{row['peak_rss_gb']:>12.2f} {gpu:>12}"
        print(f"{name:<30} {row['s_per_iter']:>8.3f} {speedup:>9} {memory}  {row['device']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
