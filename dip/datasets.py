"""Dataset registry: scikit-image samples (offline), any local folder, public sets by URL + SHA-256 (pooch).

Image names are file names without extension (for a remote set with sub-folders, ``folder-stem``, e.g.
``inpainting-kate``). Downloads and exported samples are cached under ``$DIP_DATA_DIR``, else the user cache
folder ``dip-bench`` (``~/.cache/dip-bench`` on Linux). ``$DIP_DATA_MIRROR`` replaces the public URLs by
``$DIP_DATA_MIRROR/<dataset>/<file>`` (a local mirror, or a test server).
"""

from __future__ import annotations

import csv
import json
import os
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pooch
import requests
import skimage.data

from dip.errors import ConfigError, DipError, ImageError
from dip.io import read_image, write_atomically, write_image

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
class RemoteArchive:
    """A zip of a remote dataset: its URL, SHA-256, size in bytes and the folder inside it that holds the images."""

    file: str
    url: str
    sha256: str
    size: int
    folder: str


@dataclass(frozen=True)
class Dataset:
    """A set of images: `embedded` (scikit-image samples), `folder` (a local directory), `remote` (one URL per image)
    or `archive` (one zip; its image names are known once it is fetched)."""

    name: str
    kind: Literal["embedded", "folder", "remote", "archive"]
    description: str
    source: str
    samples: tuple[str, ...] = ()
    root: Path | None = None
    files: tuple[RemoteFile, ...] = ()
    archive: RemoteArchive | None = None


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
        Dataset(
            "set14",
            "archive",
            "Set14 (Zeyde et al., Curves and Surfaces 2012): the 14 HR images of the super-resolution benchmark",
            "no licence stated by the authors; the zip released with HedgehogCode/tensorflow-datasets-bw 0.0.1rc, "
            "SHA-256 from that project's TFDS checksums",
            archive=RemoteArchive(
                "Set14.zip",
                "https://github.com/HedgehogCode/tensorflow-datasets-bw/releases/download/0.0.1rc/Set14.zip",
                "069b4c21d6477281a89710a1b4c740a56859a05207a7c2fb0f7d2a1655bb79ce",
                5096261,
                "Set14",
            ),
        ),
        Dataset(
            "kodak24",
            "remote",
            "Kodak Lossless True Color Image Suite: 24 photographs, 768×512 (denoising benchmark)",
            "released by the Eastman Kodak Company for unrestricted usage (as stated by the distributor, "
            "r0k.us/graphics/kodak, R. Franzen); SHA-256 as published by three independent projects",
            files=_manifest("kodak24.tsv"),
        ),
        Dataset(
            "cbsd68",
            "archive",
            "CBSD68: the 68 colour test images of the Berkeley Segmentation Dataset (Martin et al., ICCV 2001)",
            "BSDS terms (research use); the lossless PNGs of github.com/clausmichele/CBSD68-dataset at a fixed "
            "commit (GitHub builds that zip on request: if GitHub changes its archiver the SHA-256 check fails and "
            "nothing is kept)",
            archive=RemoteArchive(
                "CBSD68-dataset-51a07a9.zip",
                "https://github.com/clausmichele/CBSD68-dataset/archive/51a07a95884ac7c8bdd5d1614f9da781adc3c4a0.zip",
                "6bc0eda995936a1a3f8e9cdd582566aebf31ce943ea20d031961e59ca4f6df76",
                190175417,
                "CBSD68-dataset-51a07a95884ac7c8bdd5d1614f9da781adc3c4a0/CBSD68/original_png",
            ),
        ),
    )
}
FOLDER_ONLY = {
    "mcmaster": "McMaster (McM, Zhang et al., J. Electronic Imaging 2011): 18 images of 500×500; no checksum of its "
    "zip is published, so it is not fetched: download McM.zip from "
    "https://www4.comp.polyu.edu.hk/~cslzhang/CDM_Dataset.htm, unzip it and use the folder as the dataset",
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
    if name in FOLDER_ONLY:
        raise ConfigError(f"dataset {name!r} is used as a local folder: {FOLDER_ONLY[name]}")
    raise ConfigError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}, or the path of a folder of images")


