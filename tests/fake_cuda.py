"""Fake CUDA on a machine without a GPU: `device="cuda"` tensors that carry a device, a dtype and a shape but no data,
so that the fit's code runs as it would on a GPU and a tensor on the wrong device, or of an unexpected dtype, fails
here (torch's `FakeTensorMode`, which checks every op's devices as a CUDA kernel would).

torch's CPU-only build lacks four things a CUDA fit touches; each is stood in for, as narrowly as the tier allows:
- the CUDA device guard (streams, the current device): c10's own `FakeGuardImpl<CUDA>`, registered for the time of
  the context by a 20-line shim compiled once per session (a C++ compiler is needed; without one the tier skips);
- `torch.cuda`'s queries (`is_available`, `is_bf16_supported`, `device_count`, `get_device_capability`,
  `get_device_name`): an Ampere-class GPU (compute capability 8.0), so that `torch.autocast("cuda")` and
  `GradScaler("cuda")` run as they would there;
- the CUDA generator: `torch.Generator(device="cuda")` gives a CPU generator that stands for the device asked for
  (its `device`); the log lists each generator's device (a random op cannot check it: torch hands the fake mode a new
  wrapper of the generator);
- autograd's engine, which needs a CUDA runtime for its streams: `Tensor.backward` gives each leaf the graph reaches a
  zero gradient of the leaf's own device and dtype (what autograd guarantees); the forward graph is the real one.

Reading a fake tensor's value (`.item()`, `float()`, `bool()`, `.tolist()`) returns a placeholder (`HOST_VALUES`) and
is logged as a host read with its device: the tier counts the fit's GPU syncs. Two limits of fake tensors themselves
are stood in for too: `torch.save` writes zeros of each fake tensor's shape and dtype (and logs its device and dtype),
and `Module.to` swaps fake parameters even where the fake mode's memo refers to them weakly.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily

CUDA = torch.device("cuda", 0)
CAPABILITY = (8, 0)
"""The fake GPU's compute capability: bf16 native (`dip.device.resolve_precision` picks bf16 for `auto`)."""
HOST_VALUES = {"cuda": 0.0, "cpu": 1.0, "int": -1, "bool": True}
"""What a host read of a fake tensor returns: a float on the GPU 0 (a loss; no overflow for the fp16 loss scaler), on
the CPU 1 (Adam's step count), an integer −1 (no stopping rule fired), a boolean True (finite)."""

_SHIM = """
#include <c10/core/impl/FakeGuardImpl.h>
namespace {
const c10::impl::FakeGuardImpl<c10::DeviceType::CUDA> fake_cuda_guard;
}
extern "C" int dip_fake_cuda_guard(int install) {
  auto& slot = c10::impl::device_guard_impl_registry[static_cast<size_t>(c10::DeviceType::CUDA)];
  const c10::impl::DeviceGuardImplInterface* current = slot.load();
  if (install) {
    if (current != nullptr && current != &fake_cuda_guard) return 0;  // a real CUDA build: leave its guard alone
    slot.store(&fake_cuda_guard);
  } else if (current == &fake_cuda_guard) {
    slot.store(nullptr);
  }
  return 1;
}
"""


