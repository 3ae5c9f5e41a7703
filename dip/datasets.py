"""Dataset registry: scikit-image samples (offline), any local folder, public sets by URL + SHA-256 (pooch).

Image names are file names without extension (for a remote set with sub-folders, ``folder-stem``, e.g.
``inpainting-kate``). Downloads and exported samples are cached under ``$DIP_DATA_DIR``, else the user cache
folder ``dip-bench`` (``~/.cache/dip-bench`` on Linux). ``$DIP_DATA_MIRROR`` replaces the public URLs by
``$DIP_DATA_MIRROR/<dataset>/<file>`` (a local mirror, or a test server).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pooch
import requests
import skimage.data

from dip.errors import ConfigError, DipError, ImageError
from dip.io import read_image, write_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DOWNLOAD_RETRIES = 2


@dataclass(frozen=True)
class RemoteFile:
    """One file of a remote dataset: its path in the set, public URL, SHA-256, size in bytes and pixels."""

    file: str
    url: str
    sha256: str
    size: int
    width: int
    height: int

    @property
    def name(self) -> str:
        """The image name: the path without extension, sub-folders joined by '-'."""
        return str(Path(self.file).with_suffix("")).replace("/", "-")


@dataclass(frozen=True)
class Dataset:
    """A set of images: `embedded` (scikit-image samples), `folder` (a local directory) or `remote` (URLs)."""

    name: str
    kind: Literal["embedded", "folder", "remote"]
    description: str
    source: str
    samples: tuple[str, ...] = ()
    root: Path | None = None
    files: tuple[RemoteFile, ...] = ()


def _manifest(filename: str) -> tuple[RemoteFile, ...]:
    text = resources.files("dip").joinpath("data", filename).read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines(), delimiter="\t")
    return tuple(
        RemoteFile(r["file"], r["url"], r["sha256"], int(r["bytes"]), int(r["width"]), int(r["height"])) for r in rows
    )


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "skimage-samples",
            "embedded",
            "colour photographs bundled with scikit-image (offline)",
            "scikit-image sample data: public domain (astronaut, rocket, immunohistochemistry) or CC0 (coffee, "
            "chelsea), see skimage.data",
            samples=("astronaut", "chelsea", "coffee", "immunohistochemistry", "rocket"),
        ),
        Dataset(
            "skimage-gray",
            "embedded",
            "grey-level images bundled with scikit-image (offline)",
            "scikit-image sample data: CC0 (camera by Lav Varshney; brick from CC0Textures), see skimage.data",
            samples=("brick", "camera"),
        ),
        Dataset(
            "set5",
            "remote",
            "Set5 (Bevilacqua et al., BMVC 2012): the 5 HR images of the super-resolution benchmark",
            "no licence stated by the authors; redistributed for research in many SR repositories; fetched from "
            "github.com/majedelhelou/denoising_datasets at a fixed commit",
            files=_manifest("set5.tsv"),
        ),
        Dataset(
            "dip-paper",
            "remote",
            "the images shipped with the Deep Image Prior code (F16, kate + masks, vase, library, zebra, ...)",
            "github.com/DmitryUlyanov/deep-image-prior (Apache-2.0 repository; the images' own licences are not "
            "stated) at a fixed commit",
            files=_manifest("dip-paper.tsv"),
        ),
    )
}


def folder_dataset(path: str | os.PathLike[str]) -> Dataset:
    """A dataset of the images (png/jpg/jpeg/tif/tiff/bmp) directly inside the folder `path`."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"dataset folder {path}: no such directory")
    return Dataset(root.name, "folder", f"images in {root}", f"local folder {root}", root=root)


def get_dataset(name: str) -> Dataset:
    """The registered dataset `name`, else the folder dataset at path `name` if it is a directory."""
    if name in DATASETS:
        return DATASETS[name]
    if Path(name).expanduser().is_dir():
        return folder_dataset(name)
    raise ConfigError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}, or the path of a folder of images")


def cache_dir() -> Path:
    """Where downloads and exported samples are kept: `$DIP_DATA_DIR`, else the user cache `dip-bench`."""
    env = os.environ.get("DIP_DATA_DIR")
    return Path(env).expanduser() if env else Path(pooch.os_cache("dip-bench"))


