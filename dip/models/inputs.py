"""The fixed net input z, as the authors' `get_noise` (utils/common_utils.py) makes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from dip.errors import ConfigError
from dip.models.spec import input_scale, resolve_spec

NOISE_SCALE = 0.1  # the notebooks' `get_noise(..., var=1./10)`: U(0, 1) * 0.1


def make_input(spec: str | Mapping[str, Any], height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """The `(1, input_depth, h, w)` float32 input for an image of `height × width`.

    `noise`: U(0, 1) * 0.1 drawn from `generator` (on its device); `meshgrid`: channels `[X, Y]` with `X = j / (w - 1)`,
    `Y = i / (h - 1)`. `h, w = height, width` divided by `input_scale(spec)` (the decoder's input is small), which must
    divide both sides.
    """
    full = resolve_spec(spec)
    scale = input_scale(full)
    for name, side in (("height", height), ("width", width)):
        if isinstance(side, bool) or not isinstance(side, int) or side < 1:
            raise ConfigError(f"input {name} must be a positive integer, got {side!r}")
        if side % scale:
            raise ConfigError(
                f"image {name} {side} is not a multiple of {scale}: arch {full['arch']!r} takes its input at "
                f"1/{scale} of the image size; crop the image to a multiple of {scale}"
            )
    h, w = height // scale, width // scale
    if full["input_kind"] == "noise":
        shape = (1, full["input_depth"], h, w)
        return torch.rand(shape, generator=generator, device=generator.device) * NOISE_SCALE
    if h < 2 or w < 2:
        raise ConfigError(f"a meshgrid input needs at least 2×2 pixels, got {h}×{w}")
    x, y = np.meshgrid(np.arange(0, w) / float(w - 1), np.arange(0, h) / float(h - 1))
    return torch.from_numpy(np.stack([x, y])[None]).to(device=generator.device, dtype=torch.float32)
