"""One of N fits at once, timed over one wall-clock window shared by all N (the GPU run's s/iter rows).

    python benchmarks/gpu/at_once.py --barrier DIR --fits N --index I --device cuda --image F16.png CASE [CASE ...]

N processes run this with the same arguments but --index. For each case (benchmarks/bench_fit.py's CASES: the paper
net denoising the image at the case's size and precision) each process builds its fit and warms it up (untimed:
cuDNN's autotuning, the allocator), then waits at a file barrier: it writes its arrival time to DIR, and once all N
have arrived every process starts at the same time, the last arrival plus a margin. From that time each runs its fit
(the settings bench_fit times, with the default trace cadence) until the window closes, syncs the device and counts
the iterations it made. So the N fits overlap for the whole window, and N fits' throughput is what they made together
in it. One JSON line per case on stdout: the common start, this fit's start and end, its iterations and s/iter.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

MARGIN_S = 0.25
"""From the last arrival at the barrier to the common start: time for every process to see it and wake."""


def barrier(folder: Path, name: str, index: int, fits: int, timeout: float) -> float | None:
    """Arrive at barrier `name` of `fits` processes; the common start time (the last arrival + MARGIN_S), or None
    when not all arrived within `timeout` seconds (a sibling failed: no row rather than a lone one)."""
    arrived = time.time()
    part = folder / f"{name}.{index}.part"
    part.write_text(repr(arrived))
    os.replace(part, folder / f"{name}.{index}")  # whole or not at all: a sibling never reads half a time
    marks = [folder / f"{name}.{other}" for other in range(fits)]
    while not all(mark.is_file() for mark in marks):
        if time.time() > arrived + timeout:
            return None
        time.sleep(0.005)
    return max(float(mark.read_text()) for mark in marks) + MARGIN_S


def build(case_name: str, size: int | None, image: Path, device_name: str, threads: int | None):
    """The fit of a bench_fit case: its problem, settings (without the iteration count) and device."""
    import numpy as np
    import torch
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench_fit import CASES

    from dip.device import check_precision, configure_cuda, configure_threads, select_device, tune_cpu_allocator
    from dip.fit import FitSettings
    from dip.models import resolve_spec
    from dip.restoration import build_problem
    from dip.tasks import make_operator

    case = CASES[case_name] if size is None else replace(CASES[case_name], size=size)
    configure_threads(threads)
    device = select_device(device_name)
    check_precision(case.precision, device)
    configure_cuda(device, case.precision)  # fp32 is IEEE float32 on CUDA; tf32 turns TensorFloat-32 on
    if device.type == "cpu":
        tune_cpu_allocator()
    picture = Image.open(image).convert("RGB").resize((case.size, case.size), Image.BICUBIC)
    operator = make_operator("denoising", "25")
    observation = operator.observe(np.asarray(picture, dtype=np.float32) / 255.0, seed=0)
    problem = build_problem(observation, operator, resolve_spec(case.preset), seed=0, device=device)
    settings = FitSettings(reg_noise_std=1 / 30, ema=0.99, precision=case.precision, channels_last=case.channels_last)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return case, problem, settings, device


def windowed(problem, settings, device, start: float, end: float) -> tuple[float, float, int]:
    """Run the fit from `start` until the window closes at `end`: (its start, its end after the device drained, the
    iterations it made). The loop stops at the first iteration past `end`; the iterations already queued on the
    device are counted and waited for, so the span holds exactly the iterations counted."""
    import torch

    from dip.fit import FitInterrupted, fit

    time.sleep(max(0.0, start - time.time()))
    began = time.time()
    closed = threading.Event()
    timer = threading.Timer(max(0.0, end - began), closed.set)
    timer.start()
    try:
        fit(problem, replace(settings, iterations=10**7), stop_event=closed, progress=False)
        raise RuntimeError("ten million iterations within the window")
    except FitInterrupted as interrupted:
        iterations = interrupted.iteration
    finally:
        timer.cancel()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return began, time.time(), iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="+", help="bench_fit cases, timed one after the other")
    parser.add_argument("--barrier", type=Path, required=True, help="folder shared by the N processes (empty)")
    parser.add_argument("--fits", type=int, default=1, help="N: processes at once")
    parser.add_argument("--index", type=int, default=0, help="this process's place among the N")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--image", type=Path, required=True, help="the image to denoise (resized to the case's size)")
    parser.add_argument("--size", type=int, help="this image size instead of the cases'")
    parser.add_argument("--window", type=float, default=3.0, help="seconds every fit is timed over")
    parser.add_argument("--warmup", type=int, default=10, help="untimed iterations before the barrier")
    parser.add_argument("--barrier-timeout", type=float, default=30.0, help="seconds to wait for the siblings")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    args = parser.parse_args()
    import torch

    from dip.device import describe_device
    from dip.fit import fit

    for name in args.cases:
        case, problem, settings, device = build(name, args.size, args.image, args.device, args.threads)
        fit(problem, replace(settings, iterations=args.warmup), progress=False)
        start = barrier(args.barrier, name, args.index, args.fits, args.barrier_timeout)
        row = {"case": name, "size": case.size, "precision": case.precision, "fits": args.fits, "index": args.index}
        if start is None:
            print(json.dumps({**row, "error": f"not all {args.fits} fits reached the barrier"}), flush=True)
            continue
        began, ended, iterations = windowed(problem, settings, device, start, start + args.window)
        if iterations == 0:
            print(json.dumps({**row, "error": "no iteration within the window"}), flush=True)
            continue
        gpu_gb = torch.cuda.max_memory_allocated(device) / 1024**3 if device.type == "cuda" else None
        row |= {"start": start, "began": began, "ended": ended, "iterations": iterations, "window_s": args.window}
        row |= {"s_per_iter": (ended - began) / iterations, "peak_gpu_gb": gpu_gb}
        print(json.dumps({**row, "device": describe_device(device)}), flush=True)


if __name__ == "__main__":
    main()
