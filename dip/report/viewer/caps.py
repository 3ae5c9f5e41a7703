"""The size caps and file names of a results viewer (light: `dip viewer --help` shows the caps' defaults, and
`dip.outputs` knows a viewer's folder, without importing torch or pandas)."""

from __future__ import annotations

from dataclasses import dataclass

from dip.errors import ConfigError

PAGE_FILES = ("index.html", "viewer.js", "viewer.css")
DATA_FILE = "viewer-data.js"
ASSETS = "assets"
"""A viewer folder's page (package data, `page/`), its data script and its folder of images."""


@dataclass(frozen=True)
class ViewerCaps:
    """Size caps of a viewer: the side of its images and frames, the number of frames per run."""

    image_side: int = 512
    frame_side: int = 256
    max_frames: int = 40

    def __post_init__(self) -> None:
        for key, least in (("image_side", 16), ("frame_side", 16), ("max_frames", 2)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{key} must be an integer ≥ {least}, not {value!r}")
