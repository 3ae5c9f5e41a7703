"""docs/images/peers-cpu.png: PSNR against CPU seconds of each peer's full run on a 64² crop at σ = 25 and 50.

Run in the folder of the measurement (docs/reproduction.md, "Zero-shot peers"), which holds run-obs64-<σ>-<method>/
(with metrics.json) and time-obs64-<σ>-<method>.log (`/usr/bin/time -v`):
    python benchmarks/peers_cpu_figure.py NOISY25 NOISY50 OUT.png     # NOISY*: the noisy inputs' PSNR
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

METHODS = {"bm3d": "s", "ffdnet": "D", "zs-n2n": "o", "noise2fast": "^"}


def cpu_seconds(log: Path) -> float:
    """User plus system time of a `/usr/bin/time -v` log."""
    text = log.read_text()
    return sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", text)[1]) for kind in ("User", "System"))


def main(noisy25: float, noisy50: float, out: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, sigma, noisy in zip(axes, ("25", "50"), (noisy25, noisy50), strict=True):
        for method, marker in METHODS.items():
            metrics = Path(f"run-obs64-{sigma}-{method}/metrics.json")
            if metrics.exists():
                psnr = json.loads(metrics.read_text())["psnr"]
                seconds = cpu_seconds(Path(f"time-obs64-{sigma}-{method}.log"))
                ax.scatter(seconds, psnr, marker=marker, s=60, label=method)
        ax.axhline(noisy, color="grey", ls="--", lw=1, label="noisy input")
        ax.set_xscale("log")
        ax.set_xlim(1, 200)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("CPU seconds (one thread, with start-up)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"F16, 64² crop, σ = {sigma}")
    axes[0].legend(fontsize=8)
    figure.suptitle("Peers on this CPU (Intel Xeon, 1 thread), full protocols; NOT the grid", fontsize=10)
    figure.tight_layout()
    figure.savefig(out, dpi=110)


if __name__ == "__main__":
    main(float(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]))
