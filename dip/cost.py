"""What a run costs: its wall seconds and its peak memory, on the device that ran it.

The peak memory is the process's peak resident set (RSS) on the CPU, reset at the start of the run where Linux allows
it (`/proc/self/clear_refs`), so that a run in a notebook is not charged with what an earlier one used; on CUDA it is
the peak of the memory torch allocated on the device (`torch.cuda.max_memory_allocated`), which leaves out the CUDA
context and the allocator's cache.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from pathlib import Path
from typing import Any

CPU_MEMORY = "peak RSS"
CUDA_MEMORY = "peak allocated on the GPU"
"""What `peak_memory_mb` measures, by where the run's arithmetic ran."""


class CostMeter:
    """Started with a run (it resets the peak RSS), read when the run ends (`finish`)."""

    def __init__(self) -> None:
        _reset_peak_rss()
        self.start = time.perf_counter()

    def finish(self, device: Any = None) -> dict[str, Any]:
        """The run record's cost fields: the wall seconds since the start and the peak memory in MiB of `device`
        (a torch.device; None: the CPU). On CUDA, the peak since torch's statistics were last reset, which
        `dip.api.restoring.prepare_device` does when it sets the device up."""
        seconds = time.perf_counter() - self.start
        if getattr(device, "type", None) == "cuda":
            import torch

            return {
                "wall_seconds": seconds,
                "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
                "memory_measure": CUDA_MEMORY,
            }
        return {"wall_seconds": seconds, "peak_memory_mb": peak_rss_mb(), "memory_measure": CPU_MEMORY}


def _reset_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux ≥ 4.0: writing 5 to clear_refs); whether it could."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """The process's peak resident set size since it started or since the last reset, in MiB."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere
