"""Tests of dip.models: the authors' nets from spec dicts, presets, size rules, inputs and spec errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dip.errors import ConfigError
from dip.models import (
    ARCHS,
    PRESETS,
    build_model,
    count_parameters,
    describe_presets,
    input_scale,
    layers,
    make_input,
    minimum_side,
    required_multiple,
    resolve_spec,
)

torch.set_num_threads(1)


def _forward(spec, height: int, width: int, out_channels: int = 3) -> torch.Tensor:
    torch.manual_seed(0)
    net = build_model(spec, out_channels)
    z = make_input(spec, height, width, torch.Generator().manual_seed(0))
    with torch.no_grad():
        return net(z)


# --- the paper's net -------------------------------------------------------------------------------------------


def test_paper_preset_has_the_published_parameter_count():
    assert count_parameters(build_model("paper", 3)) == 2_217_831  # PROTOCOL.md, input depth 32


def test_paper_net_maps_64x64_noise_to_an_image_in_0_1():
    out = _forward("paper", 64, 64)
    assert out.shape == (1, 3, 64, 64)
    assert out.dtype == torch.float32
    assert out.min() > 0 and out.max() < 1


@pytest.mark.parametrize(
    ("preset", "parameters"),
    # checked equal, parameter for parameter and output for output, to the authors' skip/UNet/ResNet and Heckel &
    # Hand's decodernw with the same settings
    [
        ("inpaint-text", 3_002_627),
        ("inpaint-region", 2_157_955),
        ("light", 572_827),
        ("unet", 2_164_899),
        ("resnet", 54_131),
        ("decoder", 100_224),
    ],
)
def test_preset_parameter_counts_match_the_reference_code(preset, parameters):
    assert count_parameters(build_model(preset, 3)) == parameters


def test_flash_no_flash_preset_is_the_notebooks_net():
    net = build_model("flash-no-flash", 3)
    # nn.Upsample modules are met deepest scale first: reversed, index 0 is the finest scale
    modes = [m.mode for m in net.modules() if isinstance(m, nn.Upsample)][::-1]
    assert modes == ["nearest", "nearest", "bilinear", "bilinear", "bilinear"]
    # the paper net (input depth 32) less 29 input channels of the finest scale's 1×1 skip conv (4 out) and 3×3
    # stride-2 conv (128 out)
    assert count_parameters(net) == 2_217_831 - 29 * (4 + 9 * 128)
    assert resolve_spec("flash-no-flash")["input_depth"] == 3


def test_skip_level_has_the_authors_module_order():
    net = build_model("tiny", 3)
    types = [type(m) for m in net]
    assert types == [
        layers.Concat, nn.BatchNorm2d, nn.Sequential, nn.BatchNorm2d, nn.LeakyReLU,  # concat, BN, conv 3x3, BN, act
        nn.Sequential, nn.BatchNorm2d, nn.LeakyReLU,  # 1x1 conv, BN, act
        nn.Sequential, nn.Sigmoid,  # final 1x1 conv, sigmoid
    ]  # fmt: skip
    skip_branch, deeper = net[0].children()
    assert [type(m) for m in skip_branch] == [nn.Sequential, nn.BatchNorm2d, nn.LeakyReLU]
    down_conv = deeper[0][-1]
    assert down_conv.stride == (2, 2) and down_conv.kernel_size == (3, 3)
    assert isinstance(deeper[-1], nn.Upsample) and deeper[-1].mode == "bilinear"
    assert deeper[-1].align_corners is False
    assert len(skip_branch[0]) == 1 and skip_branch[0][0].kernel_size == (1, 1)  # a 1x1 conv has no pad layer
    assert net[1].num_features == 4 + 32  # skip channels + the next scale's up channels


def test_scale_without_skip_channels_has_no_concat():
    net = build_model({"preset": "tiny", "channels_skip": [0, 4, 4]}, 3)
    assert isinstance(net[0], nn.Sequential) and not isinstance(net[0], layers.Concat)
    assert net[1].num_features == 32


def test_need1x1_up_false_drops_the_1x1_convs():
    with_1x1 = count_parameters(build_model("tiny", 3))
    without = count_parameters(build_model({"preset": "tiny", "need1x1_up": False}, 3))
    assert with_1x1 - without == sum(c * c + c + 2 * c for c in (16, 32, 64))  # conv weight + bias + BN affine


# --- every preset and arch -------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_runs_at_its_required_multiple(preset):
    multiple = required_multiple(preset)
    out = _forward(preset, 2 * multiple, 3 * multiple, out_channels=1)
    assert out.shape == (1, 1, 2 * multiple, 3 * multiple)
    assert out.min() > 0 and out.max() < 1


@pytest.mark.parametrize("preset", ["tiny", "unet", "resnet", "decoder"])
def test_every_arch_backpropagates_to_all_parameters(preset):
    net = build_model(preset, 3)
    z = make_input(preset, 32, 32, torch.Generator().manual_seed(0))
    net(z).square().mean().backward()  # the in-place activations must not break autograd
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize(
    ("spec", "multiple"),
    [
        ("paper", 32),
        ("tiny", 8),
        ({"preset": "tiny", "channels_down": [4, 4], "channels_up": [4, 4], "channels_skip": [0, 4]}, 4),
        ("unet", 16),
        ({"arch": "unet", "more_layers": 1, "feature_scale": 16}, 32),
        ("resnet", 1),
        ("decoder", 32),
        ({"arch": "decoder", "channels": [8, 8, 8]}, 8),
    ],
)
def test_required_multiple_is_two_to_the_number_of_scales(spec, multiple):
    assert required_multiple(spec) == multiple


@pytest.mark.parametrize(
    ("spec", "side"),
    [
        ("tiny", 16),
        ("unet", 32),
        ("resnet", 2),
        ("decoder", 32),
        ({"preset": "decoder", "kernel_size": 3}, 64),
        ({"preset": "decoder", "kernel_size": 3, "pad": "zero"}, 32),
    ],
)
def test_minimum_side_is_the_shortest_side_the_net_takes(spec, side):
    """At its minimum side a net runs in training mode; a multiple less, padding or BatchNorm fails."""
    assert minimum_side(spec) == side
    assert _forward(spec, side, 4 * side).shape[2:] == (side, 4 * side)
    smaller = side - required_multiple(spec)
    if smaller > 0:
        with pytest.raises((RuntimeError, ValueError)):
            _forward(spec, smaller, 4 * side)


def test_resnet_keeps_any_size():
    spec = {"arch": "resnet", "input_depth": 2, "num_blocks": 2, "channels": 4}
    assert _forward(spec, 13, 7).shape == (1, 3, 13, 7)


@pytest.mark.parametrize("upsample", ["nearest", "bilinear", "deconv"])
def test_unet_upsampling_modes(upsample):
    spec = {"arch": "unet", "input_depth": 3, "feature_scale": 16, "upsample": upsample, "norm": "instance"}
    assert _forward(spec, 32, 48).shape == (1, 3, 32, 48)


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_decoder_output_is_the_image_size_from_a_small_input(kernel_size):
    spec = {"arch": "decoder", "input_depth": 8, "channels": [8, 6, 4], "kernel_size": kernel_size}
    z = make_input(spec, 32, 48, torch.Generator().manual_seed(0))
    assert z.shape == (1, 8, 4, 6)
    assert input_scale(spec) == 8
    assert build_model(spec, 3)(z).shape == (1, 3, 32, 48)


@settings(max_examples=15, deadline=None)
@given(
    n_scales=st.integers(1, 3),
    skip=st.integers(0, 3),
    filter_size=st.sampled_from([1, 3, 5]),
    upsample=st.sampled_from(["nearest", "bilinear"]),
    downsample=st.sampled_from(["stride", "avg", "max"]),
    pad=st.sampled_from(["reflection", "zero"]),
    factors=st.tuples(st.integers(1, 3), st.integers(1, 3)),
)
def test_skip_output_matches_any_size_that_divides_by_the_multiple(
    n_scales, skip, filter_size, upsample, downsample, pad, factors
):
    spec = {
        "arch": "skip",
        "input_depth": 2,
        "channels_down": [3] * n_scales,
        "channels_up": 4,
        "channels_skip": skip,
        "filter_size_down": filter_size,
        "upsample": upsample,
        "downsample": downsample,
        "pad": pad,
    }
    multiple = required_multiple(spec)
    height, width = multiple * (2 + factors[0]), multiple * (2 + factors[1])  # deepest side >= 3 for 5x5 reflection
    assert _forward(spec, height, width, out_channels=2).shape == (1, 2, height, width)


def test_per_scale_scalars_broadcast_like_lists():
    as_scalars = {"preset": "tiny", "filter_size_down": 5, "upsample": "nearest", "channels_up": 16}
    as_lists = {"preset": "tiny", "filter_size_down": [5] * 3, "upsample": ["nearest"] * 3, "channels_up": [16] * 3}
    assert count_parameters(build_model(as_scalars, 3)) == count_parameters(build_model(as_lists, 3))
    assert torch.equal(_forward(as_scalars, 32, 32), _forward(as_lists, 32, 32))


# --- layers ----------------------------------------------------------------------------------------------------


def _ones_conv(pad: str, kernel_size: int = 3, stride: int = 1, downsample: str = "stride") -> nn.Sequential:
    block = layers.conv(1, 1, kernel_size, stride, bias=False, pad=pad, downsample=downsample)
    nn.init.ones_(block[1 if pad == "reflection" and kernel_size > 1 else 0].weight)
    return block


def test_reflection_padding_is_a_pad_layer_before_an_unpadded_conv():
    block = layers.conv(2, 3, 5, pad="reflection")
    assert isinstance(block[0], nn.ReflectionPad2d) and block[0].padding == (2, 2, 2, 2)
    assert block[1].padding == (0, 0)
    assert layers.conv(2, 3, 5, pad="zero")[0].padding == (2, 2)
    with torch.no_grad():  # a sum over a 3x3 window of ones: reflection keeps 9 at the border, zero padding does not
        reflected = _ones_conv("reflection")(torch.ones(1, 1, 4, 4))
        zeroed = _ones_conv("zero")(torch.ones(1, 1, 4, 4))
    assert torch.equal(reflected, torch.full((1, 1, 4, 4), 9.0))
    assert zeroed[0, 0, 0, 0] == 4 and zeroed[0, 0, 0, 1] == 6 and zeroed[0, 0, 1, 1] == 9


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("stride", [[0.0, 2.0], [8.0, 10.0]]),  # the top-left pixel of each 2x2 block (1x1 identity conv)
        ("avg", [[2.5, 4.5], [10.5, 12.5]]),
        ("max", [[5.0, 7.0], [13.0, 15.0]]),
    ],
)
def test_downsampling_modes(mode, expected):
    block = _ones_conv("reflection", kernel_size=1, stride=2, downsample=mode)
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    with torch.no_grad():
        assert block(x).squeeze().tolist() == expected


def test_lanczos2_downsampling_uses_the_papers_downsampler():
    from dip.physics import LanczosDownsampler

    block = layers.conv(2, 3, 3, 2, pad="reflection", downsample="lanczos2")
    assert isinstance(block[-1], LanczosDownsampler) and block[1].stride == (1, 1)
    spec = {"preset": "tiny", "downsample": ["lanczos2", "stride", "stride"]}
    assert _forward(spec, 16, 24).shape == (1, 3, 16, 24)


def test_concat_centre_crops_to_the_smallest_branch():
    shrink = nn.Conv2d(1, 1, 3, bias=False)  # 5x6 -> 3x4
    concat = layers.Concat(1, nn.Identity(), shrink)
    x = torch.rand(1, 1, 5, 6)
    with torch.no_grad():
        out = concat(x)
        assert torch.equal(out, torch.cat([x[:, :, 1:4, 1:5], shrink(x)], 1))


def test_reflection_padding_keeps_bf16_under_autocast():
    """CPU autocast would pad in fp32 (two copies of every conv input); the pad layer keeps its input's dtype."""
    x = torch.rand(1, 4, 6, 7).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        padded = layers.ReflectionPad2d(1)(x)
        assert nn.ReflectionPad2d(1)(x).dtype == torch.float32  # what autocast does to the plain layer
    assert padded.dtype == torch.bfloat16
    assert torch.equal(padded, nn.ReflectionPad2d(1)(x))
    padded.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16
    assert isinstance(layers.conv(4, 4, 3)[0], layers.ReflectionPad2d)


