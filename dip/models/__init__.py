"""DIP architectures built from plain spec dicts: `skip`, `unet`, `resnet`, `decoder`, and named presets.

`build_model(spec, out_channels)` makes a net from a preset name or a dict (`arch`, `input_kind`, `input_depth` and the
arch's hyper-parameters, optionally over `preset: NAME`); `make_input` makes its fixed input z, at the image size
except for `decoder`, whose input is `input_scale(spec)` times smaller on each side.
"""

from dip.models.decoder import decoder
from dip.models.inputs import make_input
from dip.models.presets import PRESETS
from dip.models.resnet import ResNet
from dip.models.skip import skip
from dip.models.spec import (
    ARCHS,
    build_model,
    count_parameters,
    describe_presets,
    input_scale,
    minimum_side,
    required_multiple,
    resolve_spec,
)
from dip.models.unet import UNet

__all__ = [
    "ARCHS",
    "PRESETS",
    "ResNet",
    "UNet",
    "build_model",
    "count_parameters",
    "decoder",
    "describe_presets",
    "input_scale",
    "make_input",
    "minimum_side",
    "required_multiple",
    "resolve_spec",
    "skip",
]