def build_guard(folder: Path) -> ctypes.CDLL:
    """Compile (once per folder) and load the shim that registers c10's fake CUDA device guard."""
    library = folder / "libdip_fake_cuda_guard.so"
    if not library.exists():
        compiler = shutil.which("c++") or shutil.which("g++")
        if compiler is None:
            raise FileNotFoundError("no C++ compiler (c++ or g++) on the PATH")
        source = folder / "fake_cuda_guard.cpp"
        source.write_text(_SHIM)
        torch_dir = Path(torch.__file__).parent
        command = [compiler, "-shared", "-fPIC", "-std=c++17", f"-I{torch_dir / 'include'}", str(source)]
        command += [f"-L{torch_dir / 'lib'}", "-lc10", f"-Wl,-rpath,{torch_dir / 'lib'}", "-o", str(library)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    guard = ctypes.CDLL(str(library))
    guard.dip_fake_cuda_guard.argtypes = [ctypes.c_int]
    guard.dip_fake_cuda_guard.restype = ctypes.c_int
    return guard


@dataclass
class Log:
    """What the fake GPU saw: host reads (device→host syncs), host→device copies, and the tensors saved."""

    host_reads: list[str] = field(default_factory=list)
    """The device of each tensor whose value was read."""
    uploads: list[tuple[int, ...]] = field(default_factory=list)
    """The shape of each CPU tensor copied to the GPU."""
    saved: list[dict[str, tuple[torch.device, torch.dtype]]] = field(default_factory=list)
    """For each `torch.save`: the device and dtype of each tensor saved, by its path in the saved object."""
    generators: list[torch.device] = field(default_factory=list)
    """The device of each `torch.Generator` made."""

    def syncs(self) -> int:
        """How many times the host waited for the GPU (a read of a CUDA tensor's value)."""
        return sum(device == "cuda" for device in self.host_reads)


class FakeCudaMode(FakeTensorMode):
    """`FakeTensorMode` whose host reads return placeholders (`HOST_VALUES`), logged with the transfers."""

    def __init__(self, log: Log, values: dict[str, Any]) -> None:
        super().__init__(allow_non_fake_inputs=True)
        self.log, self.values = log, values

    @property
    def avoid_device_init(self) -> bool:
        return True  # the patched `torch.cuda.is_available` must not make the mode touch a real device

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            (tensor,) = args
            self.log.host_reads.append(tensor.device.type)
            if tensor.dtype == torch.bool:
                return self.values["bool"]
            return self.values[tensor.device.type] if tensor.dtype.is_floating_point else self.values["int"]
        result = super().__torch_dispatch__(func, types, args, kwargs)
        if func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            source = args[1] if func is torch.ops.aten.copy_.default else args[0]
            target = args[0] if func is torch.ops.aten.copy_.default else result
            if source.device.type == "cpu" and target.device.type == "cuda":
                self.log.uploads.append(tuple(source.shape))
        return result


class FakeCudaGenerator(torch.Generator):
    """`torch.Generator(device)` where `device` may be CUDA: a CPU generator that knows the device it stands for (its
    `device`), logged in `made`. (A random op cannot check its generator's device here: torch passes a new wrapper of
    the generator to the fake mode, not this object.)"""

    made: ClassVar[list[torch.device]] = []

    def __new__(cls, device: str | torch.device = "cpu") -> FakeCudaGenerator:
        generator = super().__new__(cls, "cpu")
        generator.stands_for = torch.device(device)
        cls.made.append(generator.stands_for)
        return generator

    def __init__(self, device: str | torch.device = "cpu") -> None:
        pass

    def set_state(self, state: torch.Tensor) -> FakeCudaGenerator:
        """A fake state (a checkpoint's, loaded on the GPU) is checked as torch checks it, and its values ignored."""
        if not isinstance(state, FakeTensor):
            return super().set_state(state)
        if state.device.type != "cpu" or state.dtype != torch.uint8:
            raise TypeError(f"expected a torch.ByteTensor, but got a {state.dtype} tensor on {state.device}")
        return self

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self.stands_for


def backward_stand_in(self: torch.Tensor, gradient: Any = None, *args: Any, **kwargs: Any) -> None:
    """`Tensor.backward` on fake tensors: a zero gradient (the leaf's device and dtype) for each leaf reached."""
    if not isinstance(self, FakeTensor):
        raise AssertionError("a real tensor's backward inside the fake CUDA context")
    seen, stack = set(), [self.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        leaf = getattr(node, "variable", None)
        if leaf is not None and leaf.grad is None:
            leaf.grad = torch.zeros_like(leaf)
        stack.extend(next_node for next_node, _ in node.next_functions)


def swap_stand_in(real_swap: Any) -> Any:
    """`torch.utils.swap_tensors`, which `Module.to` calls on fake parameters (on real ones, `.data =`) and which
    refuses tensors that the fake mode's memo refers to weakly: the same swap, those references left to follow the
    swapped tensors (the memo only spares converting a real tensor twice)."""

    def swap(first: torch.Tensor, second: torch.Tensor) -> None:
        if not (isinstance(first, FakeTensor) or isinstance(second, FakeTensor)):
            return real_swap(first, second)
        with mock.patch("torch.utils.weakref.getweakrefs", return_value=[]):
            return real_swap(first, second)

    return swap


def save_stand_in(log: Log, real_save: Any) -> Any:
    """`torch.save` that writes zeros in place of fake tensors (same shape and dtype) and logs their devices."""

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        devices: dict[str, tuple[torch.device, torch.dtype]] = {}

        def real(path: str, value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                devices[path] = (value.device, value.dtype)
                with unset_fake_temporarily():
                    return torch.zeros(value.shape, dtype=value.dtype)
            if isinstance(value, dict):
                return {k: real(f"{path}/{k}", v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return type(value)(real(f"{path}/{i}", v) for i, v in enumerate(value))
            return value

        copy = real("", obj)
        log.saved.append(devices)
        with unset_fake_temporarily():
            real_save(copy, f, *args, **kwargs)

    return save


@contextlib.contextmanager
def fake_cuda(guard: ctypes.CDLL, **values: Any) -> Iterator[Log]:
    """Run the body as on one CUDA GPU of compute capability 8.0: its tensors fake, CUDA's queries answered, the
    stand-ins above in place; yields the log of what the fake GPU saw. `values` replace some of `HOST_VALUES`."""
    log = Log()
    if not guard.dip_fake_cuda_guard(1):
        raise RuntimeError("this torch has a CUDA device guard of its own: run the gpu tier instead")
    patches = [
        mock.patch("torch.cuda.is_available", return_value=True),
        mock.patch("torch.cuda.is_bf16_supported", return_value=True),
        mock.patch("torch.cuda.device_count", return_value=1),
        mock.patch("torch.cuda.get_device_capability", return_value=CAPABILITY),
        mock.patch("torch.cuda.get_device_name", return_value="fake CUDA GPU"),
        mock.patch("torch.Generator", FakeCudaGenerator),
        mock.patch.object(FakeCudaGenerator, "made", log.generators),
        mock.patch.object(torch.Tensor, "backward", backward_stand_in),
        mock.patch("torch.save", save_stand_in(log, torch.save)),
        mock.patch("torch.utils.swap_tensors", swap_stand_in(torch.utils.swap_tensors)),
    ]
    try:
        with contextlib.ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            stack.enter_context(FakeCudaMode(log, {**HOST_VALUES, **values}))
            yield log
    finally:
        guard.dip_fake_cuda_guard(0)