def test_concat_hands_channels_last_branches_channels_last_gradients():
    """cat's backward gives each branch a strided channel slice; Concat turns it back into channels_last."""
    seen = {}

    def branch(name: str) -> nn.Module:
        class Spy(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                y = x * 1.0
                if y.requires_grad:
                    y.register_hook(lambda grad: seen.__setitem__(name, grad))
                return y

        return Spy()

    concat = layers.Concat(1, branch("skip"), nn.Sequential(nn.Conv2d(3, 5, 1), branch("deeper")))
    x = torch.rand(1, 3, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = torch.rand(1, 8, 8, 8)
    (concat(x) * weight).sum().backward()
    for name, channels in (("skip", slice(0, 3)), ("deeper", slice(3, 8))):
        assert seen[name].is_contiguous(memory_format=torch.channels_last), name
        assert torch.equal(seen[name], weight[:, channels])
    with torch.no_grad():  # no gradient, no hook
        assert concat(x).shape == (1, 8, 8, 8)


@pytest.mark.parametrize(("name", "negative"), [("LeakyReLU", -0.2), ("ReLU", 0.0), ("none", -1.0)])
def test_activations(name, negative):
    assert layers.act(name)(torch.tensor([-1.0, 2.0])).tolist() == pytest.approx([negative, 2.0])


# --- inputs ----------------------------------------------------------------------------------------------------


def test_noise_input_is_a_tenth_of_uniform_noise():
    z = make_input("tiny", 32, 48, torch.Generator().manual_seed(3))
    assert z.shape == (1, 8, 32, 48) and z.dtype == torch.float32
    assert z.min() >= 0 and z.max() < 0.1 and z.mean() == pytest.approx(0.05, abs=0.005)


def test_input_is_reproducible_for_a_seed():
    def draw(seed: int) -> torch.Tensor:
        return make_input("paper", 32, 32, torch.Generator().manual_seed(seed))

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


def test_meshgrid_matches_the_authors_formula():
    height, width = 5, 8
    z = make_input("inpaint-region", height, width, torch.Generator())
    x, y = np.meshgrid(np.arange(0, width) / float(width - 1), np.arange(0, height) / float(height - 1))
    assert z.shape == (1, 2, height, width) and z.dtype == torch.float32
    np.testing.assert_array_equal(z[0, 0].numpy(), x.astype(np.float32))
    np.testing.assert_array_equal(z[0, 1].numpy(), y.astype(np.float32))
    assert z[0, 0, 0, -1] == 1 and z[0, 1, -1, 0] == 1


def test_decoder_input_needs_sides_divisible_by_its_scale():
    with pytest.raises(ConfigError, match="height 48 is not a multiple of 32"):
        make_input("decoder", 48, 64, torch.Generator())


# --- specs -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"arch": "transformer"}, "'arch' = 'transformer' is not an architecture; known: skip, unet, resnet, decoder"),
        ({"preset": "paper", "chanels_down": [8]}, "'chanels_down' is not a parameter of arch 'skip'; known: "),
        ({"arch": "resnet", "channels_down": [8]}, "'channels_down' is not a parameter of arch 'resnet'"),
        ({"preset": "paper", "channels_up": [128] * 4}, "'channels_up' has 4 entries but the net has 5 scales"),
        ({"preset": "paper", "upsample": ["nearest"] * 6}, "'upsample' has 6 entries"),
        ({"preset": "paper", "input_kind": "meshgrid"}, "'input_depth' must be 2 with input_kind 'meshgrid'"),
        ({"preset": "paper", "input_kind": "image"}, "'input_kind' must be one of noise, meshgrid"),
        ({"preset": "paper", "input_depth": 0}, "'input_depth' must be at least 1"),
        ({"preset": "tiny", "channels_down": []}, "'channels_down' must be a non-empty list"),
        ({"preset": "tiny", "channels_down": [8, "16", 8]}, "'channels_down\\[1\\]' must be an integer"),
        ({"preset": "tiny", "filter_size_up": 4}, "'filter_size_up' must be an odd kernel size"),
        ({"preset": "tiny", "downsample": "bicubic"}, "'downsample' must be one of stride, avg, max, lanczos2"),
        ({"preset": "tiny", "sigmoid": "yes"}, "'sigmoid' must be true or false"),
        ({"preset": "tiny", "act": "Swish"}, "'act' must be one of"),
        ({"preset": "unet", "feature_scale": 128}, "'feature_scale' must be at most 64"),
        ({"preset": "decoder", "kernel_size": True}, "'kernel_size' must be an integer"),
        ({"preset": "paper", "arch": "unet"}, "'arch' = 'unet' conflicts with preset 'paper'"),
        ({"preset": "huge"}, "unknown model preset 'huge'; known: paper, "),
        ({"channels_down": [8]}, "needs an 'arch' or a 'preset'"),
        (["paper"], "must be a preset name or a mapping"),
    ],
)
def test_bad_specs_raise_config_errors_naming_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_model(spec, 3)


