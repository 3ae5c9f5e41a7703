"""A fit's memory, estimated before it starts and compared with what its device has free; running out, one line.

The estimate (`fit_bytes`) builds the net on PyTorch's `meta` device (shapes only, no storage) and runs one forward
there, summing the size of every layer's output, which autograd keeps for the backward pass; parameters count four times
(the weights, their gradients and Adam's two moments), and the fit's own images (x0, its output and their copies, ES-
WMV's window of outputs) once each. A fit peaks above that sum: bare training steps (`tiny`, `paper`, `inpaint-text` at
256 and 512 px, two steps of Adam) at 0.87-1.5 times it; a whole `dip restore` of `tiny` at 512 px (130 iterations, ES-
WMV's window full) at 1.8 GB resident against a sum of 0.8 GB (the interpreter and libraries take about 0.5 GB); one at
2976² px (grey) was killed by the kernel past 21.6 GB against a sum of 19.1 GB. The estimate is therefore the sum times
`PEAK_FACTOR`, and a fit whose estimate is over what its device has free (`available_bytes`) is refused in one line
(`check_fit_memory`) before anything is allocated. One that runs out all the same stops in one line too
(`out_of_memory`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from dip.errors import OutOfMemory

if TYPE_CHECKING:
    from dip.fit_settings import FitSettings

BYTES_PER_VALUE = 4  # float32: the parameters, the activations and the optimizer's state
PARAMETER_COPIES = 4  # weights, gradients, Adam's exp_avg and exp_avg_sq
IMAGE_COPIES = 16  # the fit's images: x0, the truth, the output, its EMA, the best and last, z and its noise
PEAK_FACTOR = 2  # a whole fit's peak over the sum of its tensors: 1.6 measured at 512 px, more than 1.13 at 2976 px
MEMINFO = Path("/proc/meminfo")
CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")
CGROUP_USAGE = Path("/sys/fs/cgroup/memory.current")


def fit_bytes(
    spec: dict[str, Any], channels: int, height: int, width: int, settings: FitSettings, batch: int = 1
) -> tuple[int, int]:
    """(estimated peak bytes of a fit of `batch` nets of `spec` on `height × width` images, the net's parameters)."""
    from dip.models import build_model, input_scale

    outputs: list[int] = []

    def count(module: nn.Module, inputs: Any, output: Any) -> None:
        if not list(module.children()) and isinstance(output, torch.Tensor):
            outputs.append(output.numel())

    with torch.device("meta"):
        net = build_model(spec, channels)
        scale = input_scale(spec)
        net_input = torch.empty(1, spec["input_depth"], height // scale, width // scale)
    hooks = [module.register_forward_hook(count) for module in net.modules()]
    try:
        with torch.no_grad():
            net(net_input)
    finally:
        for hook in hooks:
            hook.remove()
    parameters = sum(parameter.numel() for parameter in net.parameters())
    images = IMAGE_COPIES + (settings.es_window if "es-wmv" in (*settings.watched_rules(), settings.stopping) else 0)
    values = parameters * PARAMETER_COPIES + sum(outputs) + net_input.numel() + images * channels * height * width
    return values * batch * BYTES_PER_VALUE * PEAK_FACTOR, parameters


def available_bytes(device: torch.device) -> int | None:
    """The memory free for a fit on `device`: a GPU's free memory, or the CPU's available memory (within this
    process's cgroup limit, where there is one); None where it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    free = None
    with contextlib.suppress(OSError, ValueError):
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    with contextlib.suppress(OSError, ValueError):  # "max" where the cgroup sets no limit
        limit = int(CGROUP_LIMIT.read_text()) - int(CGROUP_USAGE.read_text())
        free = limit if free is None else min(free, limit)
    if free is None:
        with contextlib.suppress(ImportError):
            import psutil

            free = psutil.virtual_memory().available
    return free


def check_fit_memory(
    spec: dict[str, Any],
    channels: int,
    shape: tuple[int, int],
    settings: FitSettings,
    batch: int,
    device: torch.device,
    what: str,
) -> None:
    """Refuse, in one line naming `what`, a fit whose estimated memory is over what `device` has free."""
    height, width = shape
    needed, parameters = fit_bytes(spec, channels, height, width, settings, batch)
    free = available_bytes(device)
    if free is None or needed <= free:
        return
    fits = f"{batch} fits" if batch > 1 else "a fit"
    need = "need" if batch > 1 else "needs"
    raise OutOfMemory(
        f"{what}: {fits} of {spec.get('preset') or spec['arch']} ({parameters:,} parameters) on a {height}×{width} "
        f"image {need} about {gigabytes(needed)} but {device} has {gigabytes(free)} free; use a smaller net, image or "
        "batch (fewer seeds at once)"
    )


def out_of_memory(error: BaseException, device: torch.device, what: str) -> OutOfMemory:
    """The one-line error of a fit that ran out of memory on `device` (a CPU `MemoryError`, a CUDA OOM)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return OutOfMemory(f"{what}: out of memory on {device} ({first[:160]}); use a smaller net, image or batch")


def gigabytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.0f} MB"


MEMORY_ERRORS = (MemoryError, torch.OutOfMemoryError)
"""What running out of memory raises: on the CPU, and on a GPU."""
