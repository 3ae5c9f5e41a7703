"""Where a fit runs: device selection, CPU threads, determinism, precision and the CPU allocator."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Iterator
from typing import Literal

import torch

from dip.errors import ConfigError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
Precision = Literal["fp32", "bf16", "fp16"]

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_allocator_tuned = False


def select_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU; an explicit device that is absent is an error."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"device {name!r} is not one of {', '.join(DEVICES)} (or cuda:N)")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was asked for but Apple MPS is not available on this machine")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """A human-readable name of the device, for records (e.g. 'cuda: NVIDIA H100', 'cuda:1: NVIDIA H100',
    'cpu: 2 threads')."""
    if device.type == "cuda":
        return f"{device}: {torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu: {torch.get_num_threads()} threads"
    return device.type


def configure_threads(threads: int | None) -> None:
    """Set the CPU intra-op thread count (None leaves torch's default, which is the number of cores)."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"threads must be ≥ 1, got {threads}")
    torch.set_num_threads(threads)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic kernels (slower on CUDA; CPU kernels used here already are)."""
    if not enabled:
        return
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def enable_cuda_speedups(device: torch.device) -> None:
    """cuDNN autotuning and TF32 matmuls/convs: CUDA only, never touched on a CPU machine."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def tune_cpu_allocator(top_pad_bytes: int = 1 << 30) -> bool:
    """Tell glibc malloc to keep large buffers instead of returning them to the OS after every iteration.

    DIP frees and re-allocates the same large activation buffers every iteration; by default glibc serves them with
    mmap and unmaps them on free, costing ~1.8 M page faults per iteration of the paper net (benchmarks/NOTES.md).
    This is the in-process equivalent of `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=… MALLOC_TOP_PAD_=…`; results are
    unchanged. Returns False where it does not apply (not glibc).
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        libc = ctypes.CDLL(libc_name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = all(
        mallopt(param, value)
        for param, value in (
            (_M_MMAP_MAX, 0),
            (_M_TRIM_THRESHOLD, 2**31 - 1),
            (_M_TOP_PAD, min(top_pad_bytes, 2**31 - 1)),
        )
    )
    _allocator_tuned = ok
    if ok:
        log.debug("glibc malloc tuned: mmap off, no trimming, top pad %d bytes", top_pad_bytes)
    return ok


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run (fp16 autocast is CUDA-only here)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision 'fp16' needs a CUDA device; use 'bf16' on a CPU")


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """Mixed precision for the forward pass: bf16 on CPU/CUDA, fp16 on CUDA; fp32 is a no-op."""
    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
