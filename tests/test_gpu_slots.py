"""One GPU per fit (dip/gpu_slots.py), with the CUDA devices faked on a CPU machine: the first free one is taken, a
device another process holds is skipped, a fit waits while all are taken, and a lock dies with its process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from dip import gpu_slots
from dip.cli import main
from dip.device import select_device
from dip.errors import ConfigError, OutputError
from dip.io import write_image

HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture(autouse=True)
def slot_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A lock directory of this test's own; no slot stays held after it."""
    directory = tmp_path / "slots"
    monkeypatch.setenv(gpu_slots.SLOT_DIR_VARIABLE, str(directory))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv(gpu_slots.FITS_PER_GPU_VARIABLE, raising=False)
    yield directory
    while gpu_slots._held:
        gpu_slots._held.pop().release()


def fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.fixture
def holder(slot_dir: Path) -> Iterator[Callable[[str], subprocess.Popen]]:
    """Start a process that holds the lock of a device name until the test ends."""
    processes = []

    def hold(name: str) -> subprocess.Popen:
        slot_dir.mkdir(exist_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(slot_dir / f"gpu-{name}.lock")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield hold
    for process in processes:
        process.stdin.close()
        process.wait(timeout=30)


def test_one_device_or_none_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gpu_slots.claim(torch.device("cpu")) == (torch.device("cpu"), None)
    fake_gpus(monkeypatch, 1)
    assert gpu_slots.claim(select_device("auto")) == (torch.device("cuda"), None)
    fake_gpus(monkeypatch, 4)
    assert gpu_slots.claim(select_device("cuda:2")) == (torch.device("cuda", 2), None)  # asked for by name


def test_each_fit_gets_a_gpu_of_its_own(monkeypatch: pytest.MonkeyPatch, holder) -> None:
    fake_gpus(monkeypatch, 4)
    holder("0")
    assert gpu_slots.claim(select_device("auto")) == (torch.device("cuda", 1), 1)
    assert gpu_slots.claim(select_device("cuda")) == (torch.device("cuda", 2), 2)  # a second fit in this process


def test_slots_follow_the_physical_devices_of_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch, holder) -> None:
    """A fit that sees GPUs 2 and 3 of the machine skips GPU 2 when a fit that sees other devices holds it."""
    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    holder("2")
    assert gpu_slots.claim(select_device("auto")) == (torch.device("cuda", 1), 1)
    assert sorted(path.name for path in gpu_slots.slot_directory().iterdir()) == ["gpu-2.lock", "gpu-3.lock"]


def test_a_fit_waits_while_every_gpu_is_taken(slot_dir: Path) -> None:
    slot_dir.mkdir()
    names = ["0", "1"]
    first, second = gpu_slots.acquire(names, slot_dir), gpu_slots.acquire(names, slot_dir)
    assert (first.index, second.index) == (0, 1)
    threading.Timer(0.5, second.release).start()
    started = time.monotonic()
    third = gpu_slots.acquire(names, slot_dir, poll_seconds=0.05)
    assert third.index == 1 and time.monotonic() - started >= 0.4
    first.release()
    third.release()


def test_a_slot_is_free_again_once_its_process_ends(monkeypatch: pytest.MonkeyPatch, holder) -> None:
    fake_gpus(monkeypatch, 2)
    process = holder("0")
    process.stdin.close()
    process.wait(timeout=30)
    assert gpu_slots.claim(select_device("auto")) == (torch.device("cuda", 0), 0)


def test_a_slot_folder_that_cannot_be_made_is_one_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_gpus(monkeypatch, 2)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(gpu_slots.SLOT_DIR_VARIABLE, str(tmp_path / "a-file" / "slots"))
    with pytest.raises(OutputError, match=rf"cannot lock a GPU slot in {tmp_path}/a-file/slots \(.*\): set "):
        gpu_slots.claim(select_device("auto"))