SOURCES_FILE = "sources.json"
"""Beside exported images: which file each one copies."""


def cache_dir() -> Path:
    """Where downloads and exported samples are kept: `$DIP_DATA_DIR`, else the user cache `dip-bench`."""
    env = os.environ.get("DIP_DATA_DIR")
    return Path(env).expanduser() if env else Path(pooch.os_cache("dip-bench"))


def _resolve(dataset: Dataset | str) -> Dataset:
    return get_dataset(dataset) if isinstance(dataset, str) else dataset


def _folder_files(dataset: Dataset) -> dict[str, Path]:
    """The images of a folder dataset by name; a ConfigError for a name with a control character (a newline, a tab),
    which no log line or table can show as it is. Any other character is data (the workflow quotes every name)."""
    assert dataset.root is not None
    files: dict[str, Path] = {}
    for path in sorted(dataset.root.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            if any(unicodedata.category(character) == "Cc" for character in path.name):
                raise ConfigError(
                    f"dataset folder {dataset.root}: image {path.name!r} has a control character in its name "
                    "(a newline, a tab, …): rename the file"
                )
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
    if dataset.kind == "archive":
        return sorted(_archive_files(dataset))
    return sorted(f.name for f in dataset.files)


def offline_problem(dataset: Dataset | str, names: list[str] | None = None) -> str | None:
    """Why the images `names` (default all) of `dataset` cannot be had without network, or None when they can: an
    embedded set, an existing folder, or a download already in the cache."""
    named = isinstance(dataset, str) and (dataset in DATASETS or dataset in FOLDER_ONLY)
    if isinstance(dataset, str) and not named and not Path(dataset).expanduser().is_dir():
        return f"no folder {dataset} on this machine"
    try:
        dataset = _resolve(dataset)
    except ConfigError as error:
        return str(error)
    fetch_it = f"`dip datasets fetch {dataset.name}` fetches it"
    if dataset.kind == "archive" and not _archive_root(dataset).is_dir():
        return f"not downloaded yet ({fetch_it})"
    if dataset.kind == "remote":
        missing = [f.name for f in dataset.files if (names is None or f.name in names) and not _cached(dataset, f)]
        if missing:
            return f"{len(missing)} image(s) not downloaded yet ({fetch_it})"
    return None


def _cached(dataset: Dataset, file: RemoteFile) -> bool:
    return (cache_dir() / dataset.name / file.file).is_file()


def _archive_root(dataset: Dataset) -> Path:
    assert dataset.archive is not None
    return cache_dir() / dataset.name / "extracted" / dataset.archive.folder


def _archive_files(dataset: Dataset) -> dict[str, Path]:
    """The images of a fetched archive; a ConfigError naming the fetch command when it is not fetched yet."""
    root = _archive_root(dataset)
    if not root.is_dir():
        raise ConfigError(
            f"dataset {dataset.name!r} is a zip whose image names are known once it is downloaded: run "
            f"`dip datasets fetch {dataset.name}` (needs network, or DIP_DATA_MIRROR), or list the images in the config"
        )
    return _folder_files(Dataset(dataset.name, "folder", "", "", root=root))


def _check_name(dataset: Dataset, image_name: str, names: list[str] | None = None) -> None:
    """A ConfigError listing the dataset's images unless `image_name` is one (`names`: the listing, if at hand)."""
    names = list_images(dataset) if names is None else names
    if image_name not in names:
        raise ConfigError(f"dataset {dataset.name!r} has no image {image_name!r}; its images: {', '.join(names)}")


def image_path(dataset: Dataset | str, image_name: str) -> Path:
    """A local file of the image: the folder's file, the verified download, or the sample exported to PNG."""
    dataset = _resolve(dataset)
    _check_name(dataset, image_name)
    if dataset.kind == "folder":
        return _folder_files(dataset)[image_name]
    if dataset.kind in ("remote", "archive"):
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
    if dataset.kind == "archive":
        return _fetch_archive(dataset, names, retries=retries, progressbar=progressbar)
    if dataset.kind != "remote":
        raise ConfigError(f"dataset {dataset.name!r} is {dataset.kind}, there is nothing to download")
    for name in names or []:
        _check_name(dataset, name)
    wanted = [f for f in dataset.files if names is None or f.name in names]
    store, urls = _store(dataset, {f.file: (f.url, f.sha256) for f in wanted}, retries)
    paths = {}
    for f in wanted:
        with _download_errors(dataset, urls[f.file], f.sha256):
            paths[f.name] = Path(store.fetch(f.file, progressbar=progressbar))
    return paths


def _store(dataset: Dataset, files: dict[str, tuple[str, str]], retries: int) -> tuple[pooch.Pooch, dict[str, str]]:
    """A pooch store in the dataset's cache folder for `files` (file → (public URL, SHA-256)), and the URL each is
    fetched from: the public one, or `$DIP_DATA_MIRROR/<dataset>/<file>`."""
    mirror = os.environ.get("DIP_DATA_MIRROR", "").rstrip("/")
    urls = {file: f"{mirror}/{dataset.name}/{file}" if mirror else url for file, (url, _) in files.items()}
    store = pooch.create(
        path=cache_dir() / dataset.name,
        base_url="",
        registry={file: f"sha256:{sha256}" for file, (_, sha256) in files.items()},
        urls=urls,
        retry_if_failed=retries,
    )
    return store, urls


def _fetch_archive(dataset: Dataset, names: list[str] | None, *, retries: int, progressbar: bool) -> dict[str, Path]:
    """Download, verify and unzip an archive dataset (once); name → local path of the wanted images."""
    archive = dataset.archive
    assert archive is not None
    if not _archive_root(dataset).is_dir():
        store, urls = _store(dataset, {archive.file: (archive.url, archive.sha256)}, retries)
        with _download_errors(dataset, urls[archive.file], archive.sha256):
            store.fetch(archive.file, progressbar=progressbar, processor=pooch.Unzip(extract_dir="extracted"))
    files = _archive_files(dataset)
    for name in names or []:
        _check_name(dataset, name, sorted(files))
    return {name: path for name, path in files.items() if names is None or name in names}


@contextmanager
def _download_errors(dataset: Dataset, url: str, sha256: str) -> Iterator[None]:
    """Turn pooch's hash mismatch and requests' network errors into clear one-line errors."""
    try:
        yield
    except ValueError as e:
        if "hash" not in str(e).lower():
            raise
        raise ImageError(
            f"dataset {dataset.name!r}: {url} does not match its SHA-256 {sha256} (a changed or corrupted file); "
            "it was not kept"
        ) from None
    except requests.RequestException as e:
        raise DipError(
            f"dataset {dataset.name!r} could not be downloaded: {url}: {e}. Without network, put the images in a "
            "folder and pass that folder as the dataset (any folder of images is a dataset), or set "
            "DIP_DATA_MIRROR to a mirror"
        ) from None


def record_sources(folder: Path, sources: dict[str, str], earlier: Path) -> None:
    """Record in FOLDER/sources.json which file each exported image copies, so that messages name the user's file,
    with those of the export at `earlier` that the new one adds to."""
    path = earlier / SOURCES_FILE
    known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    write_atomically(
        folder / SOURCES_FILE, (json.dumps({**known, **sources}, indent=2, sort_keys=True) + "\n").encode()
    )


def exported_source(image: Path) -> str:
    """The user's file that `image` was exported from (OUT/sources.json), or `image` itself."""
    path = image.parent / SOURCES_FILE
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))[image.name])
    except (OSError, ValueError, KeyError, TypeError):
        return str(image)
