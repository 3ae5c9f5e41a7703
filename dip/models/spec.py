"""Model specs as plain dicts: resolve presets and defaults, validate, build, and derive the size constraints.

A spec has `arch` (a key of `ARCHS`), `input_kind` (`noise` | `meshgrid`), `input_depth` and the arch's
hyper-parameters (its `defaults`); `preset: NAME` starts from a preset in `PRESETS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from dip.errors import ConfigError
from dip.models import checks
from dip.models.decoder import ARCH as DECODER
from dip.models.presets import DESCRIPTIONS, PRESETS
from dip.models.resnet import ARCH as RESNET
from dip.models.skip import ARCH as SKIP
from dip.models.unet import ARCH as UNET

ARCHS: dict[str, checks.Arch] = {
    "skip": SKIP,
    "unet": UNET,
    "resnet": RESNET,
    "decoder": DECODER,
}
INPUT_KINDS = ("noise", "meshgrid")
COMMON_KEYS = ("arch", "input_kind", "input_depth")


def resolve_spec(spec_or_name: str | Mapping[str, Any]) -> dict[str, Any]:
    """The full explicit spec (every key, JSON types) for a preset name, or a dict of overrides over `preset`/arch.

    The result keeps `preset` (the name it started from, for records) and resolves to itself.
    """
    return _resolve(spec_or_name)[0]


def build_model(spec: str | Mapping[str, Any], out_channels: int) -> nn.Module:
    """The net for `spec` (a preset name or a spec dict, resolved by `resolve_spec`) with `out_channels` outputs."""
    full, arch, kwargs = _resolve(spec)
    out_channels = checks.integer("out_channels", out_channels, 1)
    return arch.build(full["input_depth"], out_channels, **kwargs)


def required_multiple(spec: str | Mapping[str, Any]) -> int:
    """The factor both image sides must divide by for the output to match the image size: 2**downsamplings."""
    _, arch, kwargs = _resolve(spec)
    return 2 ** arch.scales(kwargs)


def minimum_side(spec: str | Mapping[str, Any]) -> int:
    """The shortest image side the net takes: `required_multiple` times the side its coarsest scale needs."""
    _, arch, kwargs = _resolve(spec)
    return arch.coarsest_side(kwargs) * 2 ** arch.scales(kwargs)


def input_scale(spec: str | Mapping[str, Any]) -> int:
    """How much smaller than the image the net's input is on each side (2**upsamplings for `decoder`, else 1)."""
    _, arch, kwargs = _resolve(spec)
    return 2 ** arch.scales(kwargs) if arch.low_res_input else 1


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters (the authors' `sum(np.prod(p.size()) for p in net.parameters())`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe_presets() -> list[dict[str, Any]]:
    """One row per preset for `dip archs`: name, arch, input, parameters (3 outputs), required_multiple, description."""
    rows = []
    for name in PRESETS:
        full = resolve_spec(name)
        scale = input_scale(full)
        rows.append(
            {
                "name": name,
                "arch": full["arch"],
                "input": f"{full['input_kind']} x{full['input_depth']}" + (f" at 1/{scale}" if scale > 1 else ""),
                "parameters": count_parameters(build_model(full, 3)),
                "required_multiple": required_multiple(full),
                "description": DESCRIPTIONS[name],
            }
        )
    return rows


def _resolve(spec_or_name: str | Mapping[str, Any]) -> tuple[dict[str, Any], checks.Arch, dict[str, Any]]:
    """The full spec, its arch and the builder's keyword arguments; raises `ConfigError` on any bad key or value."""
    if isinstance(spec_or_name, str):
        overrides: dict[str, Any] = {"preset": spec_or_name}
    elif isinstance(spec_or_name, Mapping):
        overrides = dict(spec_or_name)
    else:
        raise ConfigError(f"a model spec must be a preset name or a mapping, got {spec_or_name!r}")
    base: Mapping[str, Any] = {}
    preset = overrides.pop("preset", None)
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown model preset {preset!r}; known: {', '.join(PRESETS)}")
        base = PRESETS[preset]
        if overrides.get("arch", base["arch"]) != base["arch"]:
            raise ConfigError(
                f"model key 'arch' = {overrides['arch']!r} conflicts with preset {preset!r} (arch {base['arch']!r}); "
                "drop one of them"
            )
    arch_name = overrides.get("arch", base.get("arch"))
    if arch_name is None:
        raise ConfigError("a model spec needs an 'arch' or a 'preset'")
    if arch_name not in ARCHS:
        raise ConfigError(f"model key 'arch' = {arch_name!r} is not an architecture; known: {', '.join(ARCHS)}")
    arch = ARCHS[arch_name]
    known = ("preset", *COMMON_KEYS, *(key for key in arch.defaults if key not in COMMON_KEYS))
    for key in overrides:
        if key not in known:
            raise ConfigError(f"model key {key!r} is not a parameter of arch {arch_name!r}; known: {', '.join(known)}")
    provenance = {"preset": preset} if preset is not None else {}
    full = _plain({**provenance, "arch": arch_name, **arch.defaults, **base, **overrides})
    _check_input(full)
    return full, arch, arch.check(full)


def _check_input(spec: Mapping[str, Any]) -> None:
    """Validates `input_kind` and `input_depth` (the authors' meshgrid has exactly 2 channels)."""
    kind = checks.choice("input_kind", spec["input_kind"], INPUT_KINDS)
    depth = checks.channels("input_depth", spec["input_depth"])
    if kind == "meshgrid" and depth != 2:
        raise ConfigError(f"model key 'input_depth' must be 2 with input_kind 'meshgrid' (X, Y channels), got {depth}")


def _plain(value: Any) -> Any:
    """A copy of nested dicts and lists (tuples become lists): JSON-serialisable, detached from `PRESETS`."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
