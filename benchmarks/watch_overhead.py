"""The cost of every stopping rule watching a fit: the same fit with `watch` on (every rule that applies) and off
(`watch=()`), interleaved, in one process.

    python benchmarks/watch_overhead.py [--arch tiny] [--side 128] [--iterations 300] [--pairs 5] [--threads 1]

Denoising σ = 25 (so all three rules watch: es-wmv, es-emv, noise-level), a random-texture image, `stopping: fixed`;
prints each pair's seconds per iteration and the median overhead of watching, and the time the watchers' updates
alone take per iteration on an output of that size (less noisy on a shared machine than the difference of two fits).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import dip
from dip.stopping import applicable_rules
from dip.watching import Watchers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="tiny")
    parser.add_argument("--side", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    clean = np.random.default_rng(0).random((args.side, args.side, 3), dtype=np.float32)
    observation = dip.degrade(clean, "denoising", "25")
    common = {"arch": args.arch, "iterations": args.iterations, "threads": args.threads, "stopping": "fixed"}
    overheads = []
    for pair in range(args.pairs):
        seconds = {}
        for label, watch in (("off", ()), ("on", None)) if pair % 2 == 0 else (("on", None), ("off", ())):
            record = dip.restore(observation, watch=watch, **common).record
            seconds[label] = record["seconds_per_iteration"]
        overheads.append(seconds["on"] / seconds["off"] - 1)
        print(
            f"pair {pair}: off {seconds['off'] * 1e3:.2f} ms/it, on {seconds['on'] * 1e3:.2f} ms/it, "
            f"overhead {100 * overheads[-1]:+.1f} %"
        )
    print(f"median overhead of watching: {100 * statistics.median(overheads):+.1f} % over {args.pairs} pairs")
    watchers = Watchers(applicable_rules(25.0), window=100, patience=1000, alpha=0.1, noise_sigma=25.0)
    outputs = torch.rand(8, 1, 3, args.side, args.side)
    start = time.perf_counter()
    for iteration in range(args.iterations):
        output = outputs[iteration % 8]
        watchers.observe(iteration, output, output, torch.tensor(0.01))
    per_iteration = (time.perf_counter() - start) / args.iterations
    print(f"the watchers' updates alone: {per_iteration * 1e3:.2f} ms per iteration")


if __name__ == "__main__":
    main()
