"""Image and mask files, numpy/torch conversion and centre crops.

Images are float32 ``(H, W, C)`` arrays with ``C in (1, 3)`` and values in ``[0, 1]``; masks are float32
``(H, W, 1)`` with ``1 = known pixel`` (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from dip.errors import ConfigError, ImageError, OutputError

if TYPE_CHECKING:  # torch is imported by the two converters only, so that image I/O starts fast
    import torch

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)

# ITU-R BT.601 luma weights, as Pillow's RGB -> L conversion.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# Pillow decodes 16-bit colour PNGs to 8 bits. Decoding the same data twice, once keeping the high byte
# of each sample and once the low byte (a little-endian unpacker on big-endian data), recovers all 16 bits.
# Grey+alpha 16-bit is opened as RGBA; its 4 bytes per pixel are read verbatim with the "RGBA" unpacker.
_PNG16_PASSES = {
    "RGB;16B": ("RGB;16B", "RGB;16L"),
    "RGBA;16B": ("RGBA;16B", "RGBA;16L"),
    "LA;16B": ("RGBA",),
}
_TIFF_BITS_PER_SAMPLE = 258
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)
_EXIF_ORIENTATION = 0x0112


def read_image(
    path: PathLike,
    *,
    channels: Literal["keep", "rgb", "gray"] = "keep",
    alpha: Literal["refuse", "flatten"] = "refuse",
) -> np.ndarray:
    """Read a PNG (8/16-bit), JPEG or TIFF file as a float32 ``(H, W, C)`` image in ``[0, 1]``.

    Grey, grey+alpha, RGB, RGBA and palette files are accepted; 16-bit samples are scaled by 65535. The image is
    turned as its EXIF orientation says (a phone's portrait photo stands upright, as a viewer shows it); of an
    animated file (GIF, APNG, WebP) the first frame is read, with a warning. A fully opaque alpha channel is dropped;
    any transparency is refused, unless ``alpha="flatten"``, which composites the image onto a white background.
    ``channels`` converts to RGB (grey repeated) or grey (BT.601 luma).
    """
    if channels not in ("keep", "rgb", "gray"):
        raise ConfigError(f"channels must be 'keep', 'rgb' or 'gray', not {channels!r}")
    if alpha not in ("refuse", "flatten"):
        raise ConfigError(f"alpha must be 'refuse' or 'flatten', not {alpha!r}")
    path = Path(path)
    data = _decode(path)
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise ImageError(f"{path}: image has zero size ({data.shape[0]}×{data.shape[1]})")
    image = _remove_alpha(data, path, alpha)
    if channels == "rgb":
        return ensure_channels(image, 3)
    if channels == "gray":
        return ensure_channels(image, 1)
    return image


def _decode(path: Path) -> np.ndarray:
    """Decode ``path`` to float32 ``(H, W, C)`` with C in 1..4 (2 and 4: last channel is straight alpha)."""
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if not path.is_file():
        raise ImageError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with Image.open(path) as im:
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                log.warning("%s: an animation of %d frames; its first frame is used", path, frames)
            tiff_orientation = im.tag_v2.get(_EXIF_ORIENTATION, 1) if im.format == "TIFF" else 1  # loading drops it
            array = _pillow_to_array(im, path, tiff_orientation)
            # a PNG's EXIF after its samples: `getexif` loads the image, and the 16-bit decoding needs it unloaded
            return upright(array, tiff_orientation if im.format == "TIFF" else im.getexif().get(_EXIF_ORIENTATION, 1))
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image, or an unknown format or corrupt header") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: {e}") from None
    except _DECODE_ERRORS as e:
        raise ImageError(f"{path}: truncated or corrupt image data ({e})") from None


def upright(array: np.ndarray, orientation: object) -> np.ndarray:
    """``array`` (H, W, C) turned as EXIF orientation 1-8 says, as `PIL.ImageOps.exif_transpose`; any other value
    leaves it as it is."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }.get(orientation if isinstance(orientation, int) else 1)
    return array if turned is None else np.ascontiguousarray(turned(array))


def _pillow_to_array(im: Image.Image, path: Path, orientation: object) -> np.ndarray:
    """The samples as stored (not yet turned as `orientation` says). A TIFF of more than 8 bits, or one with an
    orientation, is read by tifffile: Pillow reduces some deep ones to 8 bits, and scrambles a grey one that it turns
    itself (Pillow 11-13: the samples decoded into the turned size, then turned)."""
    deep = im.format == "TIFF" and max(im.tag_v2.get(_TIFF_BITS_PER_SAMPLE, (8,))) > 8
    if im.format == "TIFF" and (deep or orientation != 1):
        return _read_tiff(path)
    rawmode = _rawmode(im)
    if im.mode in ("RGB", "RGBA") and ";16" in rawmode:
        if im.format == "PNG" and rawmode in _PNG16_PASSES:
            return _read_png16(path, rawmode)
        raise ImageError(f"{path}: 16-bit colour {im.format} files are not supported")
    im.load()
    if "transparency" in im.info and im.mode in ("1", "L", "P", "RGB"):
        im = im.convert("LA" if im.mode in ("1", "L") else "RGBA")
    conversions = {"1": "L", "P": "RGB", "PA": "RGBA", "La": "LA", "RGBa": "RGBA", "YCbCr": "RGB"}
    if im.mode in conversions:
        im = im.convert(conversions[im.mode])
    if im.mode in ("L", "LA", "RGB", "RGBA"):
        array = np.asarray(im, dtype=np.float32) / 255
    elif im.mode in ("I;16", "I;16B", "I;16L"):
        array = np.asarray(im).astype(np.float32) / 65535
    else:
        raise ImageError(f"{path}: unsupported image mode {im.mode!r} (need grey, RGB, RGBA or palette)")
    return array[..., None] if array.ndim == 2 else array


def _rawmode(im: Image.Image) -> str:
    """The raw sample layout Pillow will decode from (e.g. ``"RGB;16B"``), or "" if unknown."""
    if not im.tile:
        return ""
    args = im.tile[0].args
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _read_png16(path: Path, rawmode: str) -> np.ndarray:
    passes = []
    for pass_rawmode in _PNG16_PASSES[rawmode]:
        with Image.open(path) as im:
            im.tile = [_with_rawmode(tile, pass_rawmode) for tile in im.tile]
            im.load()
            passes.append(np.asarray(im).astype(np.uint16))
    if rawmode == "LA;16B":
        raw = passes[0]
        samples = np.stack([raw[..., 0] * 256 + raw[..., 1], raw[..., 2] * 256 + raw[..., 3]], axis=-1)
    else:
        samples = passes[0] * 256 + passes[1]
    return samples.astype(np.float32) / 65535


def _with_rawmode(tile: tuple, rawmode: str) -> tuple:
    """``tile`` (a named tuple since Pillow 11, a plain one before) decoding ``rawmode`` instead."""
    return tile._replace(args=rawmode) if hasattr(tile, "_replace") else (*tile[:3], rawmode)


def _read_tiff(path: Path) -> np.ndarray:
    """Read an 8- or 16-bit grey or RGB TIFF (optional alpha) with tifffile, its samples as stored."""
    try:
        with tifffile.TiffFile(path) as tif:
            page, series = tif.pages[0], tif.series[0]
            array, axes = series.asarray(), series.axes
    except (KeyError, ValueError, OSError) as e:  # tifffile reports a missing codec as KeyError/ValueError
        raise ImageError(f"{path}: cannot decode this TIFF ({e})") from None
    if axes == "YX":
        array = array[..., None]
    elif axes == "SYX":
        array = np.moveaxis(array, 0, -1)
    elif axes != "YXS":
        raise ImageError(f"{path}: unsupported TIFF layout (axes {axes!r}, shape {array.shape})")
    photometric = {tifffile.PHOTOMETRIC.MINISBLACK: 1, tifffile.PHOTOMETRIC.RGB: 3}.get(page.photometric)
    if array.dtype not in (np.uint8, np.uint16) or photometric is None or array.shape[-1] - photometric not in (0, 1):
        raise ImageError(
            f"{path}: unsupported TIFF ({array.dtype}, {array.shape[-1]} samples, {page.photometric.name})"
        )
    image = array.astype(np.float32) / np.iinfo(array.dtype).max
    if page.extrasamples[:1] == (tifffile.EXTRASAMPLE.ASSOCALPHA,):  # premultiplied -> straight alpha
        color, opacity = image[..., :-1], image[..., -1:]
        image[..., :-1] = np.divide(color, opacity, out=np.zeros_like(color), where=opacity > 0)
    return image


def _remove_alpha(data: np.ndarray, path: Path, alpha: str) -> np.ndarray:
    if data.shape[-1] not in (2, 4):
        return data
    color, opacity = data[..., :-1], data[..., -1:]
    transparent = int(np.count_nonzero(opacity < 1))
    if transparent == 0:
        return np.ascontiguousarray(color)
    if alpha == "refuse":
        raise ImageError(
            f"{path}: {transparent} pixels are (partly) transparent; flatten this file onto a background or remove "
            "its alpha channel (e.g. in an image editor), then use the result"
        )
    return (color * opacity + (1 - opacity)).astype(np.float32)


def ensure_channels(image: np.ndarray, channels: Literal[1, 3]) -> np.ndarray:
    """Return ``image`` with 1 channel (BT.601 luma) or 3 channels (grey repeated)."""
    check_image(image)
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, not {channels!r}")
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    return (image @ _LUMA)[..., None].astype(np.float32)


def write_image(path: PathLike, image: np.ndarray, *, bit_depth: Literal[8, 16] = 8) -> None:
    """Write a ``(H, W, C)`` image as an 8- or 16-bit PNG (C = 1: greyscale), creating parent folders.

    Values are clipped to [0, 1] and rounded to the nearest level; NaN or Inf values are refused.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ImageError(f"{path}: can only write PNG files (use a .png extension)")
    if bit_depth not in (8, 16):
        raise ConfigError(f"bit_depth must be 8 or 16, not {bit_depth!r}")
    check_image(image, path)
    bad = int(np.count_nonzero(~np.isfinite(image)))
    if bad:
        raise ImageError(f"{path}: refusing to write an image with {bad} NaN/Inf values")
    levels = 2**bit_depth - 1
    pixels = np.round(np.clip(image.astype(np.float64), 0, 1) * levels)
    if bit_depth == 16:
        data = _png16_bytes(pixels.astype(np.uint16))
    else:
        levels8 = pixels.astype(np.uint8)
        buffer = BytesIO()
        Image.fromarray(levels8[..., 0] if levels8.shape[-1] == 1 else levels8).save(buffer, format="PNG")
        data = buffer.getvalue()
    write_atomically(path, data)


def _png16_bytes(pixels: np.ndarray) -> bytes:
    """Encode a uint16 ``(H, W, 1|3)`` array as a 16-bit grey or RGB PNG (PNG spec, filter type 0)."""
    height, width, channels = pixels.shape
    rows = pixels.astype(">u2").view(np.uint8).reshape(height, -1)
    scanlines = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 16, 0 if channels == 1 else 2, 0, 0, 0)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file to write `path` through: a new temporary file of a unique name in the same folder, which replaces `path`
    once the body ends without an error (else it is removed). A crash never leaves a partial file at `path`, and a
    reader (another command checking the folder) sees the old file or the whole new one, never a part. An `OSError`
    (a full disk) becomes one `OutputError` naming `path`.

    The file gets the usual permissions (0o666 less the umask), not the 0o600 of `tempfile.mkstemp`.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("xb") as handle:
            yield handle
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path} ({error.strerror or error})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (`atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write(data)


def write_all(files: Mapping[Path, bytes]) -> list[Path]:
    """Write each file (path → bytes) whole or not at all, and all of them or none: each is written to a temporary
    file first, and only once every one is do they replace their paths. A command checking a folder meanwhile (another
    task's `dip render`, `dip.outputs`) sees each file whole or not at all. Returns the paths."""
    with contextlib.ExitStack() as stack:
        for path, data in files.items():
            stack.enter_context(atomic_file(path)).write(data)
    return list(files)


def write_files(folder: Path, files: dict[str, bytes]) -> list[Path]:
    """Write each file (name → bytes) into `folder` (`write_all`). Returns the paths."""
    return write_all({folder / name: data for name, data in files.items()})


def read_mask(path: PathLike, shape_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask file as float32 ``(H, W, 1)``: 1 (known) where its grey level is >= 0.5, else 0.

    A colour mask (channels that differ) or one with grey levels besides black and white is thresholded so, with a
    warning saying how many pixels that decided. ``shape_hw``, if given, is the ``(H, W)`` the mask must have.
    """
    image = read_image(path)
    grey = ensure_channels(image, 1)
    mask = (grey >= 0.5).astype(np.float32)
    coloured = image.shape[-1] == 3 and bool(np.any(image != image[..., :1]))
    between = int(np.count_nonzero((grey > 0) & (grey < 1)))
    if coloured or between:
        what = "a colour mask" if coloured else "a grey mask"
        log.warning(
            "%s: %s with %d pixels neither black nor white; read as known where the grey level is >= 0.5 (%d of them)",
            path,
            what,
            between,
            int(np.count_nonzero((grey > 0) & (grey < 1) & (grey >= 0.5))),
        )
    if shape_hw is not None and mask.shape[:2] != tuple(shape_hw):
        raise ImageError(
            f"{path}: mask is {mask.shape[0]}×{mask.shape[1]} but the image is {shape_hw[0]}×{shape_hw[1]}"
        )
    return mask


def check_mask(mask: np.ndarray, what: object) -> None:
    """Refuse an inpainting mask with no known pixel: the fit and the baselines would have nothing to restore from."""
    if not mask.any():
        raise ImageError(f"{what}: the mask has no known pixel (white = known); nothing to restore from")


def write_mask(path: PathLike, mask: np.ndarray) -> None:
    """Write a ``(H, W, 1)`` mask of 0/1 values as an 8-bit PNG (255 = known)."""
    path = Path(path)
    check_image(mask, path)
    if mask.shape[-1] != 1 or not np.isin(mask, (0, 1)).all():
        raise ImageError(f"{path}: a mask must be (H, W, 1) with values 0 and 1 only")
    write_image(path, mask, bit_depth=8)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """Convert a ``(H, W, C)`` image to a new float32 tensor ``(1, C, H, W)``."""
    import torch

    check_image(image)
    return torch.from_numpy(np.array(image.transpose(2, 0, 1), dtype=np.float32, order="C"))[None]


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Convert a ``(1, C, H, W)`` tensor (any device, grad or not) to a float32 ``(H, W, C)`` array."""
    if tensor.ndim != 4 or tensor.shape[0] != 1:
        raise ValueError(f"expected a tensor of shape (1, C, H, W), got {tuple(tensor.shape)}")
    import torch

    array = tensor.detach().to("cpu", torch.float32).numpy()[0]
    return np.ascontiguousarray(array.transpose(1, 2, 0))


def center_crop(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Crop the centre ``height × width`` of ``image``; return the crop (a view) and ``(top, left, height, width)``.

    Odd margins leave the extra pixel at the bottom/right, as the authors' ``crop_image``.
    """
    check_image(image)
    h, w = image.shape[:2]
    if not (1 <= height <= h and 1 <= width <= w):
        raise ImageError(f"cannot crop a {h}×{w} image to {height}×{width}")
    top, left = (h - height) // 2, (w - width) // 2
    return image[top : top + height, left : left + width], (top, left, height, width)


def shrink(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` scaled down (anti-aliased, as `skimage.transform.resize`) so that its shorter side is ``side``; as it
    is when that side is ``side`` or less."""
    from skimage.transform import resize

    check_image(image)
    h, w = image.shape[:2]
    if min(h, w) <= side:
        return image
    scale = side / min(h, w)
    shape = (max(side, round(h * scale)), max(side, round(w * scale)), image.shape[2])
    return np.clip(resize(image, shape, anti_aliasing=True), 0, 1).astype(np.float32)


def crop_to_multiple(image: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Centre-crop ``image`` so both sides divide by ``multiple``; return it and ``(top, left, h, w)``."""
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ConfigError(f"multiple must be a positive integer, not {multiple!r}")
    check_image(image)
    h, w = image.shape[:2]
    if h < multiple or w < multiple:
        raise ImageError(f"image is {h}×{w} but the net needs both sides ≥ {multiple} and divisible by {multiple}")
    return center_crop(image, h - h % multiple, w - w % multiple)


def check_image(image: np.ndarray, what: str | Path = "image") -> None:
    """Refuse anything but a float (H, W, C) array with C in (1, 3); `what` names it in the error."""
    if (
        not isinstance(image, np.ndarray)
        or not np.issubdtype(image.dtype, np.floating)
        or image.ndim != 3
        or image.shape[-1] not in (1, 3)
    ):
        found = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ImageError(f"{what}: expected a float (H, W, C) array with C = 1 or 3, got {found}")
