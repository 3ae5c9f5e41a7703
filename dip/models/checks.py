"""Validation of model-spec values: each check returns the clean value or raises `ConfigError` naming the key."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from dip.errors import ConfigError


def integer(key: str, value: Any, minimum: int = 0) -> int:
    """An `int` (not a bool) that is at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"model key {key!r} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"model key {key!r} must be at least {minimum}, got {value}")
    return value


def positive(key: str, value: Any) -> int:
    """An integer of at least 1."""
    return integer(key, value, 1)


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


def int_list(key: str, value: Any, minimum: int = 0) -> list[int]:
    """A non-empty list of integers, each at least `minimum`."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"model key {key!r} must be a non-empty list of integers, got {value!r}")
    return [integer(f"{key}[{index}]", item, minimum) for index, item in enumerate(value)]


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
