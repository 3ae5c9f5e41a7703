"""Frames of a fit: snapshots of the net's output along the fit, at geometrically spaced iterations (DIP changes most
in its first iterations), downsized to at most `side` pixels and kept as 8 bits; written as one sprite sheet.

A run directory holds them as ``frames.webp`` (WebP of quality 90, the frames in rows of `columns`, left to right:
compact and made for watching, not for measuring) and ``frames.json`` (their iterations and exact PSNRs, the sprite's
layout). Capturing a frame copies the detached output to the CPU: it draws no random number and changes no number of
the fit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dip.errors import ConfigError, ImageError
from dip.layout import FRAMES_INDEX, FRAMES_SPRITE

FORMAT = "dip-frames/1"
QUALITY = 90
"""WebP quality of the sprite: ~7× smaller than lossless, with no visible loss."""
OUTPUT = "the net's output at the iteration (its input z with that iteration's noise), before any averaging"
MAX_SPRITE_SIDE = 16383
"""The largest width or height of a WebP image."""


def frame_iterations(iterations: int, count: int) -> list[int]:
    """`count` distinct iterations of 0 … iterations − 1, first and last included, geometrically spaced in
    iteration + c with c = 1 % of the iterations (at least 1): dense where the output changes fast, early on."""
    if count <= 0:
        return []
    if count >= iterations:
        return list(range(iterations))
    if count == 1:
        return [iterations - 1]
    offset = max(1.0, iterations / 100)
    ratio = (iterations - 1) / offset + 1
    chosen: list[int] = []
    for index in range(count):
        target = round(offset * ratio ** (index / (count - 1)) - offset)
        # distinct, and leaving room for the frames still to come
        chosen.append(min(max(target, chosen[-1] + 1 if chosen else 0), iterations - count + index))
    return chosen


def sprite_layout(count: int, height: int, width: int) -> tuple[int, int]:
    """(columns, rows) of a near-square sprite of `count` frames of `height` × `width` within the WebP limits."""
    columns = max(1, min(math.ceil(math.sqrt(count)), MAX_SPRITE_SIDE // width))
    rows = math.ceil(count / columns)
    if rows * height > MAX_SPRITE_SIDE:
        raise ConfigError(
            f"{count} frames of {height}×{width} px do not fit in one sprite of at most {MAX_SPRITE_SIDE} px a side: "
            "save fewer frames or smaller ones (--frames, --frame-side)"
        )
    return columns, rows


def check_frames(count: int, side: int) -> None:
    """Refuse a frame count or side that cannot be saved (a ConfigError naming the setting)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(f"frames must be an integer ≥ 0, not {count!r}")
    if isinstance(side, bool) or not isinstance(side, int) or side < 8:
        raise ConfigError(f"frame_side must be an integer ≥ 8, not {side!r}")
    if count:
        sprite_layout(count, side, side)


def frame_size(height: int, width: int, side: int) -> tuple[int, int]:
    """(height, width) of an image shrunk, keeping its aspect, to at most `side` on its longer side."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass
class Frame:
    """One snapshot: the iteration, its PSNR to the observation and to the ground truth (NaN without), the pixels."""

    iteration: int
    psnr_obs: float
    psnr_gt: float
    pixels: torch.Tensor
    """uint8 (C, H, W) on the CPU."""


class FrameRecorder:
    """Takes the frames of one fit at the scheduled iterations (or, after a skipped one, at the next iteration)."""

    def __init__(self, iterations: int, count: int, side: int) -> None:
        self.schedule = frame_iterations(iterations, count)
        self.side = side
        self.frames: list[Frame] = []
        self._next = 0

    def due(self, iteration: int) -> bool:
        """Whether a frame is to be taken at `iteration`."""
        return self._next < len(self.schedule) and self.schedule[self._next] <= iteration

    def has(self, iteration: int) -> bool:
        """Whether the last frame taken is of `iteration`."""
        return bool(self.frames) and self.frames[-1].iteration == iteration

    def capture(self, iteration: int, output: torch.Tensor, psnr_obs: float, psnr_gt: float) -> None:
        """Keep the (1, C, H, W) output of `iteration`, shrunk (area average) and rounded to 8 bits, on the CPU."""
        with torch.no_grad():
            image = output.detach().float().clamp(0, 1)
            size = frame_size(image.shape[-2], image.shape[-1], self.side)
            if size != tuple(image.shape[-2:]):
                image = torch.nn.functional.interpolate(image, size=size, mode="area")
            pixels = image[0].mul(255).round().to(torch.uint8).cpu().contiguous()
        self.frames.append(Frame(iteration, psnr_obs, psnr_gt, pixels))
        while self.due(iteration):
            self._next += 1

    def state_dict(self) -> list[dict[str, Any]]:
        """The frames taken so far, for a checkpoint."""
        return [vars(frame).copy() for frame in self.frames]

    def load_state_dict(self, state: list[dict[str, Any]]) -> None:
        """Resume with the frames of a checkpoint."""
        self.frames = [Frame(**{**item, "pixels": item["pixels"].cpu()}) for item in state]
        self._next = 0
        if self.frames:
            while self.due(self.frames[-1].iteration):
                self._next += 1


def write_frames(directory: Path, frames: list[Frame], image_shape: tuple[int, int]) -> list[Path]:
    """Write DIRECTORY/frames.webp and frames.json; `image_shape` is the restored image's (H, W). Nothing if none."""
    if not frames:
        return []
    channels, height, width = frames[0].pixels.shape
    columns, rows = sprite_layout(len(frames), height, width)
    sheet = np.zeros((rows * height, columns * width, channels), dtype=np.uint8)
    for index, frame in enumerate(frames):
        top, left = (index // columns) * height, (index % columns) * width
        sheet[top : top + height, left : left + width] = frame.pixels.permute(1, 2, 0).numpy()
    picture = Image.fromarray(sheet[..., 0] if channels == 1 else sheet).convert("RGB")
    directory.mkdir(parents=True, exist_ok=True)
    sprite = directory / FRAMES_SPRITE
    picture.save(sprite, format="WEBP", quality=QUALITY, method=4)
    index = {
        "format": FORMAT,
        "sprite": FRAMES_SPRITE,
        "columns": columns,
        "rows": rows,
        "frame_height": height,
        "frame_width": width,
        "channels": channels,
        "image_height": image_shape[0],
        "image_width": image_shape[1],
        "output": OUTPUT,
        "frames": [
            {"iteration": f.iteration, "psnr_obs": _finite(f.psnr_obs), "psnr_gt": _finite(f.psnr_gt)} for f in frames
        ],
    }
    (directory / FRAMES_INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return [sprite, directory / FRAMES_INDEX]


def _finite(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def read_frames(directory: Path) -> tuple[dict[str, Any], list[np.ndarray]] | None:
    """The index and the uint8 (H, W, 3) frames (as decoded from the sprite) of a run directory; None without."""
    path = Path(directory) / FRAMES_INDEX
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text())
        with Image.open(Path(directory) / index["sprite"]) as picture:
            sheet = np.asarray(picture.convert("RGB"))
        height, width, columns = index["frame_height"], index["frame_width"], index["columns"]
        frames = [
            sheet[
                (i // columns) * height : (i // columns + 1) * height, (i % columns) * width : (i % columns + 1) * width
            ]
            for i in range(len(index["frames"]))
        ]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ImageError(f"{directory}: unreadable frames ({error})") from None
    return index, frames
