"""Device selection, precision guards, the CPU allocator setting and the reduced-precision path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dip.device import (
    CPU_BF16_FEATURES,
    NOT_DETERMINISTIC_ON_CUDA,
    autocast,
    check_precision,
    cpu_bf16_features,
    cuda_versions,
    nondeterministic_kernels,
    resolve_precision,
    select_device,
    tune_cpu_allocator,
)
from dip.errors import ConfigError
from dip.fit import FitInterrupted, FitSettings, fit
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


def test_auto_precision_on_the_cpu_follows_its_bf16_instructions_and_layout(monkeypatch):
    """`auto` on a CPU with native bf16 runs bf16 in channels_last (it turns the layout on for a single fit; a batch,
    which runs in NCHW, stays fp32); without native bf16, or with oneDNN capped below its bf16 kernels, fp32."""
    from dip import device

    cpu = torch.device("cpu")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(device, "cpu_bf16_features", lambda: ["avx512_bf16"])
    assert resolve_precision("auto", cpu, channels_last=True) == (
        "bf16",
        True,
        "auto: the CPU has AVX512-BF16 and the net runs in channels_last",
    )
    precision, channels_last, why = resolve_precision("auto", cpu, channels_last=False)
    assert (precision, channels_last) == ("bf16", True) and "runs in channels_last, where bf16 pays" in why
    precision, channels_last, why = resolve_precision("auto", cpu, channels_last=False, batched=True)
    assert (precision, channels_last) == ("fp32", False) and "batches lack" in why
    for cap, expected in (("AVX2", "fp32"), ("avx512_core", "fp32"), ("AVX512_CORE_BF16", "bf16"), ("ALL", "bf16")):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        precision, _, why = resolve_precision("auto", cpu, channels_last=False)
        assert precision == expected, (cap, why)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert "ONEDNN_MAX_CPU_ISA=AVX2 keeps oneDNN from it" in resolve_precision("auto", cpu, channels_last=True)[2]
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(device, "cpu_bf16_features", lambda: [])
    assert resolve_precision("auto", cpu, channels_last=True)[0] == "fp32"
    assert resolve_precision("fp16", cpu, channels_last=False) == ("fp16", False, "asked for")


def test_auto_precision_on_cuda_follows_the_compute_capability(monkeypatch):
    for capability, expected in (((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp32")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device, c=capability: c)
        precision, channels_last, why = resolve_precision("auto", torch.device("cuda"), channels_last=False)
        assert precision == expected and not channels_last and f"{capability[0]}.{capability[1]}" in why


def test_cpu_bf16_features_match_the_kernels_flags():
    """What torch reads agrees with /proc/cpuinfo, where the machine has one."""
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo")
    flags = set(cpuinfo.read_text().split())
    assert cpu_bf16_features() == [name for name in CPU_BF16_FEATURES if name in flags]


def test_tf32_and_unresolved_auto_are_refused_where_they_cannot_run():
    with pytest.raises(ConfigError, match=r"'tf32'.*needs a CUDA device"):
        check_precision("tf32", torch.device("cpu"))
    with pytest.raises(ConfigError, match="resolved"):
        check_precision("auto", torch.device("cpu"))
    with pytest.raises(ConfigError, match="resolve it first"), autocast("auto", torch.device("cpu")):
        pass


def test_fp32_is_bit_for_bit_the_default_and_auto_says_what_ran(monkeypatch, textured_rgb):
    """`precision: fp32` and the default give the same bits; `auto` runs what resolve_precision says, recorded."""
    import dip
    from dip import device

    observation = dip.degrade(textured_rgb, "denoising", "25", seed=0)
    settings = {"arch": "tiny", "iterations": 4, "device": "cpu"}
    default = dip.restore(observation, **settings)
    fp32 = dip.restore(observation, precision="fp32", **settings)
    assert np.array_equal(default.output, fp32.output)
    assert fp32.record["precision"] == {"asked": "fp32", "ran": "fp32", "why": "asked for"}
    monkeypatch.setattr(device, "cpu_bf16_features", lambda: ["amx_bf16"])
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    auto = dip.restore(observation, precision="auto", channels_last=True, **settings)
    assert auto.record["precision"]["ran"] == "bf16" and auto.record["fit"]["precision"] == "bf16"
    bf16 = dip.restore(observation, precision="bf16", channels_last=True, **settings)
    assert np.array_equal(auto.output, bf16.output)
    assert not np.array_equal(auto.output, fp32.output)
    layout_turned_on = dip.restore(observation, precision="auto", **settings)
    assert np.array_equal(layout_turned_on.output, bf16.output)
    assert layout_turned_on.record["precision"]["ran"] == "bf16" and layout_turned_on.record["fit"]["channels_last"]
    assert default.record["memory_measure"] == "peak RSS" and default.record["peak_memory_mb"] > 0


def test_a_checkpoint_of_another_kind_of_device_resumes_with_a_reseeded_noise_stream(tmp_path, caplog):
    """A CUDA generator's state (16 bytes) cannot drive the CPU's: the resumed fit reseeds, says so, and finishes."""
    from tests.test_fit import StopAfter

    settings = FitSettings(iterations=20, reg_noise_std=0.03, checkpoint_every=5)
    checkpoint = tmp_path / "fit.ckpt"
    with pytest.raises(FitInterrupted):
        fit(small_problem(), settings, fingerprint="a", checkpoint=checkpoint, stop_event=StopAfter(7))
    state = torch.load(checkpoint, weights_only=False)
    state["generator"] = torch.zeros(16, dtype=torch.uint8)  # what torch.cuda's Philox generator saves
    torch.save(state, checkpoint)
    resumed = fit(small_problem(), settings, fingerprint="a", checkpoint=checkpoint)
    assert resumed.resumed_from == 7 and resumed.iterations == 20 and torch.isfinite(resumed.output).all()
    assert "reg-noise stream is reseeded" in caplog.text


def test_records_name_the_cuda_and_cudnn_a_cuda_fit_ran_with():
    cuda = torch.device("cuda")
    assert cuda_versions(torch.device("cpu")) == {"cuda": None, "cudnn": None}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.version, "cuda", "12.8")
        patch.setattr(torch.backends.cudnn, "version", lambda: 91002)
        assert cuda_versions(cuda) == {"cuda": "12.8", "cudnn": 91002}


@pytest.fixture
def deterministic_mode():
    """Deterministic kernels asked for (`dip.device.set_deterministic`), and torch's global mode reset after."""
    from dip.device import set_deterministic

    set_deterministic(True)
    yield
    torch.use_deterministic_algorithms(False)


