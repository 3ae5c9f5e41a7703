"""Tests of dip.resampling: the authors' Lanczos kernel and downsampler, and the 8-bit PIL resize."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dip.errors import ConfigError, ImageError
from dip.physics import LanczosDownsampler
from dip.resampling import lanczos_kernel, pil_resize

torch.set_num_threads(1)


def authors_get_kernel(factor, phase, kernel_width, support):
    """A line-by-line transcription of `get_kernel(..., 'lanczos', ...)` in the authors' models/downsampler.py."""
    kernel = np.zeros([kernel_width - 1] * 2) if phase == 0.5 else np.zeros([kernel_width] * 2)
    center = (kernel_width + 1) / 2.0
    for i in range(1, kernel.shape[0] + 1):
        for j in range(1, kernel.shape[1] + 1):
            if phase == 0.5:
                di = abs(i + 0.5 - center) / factor
                dj = abs(j + 0.5 - center) / factor
            else:
                di = abs(i - center) / factor
                dj = abs(j - center) / factor
            val = 1
            if di != 0:
                val = val * support * np.sin(np.pi * di) * np.sin(np.pi * di / support)
                val = val / (np.pi * np.pi * di * di)
            if dj != 0:
                val = val * support * np.sin(np.pi * dj) * np.sin(np.pi * dj / support)
                val = val / (np.pi * np.pi * dj * dj)
            kernel[i - 1][j - 1] = val
    kernel /= kernel.sum()
    return kernel


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
@pytest.mark.parametrize("phase", [0.5, 0.0])
@pytest.mark.parametrize("support", [2, 3])
def test_kernel_matches_authors_code(factor, phase, support):
    ours = lanczos_kernel(factor, phase, support)
    theirs = authors_get_kernel(factor, phase, 2 * support * factor + 1, support)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(ours.astype(np.float32), theirs.astype(np.float32))


def test_kernel_sizes_of_the_paper():
    assert lanczos_kernel(4).shape == (16, 16)
    assert lanczos_kernel(8).shape == (32, 32)
    kernel = lanczos_kernel(4)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(kernel, kernel.T)
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1])


@pytest.mark.parametrize("bad", [dict(factor=0), dict(factor=4, phase=0.25), dict(factor=4, support=0)])
def test_kernel_rejects_bad_arguments(bad):
    with pytest.raises(ConfigError):
        lanczos_kernel(**bad)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_downsampler_equals_authors_dense_conv(factor):
    """Same numbers as the authors' dense conv with a diagonal weight after ReplicationPad2d((k - f) / 2)."""
    channels, size = 3, 8 * factor
    kernel = torch.from_numpy(lanczos_kernel(factor)).float()
    k = kernel.shape[0]
    dense = nn.Conv2d(channels, channels, kernel_size=k, stride=factor, padding=0)
    dense.weight.data[:] = 0
    dense.bias.data[:] = 0
    for i in range(channels):
        dense.weight.data[i, i] = kernel
    authors = nn.Sequential(nn.ReplicationPad2d((k - factor) // 2), dense)
    x = torch.rand(2, channels, size, size + factor, generator=torch.Generator().manual_seed(0))
    ours = LanczosDownsampler(channels, factor)
    torch.testing.assert_close(ours(x), authors(x), rtol=1e-5, atol=1e-6)
    assert ours(x).shape == (2, channels, size // factor, size // factor + 1)


@settings(max_examples=20, deadline=None)
@given(
    factor=st.sampled_from([2, 3, 4, 8]),
    phase=st.sampled_from([0.5, 0.0]),
    blocks_h=st.integers(2, 6),
    blocks_w=st.integers(2, 6),
)
def test_downsampler_output_size(factor, phase, blocks_h, blocks_w):
    x = torch.zeros(1, 1, blocks_h * factor, blocks_w * factor)
    assert LanczosDownsampler(1, factor, phase)(x).shape == (1, 1, blocks_h, blocks_w)
    unpadded = LanczosDownsampler(1, factor, phase, preserve_size=False)
    k = unpadded.weight.shape[-1]
    big = torch.zeros(1, 1, k + factor * blocks_h, k + factor * blocks_w)
    assert unpadded(big).shape == (1, 1, blocks_h + 1, blocks_w + 1)


@pytest.mark.parametrize(("factor", "phase"), [(2, 0.5), (4, 0.5), (8, 0.5), (3, 0.0)])
def test_downsampler_samples_block_centres_like_pil(factor, phase):
    """On a ramp, every output inside the border equals the ramp at its block's centre, as Pillow's resize does."""
    blocks = 16
    ramp = 2.0 * np.arange(blocks * factor, dtype=np.float32)
    image = np.repeat(ramp[:, None], blocks * factor, axis=1)
    ours = LanczosDownsampler(1, factor, phase)(torch.from_numpy(image)[None, None])[0, 0, :, 0].numpy()
    centres = 2.0 * (np.arange(blocks) * factor + (factor - 1) / 2)
    np.testing.assert_allclose(ours[3:-3], centres[3:-3], atol=1e-3)
    pil = pil_resize(image[..., None] / 255.0, (blocks, blocks), "lanczos")[:, 0, 0] * 255.0
    np.testing.assert_allclose(pil[3:-3], centres[3:-3], atol=0.51)


def test_downsampler_weight_is_a_fixed_buffer():
    down = LanczosDownsampler(3, 4)
    assert list(down.parameters()) == []
    assert "weight" in dict(down.named_buffers())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    down(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_pil_resize_lanczos_is_pillow_on_8_bits():
    from PIL import Image

    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(24, 40, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(data).resize((10, 6), Image.Resampling.LANCZOS))
    out = pil_resize(data.astype(np.float32) / 255.0, (6, 10), "lanczos")
    assert out.dtype == np.float32 and out.shape == (6, 10, 3)
    np.testing.assert_array_equal(np.round(out * 255).astype(np.uint8), expected)
    np.testing.assert_array_equal(out, expected.astype(np.float32) / 255.0)


@pytest.mark.parametrize("method", ["lanczos", "bicubic", "bilinear", "nearest"])
def test_pil_resize_gray_keeps_channel_axis(method):
    image = np.linspace(0, 1, 16 * 12, dtype=np.float32).reshape(16, 12, 1)
    out = pil_resize(image, (32, 24), method)
    assert out.shape == (32, 24, 1)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_pil_resize_rejects_bad_input():
    image = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ConfigError, match="cubic"):
        pil_resize(image, (4, 4), "cubic")
    with pytest.raises(ImageError, match=r"\(8, 8\)"):
        pil_resize(image[..., 0], (4, 4), "lanczos")
    with pytest.raises(ConfigError):
        pil_resize(image, (0, 4), "lanczos")
