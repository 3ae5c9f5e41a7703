"""Validation of model-spec values: each check returns the clean value or raises `ConfigError` naming the key."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from dip.errors import ConfigError

MAX_CHANNELS = 4096
"""The most channels a layer (or the net's input) may have: 8 times the widest net of DIP's papers (the paper's `skip`
has 128, the deep decoder 512 at most); a wider one needs more memory than any GPU has for images of the paper's
sizes, and would be refused only after seconds of building it."""


def integer(key: str, value: Any, minimum: int = 0, maximum: int | None = None) -> int:
    """An `int` (not a bool) from `minimum` to `maximum` (None: no bound)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"model key {key!r} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"model key {key!r} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"model key {key!r} must be at most {maximum}, got {value}")
    return value


def channels(key: str, value: Any, minimum: int = 1) -> int:
    """A channel count: an integer from `minimum` to `MAX_CHANNELS`."""
    return integer(key, value, minimum, MAX_CHANNELS)


def skip_channels(key: str, value: Any) -> int:
    """A skip connection's channel count: 0 (no skip) to `MAX_CHANNELS`."""
    return channels(key, value, 0)


def odd(key: str, value: Any) -> int:
    """A positive odd kernel size (the authors' padding `(k - 1) // 2` keeps the size only for odd k)."""
    value = integer(key, value, 1)
    if value % 2 == 0:
        raise ConfigError(f"model key {key!r} must be an odd kernel size, got {value}")
    return value


def boolean(key: str, value: Any) -> bool:
    """A `bool` (YAML `true`/`false`)."""
    if not isinstance(value, bool):
        raise ConfigError(f"model key {key!r} must be true or false, got {value!r}")
    return value


def choice(key: str, value: Any, choices: Sequence[str]) -> str:
    """One of `choices`."""
    if value not in choices:
        raise ConfigError(f"model key {key!r} must be one of {', '.join(choices)}; got {value!r}")
    return value


def one_of(choices: Sequence[str]) -> Callable[[str, Any], str]:
    """A check for `per_scale` that accepts one of `choices`."""
    return lambda key, value: choice(key, value, choices)


def channel_list(key: str, value: Any) -> list[int]:
    """A non-empty list of channel counts (`channels`)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"model key {key!r} must be a non-empty list of integers, got {value!r}")
    return [channels(f"{key}[{index}]", item) for index, item in enumerate(value)]


def per_scale(key: str, value: Any, n_scales: int, check: Callable[[str, Any], Any]) -> list:
    """One value per scale: a list of length `n_scales`, or a scalar broadcast to all scales (as the authors)."""
    if not isinstance(value, (list, tuple)):
        return [check(key, value)] * n_scales
    if len(value) != n_scales:
        raise ConfigError(
            f"model key {key!r} has {len(value)} entries but the net has {n_scales} scales "
            "(the length of 'channels_down'); give one entry per scale or a single value"
        )
    return [check(f"{key}[{index}]", item) for index, item in enumerate(value)]


@dataclass(frozen=True)
class Arch:
    """How a spec maps to one architecture.

    `build(in_channels, out_channels, **kwargs)` makes the net from the kwargs that `check(params)` returns for the
    hyper-parameters (`defaults` lists them); `scales(kwargs)` is the number of factor-2 resolution changes; a
    `low_res_input` net takes its input at `1 / 2**scales` of the image size (the decoder). `coarsest_side(kwargs)` is
    the shortest side its coarsest feature map may have: 2 by default, as a reflection pad of a 3×3 conv and BatchNorm
    in training both need more than 1 pixel.
    """

    build: Callable[..., nn.Module]
    defaults: Mapping[str, Any]
    check: Callable[[Mapping[str, Any]], dict[str, Any]]
    scales: Callable[[Mapping[str, Any]], int]
    low_res_input: bool = False
    coarsest_side: Callable[[Mapping[str, Any]], int] = lambda kwargs: 2