def test_the_kernels_that_ran_nondeterministically_are_collected_once_and_other_warnings_pass(deterministic_mode):
    """torch's `warn_only` alert (the CUDA backward of reflection padding and of bilinear upsampling raise it; the
    same text from Python here) is collected, each kernel once; any other warning passes on."""
    import warnings

    from torch._prims_common import alert_not_deterministic

    with pytest.warns(UserWarning, match="another warning"), nondeterministic_kernels() as ran:
        for kernel in ("upsample_bilinear2d_backward_out_cuda", "reflection_pad2d_backward_cuda") * 2:
            alert_not_deterministic(kernel)
        warnings.warn("another warning", stacklevel=1)
        assert ran == []  # filled in when the block ends
    assert ran == ["reflection_pad2d_backward_cuda", "upsample_bilinear2d_backward_out_cuda"]


def test_a_deterministic_run_records_what_it_could_not_make_deterministic(deterministic_mode, textured_rgb, capsys):
    """record.json says what was asked and which kernels ran nondeterministically (none on the CPU); --help says
    which ops stay nondeterministic on CUDA."""
    import dip
    from dip.cli import main

    observation = dip.degrade(textured_rgb, "denoising", "25", seed=0)
    asked = dip.restore(observation, arch="tiny", iterations=2, device="cpu", deterministic=True)
    assert asked.record["deterministic"] == {"asked": True, "not_deterministic": []}
    assert asked.record["cuda"] is None and asked.record["cudnn"] is None
    torch.use_deterministic_algorithms(False)
    plain = dip.restore(observation, arch="tiny", iterations=2, device="cpu")
    assert plain.record["deterministic"] == {"asked": False, "not_deterministic": None}
    with pytest.raises(SystemExit):
        main(["restore", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(" ".join(op.split()) in help_text for op in NOT_DETERMINISTIC_ON_CUDA)
    assert "deterministic.not_deterministic" in help_text


def test_a_fit_without_deterministic_kernels_after_one_with_them_gets_the_default_kernels(deterministic_mode):
    """torch's deterministic mode is the process's: a later fit that does not ask for it turns it off again."""
    from dip.device import set_deterministic

    assert torch.are_deterministic_algorithms_enabled()
    set_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()
