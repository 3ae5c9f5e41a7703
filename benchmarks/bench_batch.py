"""Throughput of batched DIP fits (fits × iterations per second): K fits as one stacked model in one process
(`dip.fit.fit_batch`) against K separate processes of one fit each, started together, per net and image size.

Each fit is a denoising σ=25 fit with reg-noise (seeds 0 … K−1, F16 or the astronaut, resized). Both get the same
CPU: the batched process runs with `--threads`, and the K separate processes run one after another with `--threads`
each (on a machine shared with other work, processes run side by side measure the neighbours more than the fits).

    python benchmarks/bench_batch.py                       # tiny and light at 64², 128², 256²; paper at 256²
    python benchmarks/bench_batch.py --cases tiny-64 --ks 1 2 --iterations 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_fit import load_image

CASES = {
    f"{net}-{size}": (net, size)
    for net, size in [(n, s) for n in ("tiny", "light") for s in (64, 128, 256)] + [("paper", 256)]
}


def run_batch(net: str, size: int, k: int, iterations: int, warmup: int, threads: int) -> dict:
    """Time K fits as one batch in this process: fits × timed iterations per second."""
    import torch

    from dip.device import configure_threads, tune_cpu_allocator
    from dip.fit import fit, fit_batch
    from dip.fit_settings import FitSettings
    from dip.models import resolve_spec
    from dip.restoration import build_problem
    from dip.tasks import make_operator

    configure_threads(threads)
    tune_cpu_allocator()
    operator = make_operator("denoising", "25")
    observation = operator.observe(load_image(size), seed=0)
    device = torch.device("cpu")
    problems = [build_problem(observation, operator, resolve_spec(net), seed=s, device=device) for s in range(k)]
    total = warmup + iterations
    settings = [FitSettings(iterations=total, reg_noise_std=1 / 30, trace_every=warmup, seed=s) for s in range(k)]
    if k == 1:  # a single fit runs the single-fit engine, as `dip restore OBS` does
        results = [fit(problems[0], settings[0], progress=False)]
    else:
        results = fit_batch(problems, settings, progress=False)
    times = {row["iteration"]: row["seconds"] for row in results[0].trace}
    seconds = times[total - 1] - times[warmup]
    return {"fits_its_per_s": k * (total - 1 - warmup) / seconds}


def separate(net: str, size: int, k: int, iterations: int, warmup: int, threads: int) -> float:
    """K processes of one fit each, one after another: fits × iterations per second over their timed iterations."""
    rates = [batched(net, size, 1, iterations, warmup, threads) for _ in range(k)]
    return k / sum(1 / rate for rate in rates)


def batched(net: str, size: int, k: int, iterations: int, warmup: int, threads: int) -> float:
    command = [sys.executable, __file__, "--single", f"{net}-{size}", "--ks", str(k), "--iterations", str(iterations)]
    command += ["--warmup", str(warmup), "--threads", str(threads)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["fits_its_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=sorted(CASES))
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per fit")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads in all")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        net, size = CASES[args.single]
        print(json.dumps(run_batch(net, size, args.ks[0], args.iterations, args.warmup, args.threads)))
        return
    print(f"{'case':<11} {'K':>2} {'batched':>9} {'separate':>9} {'batched/separate':>17}   (fits × iterations / s)")
    for name in args.cases:
        net, size = CASES[name]
        iterations = args.iterations if net != "paper" else max(2, args.iterations // 2)
        for k in args.ks:
            started = time.perf_counter()
            together = batched(net, size, k, iterations, args.warmup, args.threads)
            apart = separate(net, size, k, iterations, args.warmup, args.threads)
            took = time.perf_counter() - started
            ratio = together / apart
            print(f"{name:<11} {k:>2} {together:>9.2f} {apart:>9.2f} {ratio:>16.2f}x   ({took:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
