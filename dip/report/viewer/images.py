"""The viewer's image files: results copied as 8-bit PNG (shrunk to a cap), and each run's frames as one WebP sprite
with at most a capped number of frames of a capped size."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from PIL import Image

from dip.frames import frame_size, read_frames, sprite_layout
from dip.io import read_image, write_image
from dip.resampling import pil_resize

FRAME_QUALITY = 85
"""WebP quality of the frames that the viewer thins out or shrinks (they are watched, not zoomed)."""


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(height, width) times `scale`, at least 1 pixel each."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def copy_image(source: Path, target: Path, scale: float) -> tuple[int, int]:
    """Write `source` as an 8-bit PNG at `target`, resized by `scale` (Lanczos) unless it is 1; returns (H, W)."""
    image = read_image(source)
    size = scaled_size(image.shape[0], image.shape[1], scale)
    if size != image.shape[:2]:
        image = pil_resize(image, size, "lanczos")
    write_image(target, image)
    return size


def pick(count: int, most: int) -> list[int]:
    """At most `most` of the indices 0 … count − 1, evenly spread, first and last included."""
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def write_frame_sprite(run_dir: Path, target: Path, side: int, most: int) -> dict[str, Any] | None:
    """The run's frames (at most `most`, at most `side` px) as a WebP sprite at `target`, and what the page needs
    to show them; None when the run saved no frames."""
    read = read_frames(run_dir)
    if read is None:
        return None
    index, frames = read
    chosen = pick(len(frames), most)
    height, width = frame_size(index["frame_height"], index["frame_width"], side)
    target.parent.mkdir(parents=True, exist_ok=True)
    if len(chosen) == len(frames) and (height, width) == (index["frame_height"], index["frame_width"]):
        shutil.copyfile(run_dir / index["sprite"], target)  # within the caps: the run's own sprite, not re-encoded
        columns = index["columns"]
    else:
        columns, rows = sprite_layout(len(chosen), height, width)
        sheet = Image.new("RGB", (columns * width, rows * height))
        for position, frame_index in enumerate(chosen):
            frame = Image.fromarray(frames[frame_index])
            if frame.size != (width, height):
                frame = frame.resize((width, height), Image.Resampling.LANCZOS)
            sheet.paste(frame, ((position % columns) * width, (position // columns) * height))
        sheet.save(target, format="WEBP", quality=FRAME_QUALITY, method=4)
    described = [index["frames"][i] for i in chosen]
    return {
        "columns": columns,
        "width": width,
        "height": height,
        "iterations": [item["iteration"] for item in described],
        "psnr_obs": [_rounded(item.get("psnr_obs")) for item in described],
        "psnr_gt": [_rounded(item.get("psnr_gt")) for item in described],
        "output": index.get("output", ""),
    }


def _rounded(value: Any) -> float | None:
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), 3)


def image_shape(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header."""
    with Image.open(path) as image:
        return image.height, image.width
