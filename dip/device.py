"""Where a fit runs: device selection, CPU threads, determinism, precision and the CPU allocator."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import re
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import torch

from dip.errors import ConfigError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "tf32", "bf16", "fp16")
"""What `--precision` takes: `auto` resolves (`resolve_precision`) to one of the others, which run as they say."""
Precision = Literal["auto", "fp32", "tf32", "bf16", "fp16"]
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
"""The precisions that run the forward pass under autocast; fp32 and tf32 run it in float32."""
CPU_BF16_FEATURES = ("amx_bf16", "avx512_bf16")
NOT_DETERMINISTIC_ON_CUDA = (
    "the backward of reflection padding (the nets' pads, the deblurring operator's)",
    "the backward of bilinear upsampling (the presets that upsample bilinearly)",
)
"""What `--deterministic` cannot make deterministic on CUDA: torch has no deterministic CUDA kernel for these ops of
the fits here (`torch.use_deterministic_algorithms`, torch 2.13), so they run as they are; a run records which ran
(`nondeterministic_kernels`)."""
_NOT_DETERMINISTIC = re.compile(r"(\S+) does not have a deterministic implementation, but you set")
"""torch's alert for a kernel without a deterministic implementation, under `warn_only`."""

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
    most = 4 * (os.cpu_count() or 1)  # beyond any use, and OpenMP crashes on counts in the tens of thousands
    if not 1 <= threads <= most:
        raise ConfigError(f"threads must be from 1 to {most} (four per CPU of this machine), got {threads}")
    torch.set_num_threads(threads)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic kernels (slower on CUDA; CPU kernels used here already are), or, not enabled, for
    its default kernels again (the mode is the process's: an earlier fit's must not carry over). Ops without a
    deterministic kernel on CUDA (`NOT_DETERMINISTIC_ON_CUDA`) still run, nondeterministically (`warn_only`):
    `nondeterministic_kernels` says which did."""
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    if not enabled:
        return
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def nondeterministic_kernels() -> Iterator[list[str]]:
    """The kernels that ran without a deterministic implementation while deterministic ones were asked for (torch's
    `warn_only` alerts, e.g. `reflection_pad2d_backward_cuda`), each once, sorted; filled in when the block ends and
    logged once. Other warnings pass on as they were."""
    ran: list[str] = []
    if not torch.are_deterministic_algorithms_enabled():
        yield ran
        return
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.filterwarnings("always", message=_NOT_DETERMINISTIC.pattern)  # each, not once per line
            yield ran
    finally:
        for warning in caught:
            if match := _NOT_DETERMINISTIC.match(str(warning.message)):
                ran.append(match.group(1))
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        ran[:] = sorted(set(ran))
        if ran:
            log.warning("deterministic kernels were asked for, but these ran nondeterministically: %s", ", ".join(ran))


def cuda_versions(device: torch.device) -> dict[str, Any]:
    """The CUDA runtime torch was built with and the cuDNN it loaded (`torch.backends.cudnn.version()`'s number), for
    records; None on other devices."""
    if device.type != "cuda":
        return {"cuda": None, "cudnn": None}
    return {"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}


def configure_cuda(device: torch.device, precision: str, *, autotune: bool = True) -> None:
    """cuDNN autotuning (`autotune`) and the float32 arithmetic of matmuls and convolutions: TF32 for `tf32`, IEEE
    float32 otherwise (cuDNN's convolutions default to TF32; here fp32 means fp32). CUDA only, never touched on a CPU
    machine."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = autotune
    mode = "tf32" if precision == "tf32" else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch ≥ 2.9; the old flags are deprecated there
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
    else:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"


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


def cpu_bf16_features() -> list[str]:
    """The CPU's instruction-set extensions that compute bf16 natively (AMX-BF16, AVX512-BF16), as torch reads them."""
    cpu = torch._C._cpu
    if hasattr(cpu, "_get_cpu_capability"):  # torch ≥ 2.12: one dict of every feature
        capability = cpu._get_cpu_capability()
        return [name for name in CPU_BF16_FEATURES if capability.get(name)]
    probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    return [name for name, probe in probes.items() if getattr(cpu, probe, lambda: False)()]


ONEDNN_ISA_MASKS = {
    "SSE41": 0x1,
    "AVX": 0x3,
    "AVX2": 0x7,
    "AVX2_VNNI": 0xF,
    "AVX2_VNNI_2": 0x1F,
    "AVX512_CORE": 0x27,
    "AVX512_CORE_VNNI": 0x67,
    "AVX512_CORE_BF16": 0xE7,
    "AVX10_1_512": 0x1EF,
    "AVX512_CORE_FP16": 0x1EF,
    "AVX10_1_512_AMX": 0xFEF,
    "AVX512_CORE_AMX": 0xFEF,
    "AVX10_1_512_AMX_FP16": 0x1FEF,
    "AVX512_CORE_AMX_FP16": 0x1FEF,
}
"""oneDNN's CPU ISA levels as its `dnnl_cpu_isa_t` bit masks: a level includes every level whose bits it has; the bf16
kernels need AVX512_CORE_BF16's."""


def onednn_isa_cap() -> str | None:
    """The ISA level that `ONEDNN_MAX_CPU_ISA` (or `DNNL_MAX_CPU_ISA`) caps oneDNN's kernels at, where it is set to a
    level below the best; None without a cap (unset, `ALL`, `DEFAULT`, or a name oneDNN does not know)."""
    value = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return value if value in ONEDNN_ISA_MASKS else None


def resolve_precision(
    precision: str, device: torch.device, channels_last: bool, *, batched: bool = False
) -> tuple[str, bool, str]:
    """The precision a fit runs in, whether its net runs in channels_last, and why. `auto` is bf16 where the device
    computes it natively: CUDA compute capability ≥ 8.0; a CPU with AMX-BF16 or AVX512-BF16 that oneDNN may use (no
    `ONEDNN_MAX_CPU_ISA` below AVX512_CORE_BF16), whose net then runs in channels_last, the layout where oneDNN's
    bf16 kernels pay (batched fits run in NCHW, so `auto` keeps them in fp32 on the CPU); else fp32. Any other
    precision is itself, in the layout asked for."""
    if precision != "auto":
        return precision, channels_last, "asked for"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if major >= 8:
            return "bf16", channels_last, f"auto: CUDA compute capability {major}.{minor} ≥ 8.0 computes bf16 natively"
        return "fp32", channels_last, f"auto: CUDA compute capability {major}.{minor} < 8.0 has no native bf16"
    if device.type == "cpu":
        features = cpu_bf16_features()
        if not features:
            return "fp32", channels_last, "auto: the CPU has neither AMX-BF16 nor AVX512-BF16"
        native = " and ".join(name.upper().replace("_", "-") for name in features)
        cap = onednn_isa_cap()
        if cap is not None and ONEDNN_ISA_MASKS[cap] & 0xE7 != 0xE7:
            return (
                "fp32",
                channels_last,
                f"auto: the CPU has {native}, but ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN from it",
            )
        if channels_last:
            return "bf16", True, f"auto: the CPU has {native} and the net runs in channels_last"
        if batched:
            return "fp32", False, f"auto: the CPU has {native}, but bf16 pays only in channels_last, which batches lack"
        return "bf16", True, f"auto: the CPU has {native}; the net runs in channels_last, where bf16 pays"
    return "fp32", channels_last, f"auto: no native bf16 path on {device.type} here"


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run (fp16 autocast and TF32 are CUDA-only here; `auto` is resolved
    first)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        raise ConfigError("precision 'auto' is resolved before it is checked (dip.device.resolve_precision)")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision 'fp16' needs a CUDA device; use 'bf16' on a CPU")
    if precision == "tf32" and device.type != "cuda":
        raise ConfigError("precision 'tf32' (TensorFloat-32 matmuls and convolutions) needs a CUDA device")


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """Mixed precision for the forward pass: bf16 on CPU/CUDA, fp16 on CUDA; fp32 and tf32 are no-ops (TF32 is a
    backend setting, `configure_cuda`)."""
    if precision in ("fp32", "tf32"):
        yield
        return
    if precision not in _AUTOCAST:
        raise ConfigError(f"precision {precision!r} has no autocast: resolve it first (dip.device.resolve_precision)")
    with torch.autocast(device_type=device.type, dtype=_AUTOCAST[precision]):
        yield