def test_bad_out_channels():
    with pytest.raises(ConfigError, match="'out_channels' must be at least 1"):
        build_model("tiny", 0)


def test_resolve_spec_merges_overrides_over_the_preset():
    spec = resolve_spec({"preset": "paper", "channels_skip": [0] * 5, "upsample": "nearest"})
    assert spec["preset"] == "paper" and spec["arch"] == "skip"
    assert spec["channels_skip"] == [0] * 5 and spec["upsample"] == "nearest"
    assert spec["channels_down"] == [128] * 5 and spec["input_depth"] == 32 and spec["pad"] == "reflection"
    assert set(spec) == {"preset", "arch", *ARCHS["skip"].defaults}


def test_resolve_spec_fills_arch_defaults_without_a_preset():
    spec = resolve_spec({"arch": "resnet", "num_blocks": 2})
    assert spec == {**ARCHS["resnet"].defaults, "arch": "resnet", "num_blocks": 2}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_resolved_spec_round_trips_through_json(preset):
    spec = resolve_spec({"preset": preset})
    assert resolve_spec(preset) == spec
    again = json.loads(json.dumps(spec))
    assert resolve_spec(again) == spec
    assert count_parameters(build_model(again, 3)) == count_parameters(build_model(preset, 3))
    again.pop("preset")
    assert count_parameters(build_model(again, 3)) == count_parameters(build_model(preset, 3))


def test_resolved_spec_does_not_alias_the_presets():
    spec = resolve_spec({"preset": "tiny", "channels_up": (16, 32, 64)})
    assert spec["channels_up"] == [16, 32, 64]
    spec["channels_down"].append(128)
    assert PRESETS["tiny"]["channels_down"] == [16, 32, 64]


def test_describe_presets_lists_every_preset():
    rows = {row["name"]: row for row in describe_presets()}
    assert list(rows) == list(PRESETS)
    assert rows["paper"]["parameters"] == 2_217_831 and rows["paper"]["required_multiple"] == 32
    assert rows["inpaint-region"]["input"] == "meshgrid x2"
    assert rows["decoder"]["input"] == "noise x128 at 1/32"
    assert all(row["description"] for row in rows.values())