def _resolve(dataset: Dataset | str) -> Dataset:
    return get_dataset(dataset) if isinstance(dataset, str) else dataset


def _folder_files(dataset: Dataset) -> dict[str, Path]:
    assert dataset.root is not None
    files: dict[str, Path] = {}
    for path in sorted(dataset.root.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            if path.stem in files:
                raise ConfigError(f"dataset folder {dataset.root}: two images named {path.stem!r} ({path.name})")
            files[path.stem] = path
    if not files:
        raise ConfigError(f"dataset folder {dataset.root}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def list_images(dataset: Dataset | str) -> list[str]:
    """The sorted image names of `dataset`."""
    dataset = _resolve(dataset)
    if dataset.kind == "embedded":
        return sorted(dataset.samples)
    if dataset.kind == "folder":
        return sorted(_folder_files(dataset))
    return sorted(f.name for f in dataset.files)


def _check_name(dataset: Dataset, image_name: str) -> None:
    names = list_images(dataset)
    if image_name not in names:
        raise ConfigError(f"dataset {dataset.name!r} has no image {image_name!r}; its images: {', '.join(names)}")


def image_path(dataset: Dataset | str, image_name: str) -> Path:
    """A local file of the image: the folder's file, the verified download, or the sample exported to PNG."""
    dataset = _resolve(dataset)
    _check_name(dataset, image_name)
    if dataset.kind == "folder":
        return _folder_files(dataset)[image_name]
    if dataset.kind == "remote":
        return fetch(dataset, [image_name])[image_name]
    path = cache_dir() / dataset.name / f"{image_name}.png"
    if not path.exists():
        write_image(path, _sample(image_name))
    return path


def _sample(name: str) -> np.ndarray:
    sample = np.asarray(getattr(skimage.data, name)())
    return (sample[..., None] if sample.ndim == 2 else sample).astype(np.float32) / 255


def load(dataset: Dataset | str, image_name: str) -> np.ndarray:
    """The image as float32 (H, W, C) in [0, 1] (see `dip.io.read_image`); samples come straight from memory."""
    dataset = _resolve(dataset)
    if dataset.kind == "embedded":
        _check_name(dataset, image_name)
        return _sample(image_name)
    return read_image(image_path(dataset, image_name))


def fetch(
    dataset: Dataset | str,
    names: list[str] | None = None,
    *,
    retries: int = DOWNLOAD_RETRIES,
    progressbar: bool = False,
) -> dict[str, Path]:
    """Download (or find in the cache) and verify by SHA-256 the files of a remote dataset; name → local path."""
    dataset = _resolve(dataset)
    if dataset.kind != "remote":
        raise ConfigError(f"dataset {dataset.name!r} is {dataset.kind}, there is nothing to download")
    for name in names or []:
        _check_name(dataset, name)
    wanted = [f for f in dataset.files if names is None or f.name in names]
    mirror = os.environ.get("DIP_DATA_MIRROR", "").rstrip("/")
    urls = {f.file: f"{mirror}/{dataset.name}/{f.file}" if mirror else f.url for f in wanted}
    store = pooch.create(
        path=cache_dir() / dataset.name,
        base_url="",
        registry={f.file: f"sha256:{f.sha256}" for f in wanted},
        urls=urls,
        retry_if_failed=retries,
    )
    paths = {}
    for f in wanted:
        try:
            paths[f.name] = Path(store.fetch(f.file, progressbar=progressbar))
        except ValueError as e:
            if "hash" not in str(e).lower():
                raise
            raise ImageError(
                f"dataset {dataset.name!r}: {urls[f.file]} does not match its SHA-256 {f.sha256} (a changed or "
                "corrupted file); it was not kept"
            ) from None
        except requests.RequestException as e:
            raise DipError(
                f"dataset {dataset.name!r} could not be downloaded: {urls[f.file]}: {e}. Without network, put the "
                "images in a folder and pass that folder as the dataset (any folder of images is a dataset), or "
                "set DIP_DATA_MIRROR to a mirror"
            ) from None
    return paths
