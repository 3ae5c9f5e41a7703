"""CPU seconds per iteration of a bf16 batch: two fits of the `tiny` net on a 64² denoising observation, one thread.

    python benchmarks/bench_bf16_batch.py [--iterations 40] [--repeats 3]

Prints each repeat's CPU seconds per iteration (`time.process_time`, which another process's load disturbs less than
wall time) and the precision the record says ran; the first repeat warms up. Run it with `PYTHONPATH` at two
checkouts for a before/after pair (benchmarks/NOTES.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from skimage import data

import dip
from dip.tasks.observation_dir import save_observation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    clean = (data.astronaut()[160:224, 180:244] / 255).astype(np.float32)
    with tempfile.TemporaryDirectory() as work:
        save_observation(dip.degrade(clean, "denoising", "25", seed=0), Path(work) / "obs")
        for repeat in range(args.repeats):
            start = time.process_time()
            fits = dip.restore_batch(
                [Path(work) / "obs"],
                [0, 1],
                out=Path(work) / f"runs{repeat}",
                arch="tiny",
                iterations=args.iterations,
                precision="bf16",
                device="cpu",
                threads=1,
            )
            seconds = (time.process_time() - start) / args.iterations
            ran = fits[0].outcome.record["precision"]["ran"]
            print(f"repeat {repeat}: {seconds:.4f} CPU s per iteration, ran {ran}")


if __name__ == "__main__":
    main()