def test_fits_per_gpu_gives_each_gpu_several_slots(monkeypatch: pytest.MonkeyPatch, holder) -> None:
    """Two fits per GPU on two GPUs: four slots, every GPU's first slot before any second one, a held one skipped."""
    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv(gpu_slots.FITS_PER_GPU_VARIABLE, "2")
    holder("1")
    claimed = [gpu_slots.claim(select_device("cuda")) for _ in range(3)]
    assert claimed == [(torch.device("cuda", 0), 0), (torch.device("cuda", 0), 2), (torch.device("cuda", 1), 3)]
    assert sorted(path.name for path in gpu_slots.slot_directory().iterdir()) == [
        "gpu-0.1.lock",
        "gpu-0.lock",
        "gpu-1.1.lock",
        "gpu-1.lock",
    ]


def test_one_gpu_with_several_fits_per_gpu_has_slots(monkeypatch: pytest.MonkeyPatch, slot_dir: Path) -> None:
    """One GPU, three fits per GPU: three slots of cuda:0; a fourth fit would wait for one."""
    fake_gpus(monkeypatch, 1)
    monkeypatch.setenv(gpu_slots.FITS_PER_GPU_VARIABLE, "3")
    claimed = [gpu_slots.claim(select_device("auto")) for _ in range(3)]
    assert claimed == [(torch.device("cuda", 0), slot) for slot in range(3)]
    names = gpu_slots.slot_names(gpu_slots.device_names(1), 3)
    assert names == ["0", "0.1", "0.2"]
    started = time.monotonic()
    threading.Timer(0.3, gpu_slots._held.pop().release).start()
    fourth = gpu_slots.acquire(names, slot_dir, poll_seconds=0.05)
    assert fourth.index == 2 and time.monotonic() - started >= 0.25
    fourth.release()


@pytest.mark.parametrize("value", ["0", "two", "-1", "²", "٣", "65", "99999999999"])
def test_a_bad_fits_per_gpu_is_one_message(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Digits that are not ASCII (`²`, Arabic-Indic `٣`: str.isdigit takes them, int refuses or reads them) and a
    number past the bound, whose slot names would fill the memory, are refused before any lock."""
    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv(gpu_slots.FITS_PER_GPU_VARIABLE, value)
    with pytest.raises(ConfigError, match=rf"DIP_FITS_PER_GPU must be a whole number from 1 to 64, not '{value}'"):
        gpu_slots.claim(select_device("cuda"))


def test_restore_records_its_slot(tmp_path: Path) -> None:
    image = tmp_path / "tiny.png"
    write_image(image, np.full((32, 32, 3), 0.5, dtype=np.float32))
    assert main(["degrade", str(image), "--task", "denoising", "--level", "25", "--out", str(tmp_path / "obs")]) == 0
    fit = ["--arch", "tiny", "--iterations", "2", "--device", "cpu", "--threads", "1", "--quiet"]
    assert main(["restore", str(tmp_path / "obs"), *fit, "--out", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert record["gpu_slot"] is None and record["device"].startswith("cpu")


def test_no_fit_starts_once_the_time_budget_is_spent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With $DIP_DEADLINE in the past, `dip restore --record-failure` writes a failure record instead of fitting."""
    image = tmp_path / "tiny.png"
    write_image(image, np.full((32, 32, 3), 0.5, dtype=np.float32))
    assert main(["degrade", str(image), "--task", "denoising", "--level", "25", "--out", str(tmp_path / "obs")]) == 0
    fit = ["--arch", "tiny", "--iterations", "2", "--device", "cpu", "--quiet", "--record-failure", "log.txt"]
    monkeypatch.setenv("DIP_DEADLINE", str(time.time() - 1))
    assert main(["restore", str(tmp_path / "obs"), *fit, "--out", str(tmp_path / "late")]) == 0
    failure = json.loads((tmp_path / "late" / "failure.json").read_text())
    assert failure["error"].startswith("not started: the run's time budget") and failure["stage"] == "restore"
    monkeypatch.setenv("DIP_DEADLINE", str(time.time() + 600))
    assert main(["restore", str(tmp_path / "obs"), *fit, "--out", str(tmp_path / "early")]) == 0
    assert (tmp_path / "early" / "record.json").is_file()
