"""GPU slots: a fit asking for `cuda` takes a free slot of a visible GPU under a file lock and holds it until it exits.

`snakemake --resources gpu=N` runs N fits at once, each asking for `cuda`; without slots, all of them would land on
`cuda:0`. Each GPU has `fits_per_gpu` slots ($DIP_FITS_PER_GPU, default 1: a GPU per fit; more let one big GPU run
several fits at once), so the slots count fits, not devices: `--resources gpu=<GPUs × fits_per_gpu>`. A slot is a lock
file in a directory shared by the fits of the machine ($DIP_GPU_SLOT_DIR, default `<tmp>/dip-gpu-slots`), named by the
device's entry in CUDA_VISIBLE_DEVICES (or its index when that is unset), so two fits never hold one slot of a physical
GPU whatever each sees; every GPU's first slot is taken before any second one. The lock is an `flock`: the operating
system drops it when the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dip.errors import ConfigError, OutputError

log = logging.getLogger(__name__)

SLOT_DIR_VARIABLE = "DIP_GPU_SLOT_DIR"
FITS_PER_GPU_VARIABLE = "DIP_FITS_PER_GPU"
MAX_FITS_PER_GPU = 64
"""The most fits one GPU's slots take: more fits than that share a GPU's memory in slices too thin for any net."""


@dataclass
class Slot:
    """A held slot: `index` is its place among the slots (every GPU's first slot, then every second one, …), `fd` the
    open, locked lock file."""

    index: int
    fd: int

    def release(self) -> None:
        os.close(self.fd)


_held: list[Slot] = []  # this process's slots: their locks last as long as it does


def slot_directory() -> Path:
    """The directory of the lock files, created world-writable (like /tmp) so every user's fits share it."""
    directory = Path(os.environ.get(SLOT_DIR_VARIABLE) or Path(tempfile.gettempdir()) / "dip-gpu-slots")
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):  # another user's fit made it first
            directory.chmod(0o1777)
    return directory


def fits_per_gpu() -> int:
    """How many fits share one GPU ($DIP_FITS_PER_GPU, default 1, at most `MAX_FITS_PER_GPU`)."""
    value = os.environ.get(FITS_PER_GPU_VARIABLE, "").strip() or "1"
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_FITS_PER_GPU:
        raise ConfigError(
            f"{FITS_PER_GPU_VARIABLE} must be a whole number from 1 to {MAX_FITS_PER_GPU}, not {value[:40]!r}"
        )
    return int(value)


def slot_names(names: list[str], fits: int) -> list[str]:
    """The lock names of `fits` slots per device: the device's name for its first slot, `<name>.<k>` for the others;
    every device's first slot comes first."""
    return [name if k == 0 else f"{name}.{k}" for k in range(fits) for name in names]


def device_names(count: int) -> list[str]:
    """A name per visible CUDA device, the same in every process that sees that physical device."""
    visible = [name.strip() for name in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if name.strip()]
    return visible[:count] if len(visible) >= count else [str(index) for index in range(count)]


def acquire(names: list[str], directory: Path, poll_seconds: float = 1.0) -> Slot:
    """Lock the first free device of `names` (waiting, with one warning, while all are taken)."""
    warned = False
    while True:
        for index, name in enumerate(names):
            path = directory / f"gpu-{name.replace('/', '_')}.lock"
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return Slot(index, fd)
        if not warned:
            log.warning(
                "all %d GPU slots are taken by other fits (locks in %s): waiting for one", len(names), directory
            )
            warned = True
        time.sleep(poll_seconds)


def claim(device: torch.device) -> tuple[torch.device, int | None]:
    """This fit's own GPU slot when `device` is `cuda` without an index and there are several slots (several visible
    CUDA devices, or fits_per_gpu > 1): the slot's device `cuda:<k>` and the slot, held until the process exits. Any
    other device is returned as it is, with None."""
    count = torch.cuda.device_count() if device.type == "cuda" and device.index is None else 0
    fits = fits_per_gpu() if count else 1
    if count * fits < 2:
        return device, None
    try:
        slot = acquire(slot_names(device_names(count), fits), slot_directory())
    except OSError as error:
        raise OutputError(
            f"cannot lock a GPU slot in {error.filename} ({error.strerror}): set {SLOT_DIR_VARIABLE} to a folder that"
            " every fit of this machine can write"
        ) from None
    _held.append(slot)
    index = slot.index % count
    log.info("GPU slot %d of %d (%d per GPU): cuda:%d", slot.index, count * fits, fits, index)
    return torch.device("cuda", index), slot.index
