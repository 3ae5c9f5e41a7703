"""dip.io: file round trips, accepted layouts, refused inputs, tensor conversion, crops."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from dip.errors import ConfigError, ImageError
from dip.io import (
    center_crop,
    crop_to_multiple,
    ensure_channels,
    read_image,
    read_mask,
    shrink,
    to_numpy,
    to_tensor,
    write_image,
    write_mask,
)

RNG = np.random.default_rng(0)


def _levels(shape: tuple[int, ...], bits: int) -> np.ndarray:
    return RNG.integers(0, 2**bits, shape).astype(np.uint16 if bits == 16 else np.uint8)


def _png16(path: Path, samples: np.ndarray, color_type: int) -> None:
    """Write a 16-bit PNG of any colour type (Pillow writes none but grey), Sub-filtered like common encoders."""
    h = samples.shape[0]
    rows = samples.astype(">u2").view(np.uint8).reshape(h, -1)
    bpp = 2 * samples.shape[2]
    filtered = rows.copy()
    filtered[:, bpp:] = rows[:, bpp:] - rows[:, :-bpp]  # PNG filter 1 (Sub), modulo 256
    scanlines = np.concatenate([np.ones((h, 1), np.uint8), filtered], axis=1)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", samples.shape[1], h, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(scanlines.tobytes()))
        + chunk(b"IEND", b"")
    )


# --- round trips -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("channels", [1, 3])
def test_png_round_trip_is_exact(tmp_path: Path, bits: int, channels: int) -> None:
    levels = _levels((9, 13, channels), bits)
    path = tmp_path / "x.png"
    write_image(path, levels / (2**bits - 1), bit_depth=bits)
    image = read_image(path)
    assert image.dtype == np.float32 and image.shape == (9, 13, channels)
    np.testing.assert_array_equal(np.round(image.astype(np.float64) * (2**bits - 1)), levels)
    expected_mode = {(8, 1): "L", (8, 3): "RGB", (16, 1): "I;16", (16, 3): "RGB"}[bits, channels]
    with Image.open(path) as im:
        assert im.mode == expected_mode


def test_16bit_rgb_png_keeps_all_16_bits(tmp_path: Path) -> None:
    levels = np.array([[[1, 256, 65534]]], dtype=np.uint16)  # differ from 8-bit data in the low byte
    write_image(tmp_path / "x.png", levels / 65535, bit_depth=16)
    np.testing.assert_array_equal(np.round(read_image(tmp_path / "x.png") * 65535), levels)


@pytest.mark.parametrize(("channels", "color_type"), [(3, 2), (4, 6), (2, 4)])
def test_16bit_png_from_other_encoders(tmp_path: Path, channels: int, color_type: int) -> None:
    samples = _levels((6, 7, channels), 16)
    if channels in (2, 4):
        samples[..., -1] = 65535  # opaque alpha
    _png16(tmp_path / "x.png", samples, color_type)
    image = read_image(tmp_path / "x.png")
    color = samples[..., :3] if channels == 4 else samples[..., :1] if channels == 2 else samples
    np.testing.assert_array_equal(np.round(image * 65535), color)


def test_16bit_png_alpha_is_read_at_full_precision(tmp_path: Path) -> None:
    samples = np.array([[[0, 0, 0, 65534]]], dtype=np.uint16)  # alpha < 1 only in the low byte
    _png16(tmp_path / "x.png", samples, 6)
    with pytest.raises(ImageError, match="transparent"):
        read_image(tmp_path / "x.png")


@given(st.lists(st.floats(0, 1, width=32), min_size=3, max_size=3))
@settings(max_examples=30, deadline=None)
def test_write_rounds_to_nearest_level(tmp_path_factory: pytest.TempPathFactory, values: list[float]) -> None:
    path = tmp_path_factory.mktemp("round") / "x.png"
    image = np.array(values, dtype=np.float32).reshape(1, 1, 3)
    for bits in (8, 16):
        write_image(path, image, bit_depth=bits)
        levels = 2**bits - 1
        np.testing.assert_array_equal(np.round(read_image(path) * levels), np.round(image.astype(np.float64) * levels))


def test_write_clips_and_creates_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "x.png"
    write_image(path, np.array([[[-0.5, 0.5, 1.5]]], dtype=np.float32))
    np.testing.assert_array_equal(np.round(read_image(path) * 255), [[[0, 128, 255]]])
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


# --- other formats and layouts -----------------------------------------------------------------------------


def test_jpeg_is_read(tmp_path: Path, textured_rgb: np.ndarray) -> None:
    Image.fromarray(np.round(textured_rgb * 255).astype(np.uint8)).save(tmp_path / "x.jpg", quality=95)
    image = read_image(tmp_path / "x.jpg")
    assert image.shape == textured_rgb.shape and image.dtype == np.float32
    assert np.abs(image - textured_rgb).mean() < 0.02


@pytest.mark.parametrize("planar", [False, True])
def test_16bit_rgb_tiff_is_exact(tmp_path: Path, planar: bool) -> None:
    levels = _levels((5, 7, 3), 16)
    data = levels.transpose(2, 0, 1) if planar else levels
    tifffile.imwrite(tmp_path / "x.tif", data, photometric="rgb", planarconfig="separate" if planar else None)
    np.testing.assert_array_equal(np.round(read_image(tmp_path / "x.tif") * 65535), levels)


def test_8bit_and_16bit_gray_tiff(tmp_path: Path) -> None:
    levels8, levels16 = _levels((5, 7), 8), _levels((5, 7), 16)
    Image.fromarray(levels8).save(tmp_path / "a.tiff", compression="tiff_lzw")
    tifffile.imwrite(tmp_path / "b.tif", levels16)
    np.testing.assert_array_equal(np.round(read_image(tmp_path / "a.tiff") * 255)[..., 0], levels8)
    np.testing.assert_array_equal(np.round(read_image(tmp_path / "b.tif") * 65535)[..., 0], levels16)


def test_opaque_rgba_becomes_rgb(tmp_path: Path) -> None:
    rgba = _levels((4, 5, 4), 8)
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "x.png")
    np.testing.assert_array_equal(np.round(read_image(tmp_path / "x.png") * 255), rgba[..., :3])


def test_transparent_rgba_is_refused_or_flattened_onto_white(tmp_path: Path) -> None:
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 0, 0], [0, 0, 255, 51]]], dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(rgba, "RGBA").save(path)
    with pytest.raises(ImageError, match="transparent") as error:
        read_image(path)
    assert str(path) in str(error.value)
    flat = read_image(path, alpha="flatten")
    np.testing.assert_allclose(flat[0], [[1, 0, 0], [1, 1, 1], [0.8, 0.8, 1]], atol=1e-6)


def test_gray_alpha_is_gray(tmp_path: Path) -> None:
    la = np.stack([_levels((4, 5), 8), np.full((4, 5), 255, np.uint8)], axis=-1)
    Image.fromarray(la, "LA").save(tmp_path / "x.png")
    np.testing.assert_array_equal(np.round(read_image(tmp_path / "x.png") * 255), la[..., :1])


def test_palette_image_becomes_rgb(tmp_path: Path) -> None:
    palette_image = Image.new("P", (3, 2))
    palette_image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette_image.putdata([0, 1, 2, 2, 1, 0])
    palette_image.save(tmp_path / "x.png")
    image = read_image(tmp_path / "x.png")
    np.testing.assert_array_equal(image[0], [[1, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_palette_transparency_is_refused(tmp_path: Path) -> None:
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([255, 0, 0, 0, 255, 0])
    palette_image.putdata([0, 1])
    palette_image.save(tmp_path / "x.png", transparency=1)
    with pytest.raises(ImageError, match="transparent"):
        read_image(tmp_path / "x.png")


def test_channels_option(tmp_path: Path, rgb_image: np.ndarray, gray_image: np.ndarray) -> None:
    write_image(tmp_path / "rgb.png", rgb_image)
    write_image(tmp_path / "gray.png", gray_image)
    assert read_image(tmp_path / "gray.png", channels="rgb").shape == (48, 64, 3)
    gray = read_image(tmp_path / "rgb.png", channels="gray")
    with Image.open(tmp_path / "rgb.png") as im:
        pillow_luma = np.asarray(im.convert("L"), dtype=np.float32) / 255
    np.testing.assert_allclose(gray[..., 0], pillow_luma, atol=1 / 255 + 1e-6)
    with pytest.raises(ConfigError, match="channels"):
        read_image(tmp_path / "rgb.png", channels="bgr")  # type: ignore[arg-type]


def test_ensure_channels_repeats_and_weights() -> None:
    pixel = np.array([[[1.0, 0.0, 0.0]]], dtype=np.float32)
    np.testing.assert_allclose(ensure_channels(pixel, 1), [[[0.299]]], rtol=1e-6)
    gray = np.full((1, 1, 1), 0.3, np.float32)
    np.testing.assert_array_equal(ensure_channels(gray, 3), np.full((1, 1, 3), 0.3, np.float32))


# --- refused inputs ----------------------------------------------------------------------------------------


def _truncated_png(path: Path, textured_rgb: np.ndarray) -> None:
    write_image(path, textured_rgb)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, img: None, "no such file"),
        (lambda p, img: p.write_bytes(b""), "empty file"),
        (lambda p, img: p.write_text("hello, not an image\n"), "not an image"),
        (_truncated_png, "truncated"),
        (lambda p, img: p.mkdir(), "not a file"),
    ],
    ids=["missing", "empty", "text", "truncated", "directory"],
)
def test_bad_files_raise_image_error_naming_the_path(
    tmp_path: Path, textured_rgb: np.ndarray, make, message: str
) -> None:
    path = tmp_path / "bad.png"
    make(path, textured_rgb)
    with pytest.raises(ImageError, match=message) as error:
        read_image(path)
    assert str(path) in str(error.value)


@pytest.mark.filterwarnings("ignore:.*zero-size array:UserWarning")
def test_zero_size_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "zero.tif"
    tifffile.imwrite(path, np.zeros((0, 5), np.uint16))
    with pytest.raises(ImageError) as error:
        read_image(path)
    assert str(path) in str(error.value)


def test_cmyk_is_refused(tmp_path: Path) -> None:
    Image.new("CMYK", (4, 4)).save(tmp_path / "x.jpg")
    with pytest.raises(ImageError, match="unsupported image mode 'CMYK'"):
        read_image(tmp_path / "x.jpg")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_write_refuses_nan_and_inf(tmp_path: Path, rgb_image: np.ndarray, bad: float) -> None:
    rgb_image[3, 4, 1] = bad
    path = tmp_path / "x.png"
    with pytest.raises(ImageError, match="1 NaN/Inf") as error:
        write_image(path, rgb_image)
    assert str(path) in str(error.value) and not path.exists()


def test_write_refuses_other_extensions_and_shapes(tmp_path: Path, rgb_image: np.ndarray) -> None:
    with pytest.raises(ImageError, match="PNG"):
        write_image(tmp_path / "x.jpg", rgb_image)
    with pytest.raises(ImageError, match=r"\(H, W, C\)"):
        write_image(tmp_path / "x.png", rgb_image[..., 0])
    with pytest.raises(ConfigError, match="bit_depth"):
        write_image(tmp_path / "x.png", rgb_image, bit_depth=12)  # type: ignore[arg-type]


# --- masks -------------------------------------------------------------------------------------------------


def test_mask_round_trip_and_threshold(tmp_path: Path) -> None:
    mask = (RNG.random((6, 8, 1)) < 0.5).astype(np.float32)
    write_mask(tmp_path / "m.png", mask)
    with Image.open(tmp_path / "m.png") as im:
        assert im.mode == "L" and set(np.unique(np.asarray(im))) <= {0, 255}
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", (6, 8)), mask)
    Image.fromarray(np.array([[0, 127, 128, 255]], np.uint8)).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "g.png")[..., 0], [[0, 0, 1, 1]])


def test_mask_size_is_checked(tmp_path: Path) -> None:
    write_mask(tmp_path / "m.png", np.ones((6, 8, 1), np.float32))
    with pytest.raises(ImageError, match=r"mask is 6×8 but the image is 8×6"):
        read_mask(tmp_path / "m.png", (8, 6))


def test_write_mask_refuses_non_binary(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="0 and 1"):
        write_mask(tmp_path / "m.png", np.full((2, 2, 1), 0.5, np.float32))


def test_real_mask_file(shared_dir: Path) -> None:
    mask = read_mask(shared_dir / "data" / "dip-paper" / "inpainting" / "kate_mask.png", (512, 512))
    assert set(np.unique(mask)) == {0.0, 1.0} and 0.5 < mask.mean() < 1


# --- tensors and crops -------------------------------------------------------------------------------------


def test_tensor_round_trip_copies(rgb_image: np.ndarray, gray_image: np.ndarray) -> None:
    for image in (rgb_image, gray_image):
        tensor = to_tensor(image)
        assert tensor.shape == (1, image.shape[2], 48, 64) and tensor.dtype == torch.float32
        np.testing.assert_array_equal(to_numpy(tensor), image)
        before = image.copy()
        tensor += 1  # must not write through to the array
        np.testing.assert_array_equal(image, before)
    grad = to_tensor(rgb_image).requires_grad_()
    assert to_numpy(grad * 2).shape == (48, 64, 3)
    with pytest.raises(ValueError, match=r"\(1, C, H, W\)"):
        to_numpy(torch.zeros(2, 3, 4, 4))


def test_center_crop_matches_the_authors_convention(rgb_image: np.ndarray) -> None:
    crop, box = center_crop(rgb_image, 45, 61)  # odd margins: 1 px top/left, 2 bottom/right
    assert box == (1, 1, 45, 61)
    np.testing.assert_array_equal(crop, rgb_image[1:46, 1:62])
    with pytest.raises(ImageError, match="cannot crop a 48×64 image to 49×10"):
        center_crop(rgb_image, 49, 10)


def test_crop_to_multiple() -> None:
    image = np.zeros((70, 100, 3), np.float32)
    crop, box = crop_to_multiple(image, 32)
    assert crop.shape == (64, 96, 3) and box == (3, 2, 64, 96)
    with pytest.raises(ImageError, match="image is 20×40 but the net needs both sides ≥ 32 and divisible by 32"):
        crop_to_multiple(np.zeros((20, 40, 1), np.float32), 32)
    with pytest.raises(ConfigError, match="multiple"):
        crop_to_multiple(image, 0)


def test_shrink_scales_the_shorter_side_down_and_leaves_a_small_image_alone() -> None:
    image = np.zeros((300, 451, 3), np.float32)
    image[:, 226:] = 1.0
    shrunk = shrink(image, 128)
    assert shrunk.shape == (128, 192, 3) and shrunk.dtype == np.float32
    assert shrunk[:, :90].max() < 1e-3 and shrunk[:, 100:].min() > 1 - 1e-3  # the edge stays where it was, smoothed
    assert 0 < shrunk[0, 96, 0] < 1
    assert shrink(image, 300) is image
