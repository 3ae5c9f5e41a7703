"""Shared fixtures: the ../shared data folder (skipped where absent) and small synthetic images."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"

# One intra-op thread: fits in the tests are small, and several processes (snakemake jobs, a second pytest) sharing
# the cores with multi-threaded torch slow down up to 8× from oversubscription.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def working_directory_of_its_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test runs in an empty working directory of the session's: none reads or writes the checkout's
    `results/`, `.snakemake/` or `report.zip` (a user's `make run` before `make test` changes no test)."""
    previous = Path.cwd()
    folder = tmp_path_factory.mktemp("cwd")
    os.chdir(folder)
    yield folder
    os.chdir(previous)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder next to the repository; tests that need it skip where it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"needs the shared data folder {SHARED}, which is absent")
    return SHARED


@pytest.fixture(scope="session")
def set5_dir(shared_dir: Path) -> Path:
    """Set5 HR images (baby, bird, butterfly, head, woman) in ../shared/data/set5."""
    folder = shared_dir / "data" / "set5"
    if not folder.is_dir():
        pytest.skip(f"needs Set5 in {folder}, which is absent")
    return folder


def _smooth(height: int, width: int, channels: int) -> np.ndarray:
    """A smooth, deterministic test image: low-frequency sinusoids per channel, values in [0.1, 0.9]."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    planes = [0.5 + 0.4 * np.sin(2 * np.pi * (1.3 * x + (c + 1) * 0.7 * y) + c) for c in range(channels)]
    return np.stack(planes, axis=-1).astype(np.float32)


@pytest.fixture
def rgb_image() -> np.ndarray:
    """A smooth 48×64 RGB float32 image."""
    return _smooth(48, 64, 3)


@pytest.fixture
def gray_image() -> np.ndarray:
    """A smooth 48×64 greyscale float32 image, shape (48, 64, 1)."""
    return _smooth(48, 64, 1)


@pytest.fixture
def textured_rgb() -> np.ndarray:
    """A 64×64 RGB image with edges and texture (a crop of scikit-image's astronaut), float32 in [0, 1]."""
    from skimage import data

    return (data.astronaut()[160:224, 180:244] / 255).astype(np.float32)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with slow tests (workflow runs, the SLURM cluster) first, so that pytest-xdist's workers start them at
    once rather than after the quick ones, and the suite ends when they do."""
    slow = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow)  # stable: each module's tests stay together
