"""Tests of dip.datasets: embedded samples offline, local folders, and remote sets against a local HTTP server."""

import contextlib
import csv
import hashlib
import socket
import sys
import threading
import time
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from dip import datasets
from dip.datasets import (
    DATASETS,
    Dataset,
    RemoteArchive,
    fetch,
    folder_dataset,
    get_dataset,
    image_path,
    list_images,
    load,
)
from dip.errors import ConfigError, DipError, ImageError
from dip.io import read_image

SET5_NAMES = ["baby", "bird", "butterfly", "head", "woman"]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test may reach the network: only 127.0.0.1 connections are allowed; the cache is a fresh folder."""
    local = ("127.0.0.1", "localhost")
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in local:
            raise OSError(f"test tried to reach the network: {address}")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in local:
            raise socket.gaierror(f"test tried to resolve {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("DIP_DATA_MIRROR", raising=False)
    monkeypatch.setenv("DIP_DATA_DIR", str(tmp_path / "cache"))


@contextlib.contextmanager
def serve(directory: Path):
    """An HTTP server on 127.0.0.1 (free port) serving `directory`; yields its URL and the list of paths it served."""
    hits: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- registry -------------------------------------------------------------------------------------------------


def test_registry_kinds_and_notes():
    assert {"skimage-samples", "skimage-gray", "set5", "dip-paper"} <= set(DATASETS)
    for dataset in DATASETS.values():
        assert dataset.kind in ("embedded", "remote", "archive")
        assert dataset.description and dataset.source
        assert (dataset.kind == "archive") == (dataset.archive is not None)
    assert get_dataset("set5") is DATASETS["set5"]
    assert {"set14", "kodak24", "cbsd68"} <= set(DATASETS)


def test_kodak24_manifest():
    files = DATASETS["kodak24"].files
    assert [f.name for f in files] == [f"kodim{i:02d}" for i in range(1, 25)]
    assert all(f.url == f"https://r0k.us/graphics/kodak/kodak/{f.file}" and len(f.sha256) == 64 for f in files)
    assert len({f.sha256 for f in files}) == 24


def test_folder_only_dataset_explains_how_to_get_it():
    with pytest.raises(ConfigError, match=r"'mcmaster'.*no checksum.*McM\.zip.*folder"):
        get_dataset("mcmaster")


# --- archive --------------------------------------------------------------------------------------------------


def archive_of_set5(monkeypatch, set5_dir: Path, root: Path, *, corrupt: bool = False) -> Path:
    """A mirror folder with `toy/set5.zip` (Set5 under `set5/`) and a registry entry `toy` for it."""
    mirror = root / "mirror" / "toy"
    mirror.mkdir(parents=True)
    zip_path = mirror / "set5.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name in SET5_NAMES:
            archive.write(set5_dir / f"{name}.png", f"set5/{name}.png")
    digest = sha256(zip_path)
    if corrupt:
        zip_path.write_bytes(zip_path.read_bytes()[:-100])
    toy = Dataset("toy", "archive", "Set5 as a zip", "test", archive=RemoteArchive("set5.zip", "", digest, 0, "set5"))
    monkeypatch.setitem(DATASETS, "toy", toy)
    return mirror.parent


def test_archive_is_verified_unzipped_once_and_listed(monkeypatch, set5_dir, tmp_path):
    mirror = archive_of_set5(monkeypatch, set5_dir, tmp_path)
    with pytest.raises(ConfigError, match=r"known once it is downloaded.*dip datasets fetch toy"):
        list_images("toy")
    with serve(mirror) as (url, hits):
        monkeypatch.setenv("DIP_DATA_MIRROR", url)
        paths = fetch("toy", ["bird"], retries=0)
        assert list(paths) == ["bird"] and sha256(paths["bird"]) == sha256(set5_dir / "bird.png")
        assert list_images("toy") == SET5_NAMES
        np.testing.assert_array_equal(load("toy", "head"), read_image(set5_dir / "head.png"))
        assert hits == ["/toy/set5.zip"]


def test_archive_with_a_bad_checksum_is_not_kept(monkeypatch, set5_dir, tmp_path):
    with serve(archive_of_set5(monkeypatch, set5_dir, tmp_path, corrupt=True)) as (url, _):
        monkeypatch.setenv("DIP_DATA_MIRROR", url)
        with pytest.raises(ImageError, match=r"toy.*set5\.zip.*SHA-256"):
            fetch("toy", retries=0)
    assert not (tmp_path / "cache" / "toy" / "set5.zip").exists()
    assert not (tmp_path / "cache" / "toy" / "extracted").exists()


def test_unknown_dataset_lists_the_names():
    with pytest.raises(ConfigError, match=r"'nope'.*skimage-samples.*set5"):
        get_dataset("nope")


def test_unknown_image_lists_the_images():
    with pytest.raises(ConfigError, match=r"'lena'.*astronaut, chelsea"):
        image_path("skimage-samples", "lena")


def test_set5_manifest_urls_point_at_the_pinned_commit():
    commit = "58234876fef6f1b56306705c78dfd40cdb837b86"
    files = DATASETS["set5"].files
    assert [f.name for f in files] == SET5_NAMES
    for f in files:
        assert f.url == f"https://raw.githubusercontent.com/majedelhelou/denoising_datasets/{commit}/CSet5/{f.file}"
        assert len(f.sha256) == 64


def test_dip_paper_names_are_flat_and_unique():
    names = list_images("dip-paper")
    assert len(names) == len(set(names)) == len(DATASETS["dip-paper"].files)
    assert {"denoising-F16_GT", "inpainting-kate", "inpainting-kate_mask", "restoration-kate"} <= set(names)
    assert all("/" not in name for name in names)
    url = next(f.url for f in DATASETS["dip-paper"].files if f.name == "inpainting-kate_mask")
    assert url.startswith("https://raw.githubusercontent.com/DmitryUlyanov/deep-image-prior/")
    assert url.endswith("/data/inpainting/kate_mask.png")


@pytest.mark.parametrize(("name", "manifest"), [("set5", "set5"), ("dip-paper", "dip-paper")])
def test_packaged_manifests_agree_with_the_shared_copies(shared_dir, name, manifest):
    path = shared_dir / "data" / manifest / "MANIFEST.tsv"
    with path.open() as handle:
        shared = {r["file"]: r for r in csv.DictReader(handle, delimiter="\t")}
    for f in DATASETS[name].files:
        row = shared[f.file]
        assert (f.sha256, f.size, f.width, f.height) == (
            row["sha256"],
            int(row["bytes"]),
            int(row["width"]),
            int(row["height"]),
        )
        assert row["source"].split(":", 1)[1] in f.url


# --- embedded -------------------------------------------------------------------------------------------------


def test_embedded_samples_list_and_load_offline():
    assert list_images("skimage-samples") == ["astronaut", "chelsea", "coffee", "immunohistochemistry", "rocket"]
    for name in list_images("skimage-samples"):
        image = load("skimage-samples", name)
        expected = getattr(skimage.data, name)().astype(np.float32) / 255
        assert image.dtype == np.float32 and image.shape == expected.shape
        np.testing.assert_array_equal(image, expected)
        np.testing.assert_array_equal(read_image(image_path("skimage-samples", name)), image)


def test_embedded_gray_keeps_a_channel_axis(tmp_path):
    assert list_images("skimage-gray") == ["brick", "camera"]
    camera = load("skimage-gray", "camera")
    assert camera.shape == (512, 512, 1)
    path = image_path("skimage-gray", "camera")
    assert path == tmp_path / "cache" / "skimage-gray" / "camera.png"
    np.testing.assert_array_equal(read_image(path), camera)


def test_embedded_has_nothing_to_fetch():
    with pytest.raises(ConfigError, match="embedded"):
        fetch("skimage-samples")


# --- folder ---------------------------------------------------------------------------------------------------


def test_folder_dataset_lists_image_files_sorted(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)).save(folder / "b.png")
    Image.fromarray(rng.integers(0, 256, (8, 6), dtype=np.uint8)).save(folder / "a.TIF")
    (folder / "notes.txt").write_text("not an image")
    dataset = folder_dataset(folder)
    assert dataset.kind == "folder" and dataset.name == "imgs"
    assert list_images(dataset) == ["a", "b"]
    assert load(dataset, "b").shape == (8, 6, 3)
    assert load(dataset, "a").shape == (8, 6, 1)
    assert image_path(str(folder), "b") == folder / "b.png"
    assert get_dataset(str(folder)).root == folder


def test_folder_dataset_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such directory"):
        folder_dataset(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no images"):
        list_images(folder_dataset(tmp_path))
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "x.jpg")
    with pytest.raises(ConfigError, match="two images named 'x'"):
        list_images(folder_dataset(tmp_path))


@pytest.mark.parametrize("name", ["two\nlines", "carriage\rreturn", "tab\there", "bell\a", "del\x7f"])
def test_a_folder_image_name_with_a_control_character_is_refused_in_one_line(tmp_path, name):
    Image.new("RGB", (4, 4)).save(tmp_path / "fine.png")
    Image.new("RGB", (4, 4)).save(tmp_path / f"{name}.png")
    with pytest.raises(ConfigError) as refused:
        list_images(folder_dataset(tmp_path))
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and repr(f"{name}.png") in message and "control character" in message


def test_a_folder_image_name_is_data(tmp_path):
    names = ["p$(touch PWNED);x `y`", '-café é it\'s "q" $HOME', "{brace} 100%"]
    for name in names:
        Image.new("RGB", (4, 4)).save(tmp_path / f"{name}.png")
    assert list_images(folder_dataset(tmp_path)) == sorted(names)
    assert image_path(str(tmp_path), names[0]) == tmp_path / f"{names[0]}.png"


def test_folder_dataset_on_shared_set5(set5_dir):
    dataset = folder_dataset(set5_dir)
    assert list_images(dataset) == SET5_NAMES
    assert load(dataset, "woman").shape == (344, 228, 3)


# --- remote ---------------------------------------------------------------------------------------------------


def test_remote_download_is_verified_and_cached(monkeypatch, set5_dir, tmp_path):
    with serve(set5_dir.parent) as (url, hits):
        monkeypatch.setenv("DIP_DATA_MIRROR", url + "/")
        paths = fetch("set5", retries=0)
        assert sorted(paths) == SET5_NAMES
        assert sorted(hits) == [f"/set5/{name}.png" for name in SET5_NAMES]
        expected = {f.name: f.sha256 for f in DATASETS["set5"].files}
        for name, path in paths.items():
            assert path == tmp_path / "cache" / "set5" / f"{name}.png"
            assert sha256(path) == expected[name]
        np.testing.assert_array_equal(load("set5", "bird"), read_image(set5_dir / "bird.png"))
        assert len(hits) == 5, "a cached, verified file must not be downloaded again"


def test_remote_cache_with_a_tampered_file_is_downloaded_again(monkeypatch, set5_dir):
    with serve(set5_dir.parent) as (url, hits):
        monkeypatch.setenv("DIP_DATA_MIRROR", url)
        path = fetch("set5", ["head"], retries=0)["head"]
        path.write_bytes(b"tampered")
        assert fetch("set5", ["head"], retries=0)["head"] == path
        assert hits == ["/set5/head.png", "/set5/head.png"]
        assert sha256(path) == sha256(set5_dir / "head.png")


def test_remote_corrupted_file_is_rejected(monkeypatch, set5_dir, tmp_path):
    mirror = tmp_path / "mirror" / "set5"
    mirror.mkdir(parents=True)
    data = bytearray((set5_dir / "baby.png").read_bytes())
    data[1000:1010] = bytes(b ^ 0xFF for b in data[1000:1010])
    (mirror / "baby.png").write_bytes(bytes(data))
    with serve(mirror.parent) as (url, _):
        monkeypatch.setenv("DIP_DATA_MIRROR", url)
        with pytest.raises(ImageError, match=r"set5.*baby\.png.*SHA-256") as excinfo:
            fetch("set5", ["baby"], retries=0)
    assert url in str(excinfo.value)
    assert not (tmp_path / "cache" / "set5" / "baby.png").exists()


def test_remote_unreachable_gives_a_clear_offline_message(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DIP_DATA_MIRROR", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(DipError, match="could not be downloaded") as excinfo:
        fetch("set5", ["butterfly"], retries=0)
    assert time.monotonic() - start < 5
    message = str(excinfo.value)
    assert f"http://127.0.0.1:{port}/set5/butterfly.png" in message
    assert "folder" in message


def test_remote_real_urls_are_never_reached_by_tests():
    """The `offline` fixture refuses non-local connections, so a download from the real URL fails cleanly."""
    with pytest.raises(DipError, match=r"could not be downloaded: https://raw\.githubusercontent\.com/"):
        fetch("set5", ["head"], retries=0)


def test_remote_unknown_image(monkeypatch):
    with pytest.raises(ConfigError, match=r"'lena'.*baby"):
        fetch("set5", ["lena"])


@pytest.mark.skipif(sys.platform != "linux", reason="the XDG cache layout is Linux's")
def test_cache_dir_default_is_the_user_cache(monkeypatch):
    monkeypatch.delenv("DIP_DATA_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert datasets.cache_dir() == Path.home() / ".cache" / "dip-bench"
