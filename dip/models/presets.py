"""Named model specs: each preset is a partial spec merged over its arch's defaults by `resolve_spec`.

The skip presets follow the authors' notebooks (docs/reproduction.md, "The paper's settings per task and level").
"""

from __future__ import annotations

from typing import Any

_PAPER: dict[str, Any] = {
    "arch": "skip",
    "input_kind": "noise",
    "input_depth": 32,
    "channels_down": [128] * 5,
    "channels_up": [128] * 5,
    "channels_skip": [4] * 5,
    "upsample": "bilinear",
    "pad": "reflection",
}

PRESETS: dict[str, dict[str, Any]] = {
    "paper": _PAPER,
    "inpaint-text": {**_PAPER, "channels_skip": [128] * 5, "upsample": "nearest"},
    "inpaint-region": {
        "arch": "skip",
        "input_kind": "meshgrid",
        "input_depth": 2,
        "channels_down": [128] * 5,
        "channels_up": [128] * 5,
        "channels_skip": [0] * 5,
        "upsample": "nearest",
    },
    "flash-no-flash": {
        **_PAPER,
        "input_depth": 3,  # the flash photo (`Operator.net_input`)
        "upsample": ["nearest", "nearest", "bilinear", "bilinear", "bilinear"],
    },
    "light": {
        "arch": "skip",
        "input_kind": "noise",
        "input_depth": 3,
        "channels_down": [8, 16, 32, 64, 128],
        "channels_up": [8, 16, 32, 64, 128],
        "channels_skip": [0, 0, 0, 4, 4],
        "upsample": "bilinear",
    },
    "tiny": {
        "arch": "skip",
        "input_kind": "noise",
        "input_depth": 8,
        "channels_down": [16, 32, 64],
        "channels_up": [16, 32, 64],
        "channels_skip": [4, 4, 4],
        "upsample": "bilinear",
    },
    "unet": {"arch": "unet", "input_depth": 32, "feature_scale": 4, "upsample": "bilinear"},
    "resnet": {"arch": "resnet", "input_depth": 32, "num_blocks": 10, "channels": 16},
    "decoder": {"arch": "decoder", "input_depth": 128, "channels": [128] * 5, "kernel_size": 1},
}

DESCRIPTIONS: dict[str, str] = {
    "paper": "the paper's net: denoising, super-resolution, random inpainting (skip 128/128/4 x5)",
    "inpaint-text": "text inpainting net of the kate notebook (skip 128/128/128 x5, nearest up)",
    "inpaint-region": "region inpainting net of the vase notebook (skip 128/128/0 x5, meshgrid input)",
    "flash-no-flash": "net of the flash-no-flash notebook (skip 128/128/4 x5, nearest up at the 2 finest scales); "
    "its input is the flash photo (3 channels)",
    "light": "the authors' lighter net for a small image (snail): 8-128 channels, skip 0/0/0/4/4",
    "tiny": "3-scale skip net for laptops and tests (16/32/64 channels)",
    "unet": "the DIP code's U-Net, feature_scale 4 (16-256 channels), bilinear up",
    "resnet": "the DIP code's ResNet: 10 residual blocks of 16 channels, full resolution",
    "decoder": "Deep Decoder of Heckel & Hand's code (128 channels, 5 upsamplings, 1x1 convs)",
}
