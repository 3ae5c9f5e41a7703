"""Device selection, precision guards, the CPU allocator setting and the reduced-precision path."""

from __future__ import annotations

import pytest
import torch

from dip.device import autocast, check_precision, select_device, tune_cpu_allocator
from dip.errors import ConfigError
from dip.fit import FitSettings, fit
from tests.test_fit import small_problem


def test_auto_picks_an_available_device():
    device = select_device("auto")
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif not torch.backends.mps.is_available():
        assert device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_asked_for_without_cuda_is_a_clear_error():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        select_device("cuda")


def test_unknown_device():
    with pytest.raises(ConfigError, match="tpu"):
        select_device("tpu")


def test_fp16_is_refused_on_the_cpu():
    with pytest.raises(ConfigError, match="fp16"):
        check_precision("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="fp8"):
        check_precision("fp8", torch.device("cpu"))


def test_allocator_tuning_applies_on_glibc_and_is_idempotent():
    import platform

    tuned = tune_cpu_allocator()
    assert tuned is (platform.libc_ver()[0] == "glibc")
    assert tune_cpu_allocator() is tuned


def test_bf16_autocast_runs_the_forward_in_bf16():
    conv = torch.nn.Conv2d(3, 3, 3)
    with autocast("bf16", torch.device("cpu")):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.bfloat16
    with autocast("fp32", torch.device("cpu")):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.float32


@pytest.mark.parametrize(
    "options", [{"precision": "bf16"}, {"channels_last": True}, {"precision": "bf16", "channels_last": True}]
)
def test_fast_paths_fit_like_the_reference(options):
    """bf16 autocast and channels_last reach the fp32 result's quality (PSNR to the truth within 0.5 dB here)."""
    settings = {"iterations": 120, "reg_noise_std": 0.0, "trace_every": 119}
    reference = fit(small_problem(), FitSettings(**settings))
    fast = fit(small_problem(), FitSettings(**settings, **options))
    assert abs(fast.trace[-1]["psnr_gt"] - reference.trace[-1]["psnr_gt"]) < 0.5
    assert torch.isfinite(fast.output).all() and fast.output.dtype == torch.float32


def test_fp16_fit_scales_the_loss_and_fits_like_fp32(monkeypatch):
    """fp16 (CUDA's AMP; run here through the CPU's fp16 autocast) scales the loss so small gradients survive."""
    scales = []
    original_update = torch.amp.GradScaler.update

    def recording_update(scaler, *args, **kwargs):
        if scaler.is_enabled():
            scales.append(scaler.get_scale())
        return original_update(scaler, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "update", recording_update)
    settings = {"iterations": 120, "reg_noise_std": 0.0, "trace_every": 119}
    reference = fit(small_problem(), FitSettings(**settings))
    half = fit(small_problem(), FitSettings(**settings, precision="fp16"))
    assert len(scales) == 120 and min(scales) > 1
    assert abs(half.trace[-1]["psnr_gt"] - reference.trace[-1]["psnr_gt"]) < 0.5
