"""The CUDA tier (`pytest -m gpu`, `make test-gpu`): the CUDA code paths on a real GPU. Each test skips, with its
reason, where CUDA is absent, so the CPU suite stays green.

Tolerances were set from what float rounding alone does on the CPU (this session's measurements, channels_last, a
different oneDNN kernel, against the contiguous layout): 5 iterations of the `tiny` net on a 64×64 denoising crop
differ by 1.1e-3 at most and 1.3e-4 on average; one backward pass of the `tiny` net at 64² is within 2e-6 of float64
(the `paper` net's only within 3e-3: BatchNorm over its 2×2 bottom maps amplifies rounding, so it is not the net to
compare kernels with). Adam's sign-like first steps amplify rounding, so the fits compared are short; longer fits are
compared by the quality they reach.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import dip
from dip import gpu_slots
from dip.cli import main
from dip.device import configure_cuda
from dip.fit import FitInterrupted, FitProblem, FitSettings, fit
from dip.models import build_model, make_input
from dip.tasks.observation_dir import save_observation
from tests.test_fit import StopAfter, small_problem
from tests.test_workflow import TEST_CONFIG, snakemake, workflow_copy

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="the gpu tier needs a CUDA device; none is visible"),
]

CUDA = torch.device("cuda")
CPU = torch.device("cpu")
SHORT_FIT_MAX, SHORT_FIT_MEAN = 1e-2, 1e-3
"""cuda vs cpu, fp32 (TF32 off), 5 iterations: largest and mean absolute difference of the outputs (10× the CPU's own
spread between two kernels)."""
GRADIENT_RTOL = 1e-4
"""fp32 on cuda (TF32 off) against float64 on the CPU: ‖g − g64‖ / ‖g64‖ of one backward pass of the tiny net (the
CPU's fp32 gives 2e-6; TF32 rounds operands to 10 bits, ~1e-3)."""
LOW_PRECISION_MARGIN_DB = 0.5
"""bf16 and fp16 reach the fp32 fit's PSNR (its averaged output) within this many dB."""


@pytest.fixture(autouse=True)
def fp32_after() -> Iterator[None]:
    """Each test leaves CUDA's float32 arithmetic as a fit in fp32 sets it (IEEE, cuDNN autotuning on)."""
    yield
    configure_cuda(CUDA, "fp32")


@pytest.fixture
def observation():
    """A denoising observation (σ = 25) of a 64×64 crop with edges and texture (scikit-image's astronaut)."""
    from skimage import data

    clean = (data.astronaut()[160:224, 180:244] / 255).astype(np.float32)
    return dip.degrade(clean, "denoising", "25", seed=0)


def on(problem: FitProblem, device: torch.device) -> FitProblem:
    """The same problem with its net and tensors on `device`."""
    move = None if problem.clean is None else problem.clean.to(device)
    return FitProblem(
        problem.net.to(device),
        problem.net_input.to(device),
        problem.forward.to(device),
        problem.observed.to(device),
        move,
    )


def test_a_short_fit_on_cuda_agrees_with_the_cpu(observation) -> None:
    """fp32 with TF32 off: no reg-noise (the CPU's and CUDA's random streams differ), 5 iterations."""
    settings = {"arch": "tiny", "iterations": 5, "reg_noise_std": 0.0, "precision": "fp32"}
    cpu = dip.restore(observation, device="cpu", **settings)
    cuda = dip.restore(observation, device="cuda", **settings)
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    difference = np.abs(cuda.output - cpu.output)
    assert difference.max() < SHORT_FIT_MAX and difference.mean() < SHORT_FIT_MEAN
    assert cuda.record["device"].startswith("cuda") and cuda.record["precision"]["ran"] == "fp32"


def gradients(device: torch.device, precision: str, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """The gradients of one DIP loss of the tiny net (seeded) on a 64×64 input, on `device`, in fp32 or tf32."""

    configure_cuda(device, precision, autotune=False)
    torch.manual_seed(0)
    net = build_model("tiny", 3).to(device, dtype)
    z = make_input("tiny", 64, 64, torch.Generator().manual_seed(0)).to(device, dtype)
    target = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)).to(device, dtype)
    torch.mean((net(z) - target) ** 2).backward()
    return [parameter.grad.double().cpu() for parameter in net.parameters()]


def relative_error(values: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    difference = sum(float(((a - b) ** 2).sum()) for a, b in zip(values, reference, strict=True))
    return math.sqrt(difference / sum(float((b**2).sum()) for b in reference))


def test_fp32_gradients_on_cuda_agree_with_float64() -> None:
    reference = gradients(CPU, "fp32", torch.float64)
    assert relative_error(gradients(CUDA, "fp32"), reference) < GRADIENT_RTOL


def operation_errors(precision: str) -> tuple[float, float]:
    """Relative errors against float64 of a 1024² matmul and a 3×3 convolution (128 → 128 channels, 64²) on CUDA,
    under `configure_cuda(precision)`: ~1e-6 in IEEE float32, ~1e-4 to 1e-3 with TF32's 10-bit operands."""
    configure_cuda(CUDA, precision, autotune=False)
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(1024, 1024, generator=generator), torch.randn(1024, 1024, generator=generator)
    x, w = torch.randn(1, 128, 64, 64, generator=generator), torch.randn(128, 128, 3, 3, generator=generator)
    errors = []
    for function, inputs in ((torch.matmul, (a, b)), (torch.nn.functional.conv2d, (x, w))):
        reference = function(*(t.double() for t in inputs))
        result = function(*(t.to(CUDA) for t in inputs)).double().cpu()
        errors.append(float((result - reference).norm() / reference.norm()))
    return errors[0], errors[1]


def test_tf32_is_off_in_fp32_and_on_in_tf32() -> None:
    assert max(operation_errors("fp32")) < 1e-5
    assert min(operation_errors("tf32")) > 5e-5


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_reaches_the_fp32_psnr(observation, precision: str) -> None:
    """The paper's denoising (the paper net, output averaging 0.99) for 400 iterations on a 64×64 crop."""
    settings = {"arch": "paper", "iterations": 400, "ema": 0.99, "trace_every": 399, "device": "cuda"}
    reference = dip.restore(observation, precision="fp32", **settings)
    low = dip.restore(observation, precision=precision, **settings)
    assert low.record["precision"]["ran"] == precision
    assert low.trace[-1]["psnr_gt_avg"] > reference.trace[-1]["psnr_gt_avg"] - LOW_PRECISION_MARGIN_DB
    assert np.isfinite(low.output).all()


def test_auto_precision_runs_bf16_on_a_gpu_that_has_it(observation) -> None:
    result = dip.restore(observation, arch="tiny", iterations=3, device="cuda", precision="auto")
    native = torch.cuda.get_device_capability() >= (8, 0)
    assert result.record["precision"]["ran"] == ("bf16" if native else "fp32")
    assert "compute capability" in result.record["precision"]["why"]


def test_channels_last_on_cuda(observation) -> None:
    """The net runs in channels_last (its 4-d weights are laid out so) and fits as the contiguous layout does."""
    settings = FitSettings(iterations=5, reg_noise_std=0.0, channels_last=True)
    problem = on(small_problem(), CUDA)
    result = fit(problem, settings)
    weights = [p for p in problem.net.parameters() if p.dim() == 4]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    reference = fit(on(small_problem(), CUDA), FitSettings(iterations=5, reg_noise_std=0.0))
    assert (result.output - reference.output).abs().max() < SHORT_FIT_MAX
    layout = dip.restore(observation, arch="tiny", iterations=5, device="cuda", channels_last=True)
    assert np.isfinite(layout.output).all() and layout.record["fit"]["channels_last"]


@pytest.mark.parametrize(("first", "then"), [(CUDA, CPU), (CPU, CUDA)], ids=["gpu-to-cpu", "cpu-to-gpu"])
def test_a_checkpoint_resumes_on_the_other_device(tmp_path: Path, first: torch.device, then: torch.device) -> None:
    settings = FitSettings(iterations=30, reg_noise_std=0.03, ema=0.9, trace_every=5, checkpoint_every=7)
    checkpoint = tmp_path / "fit.ckpt"
    with pytest.raises(FitInterrupted):
        fit(on(small_problem(), first), settings, fingerprint="a", checkpoint=checkpoint, stop_event=StopAfter(12))
    resumed = fit(on(small_problem(), then), settings, fingerprint="a", checkpoint=checkpoint)
    straight = fit(on(small_problem(), then), settings)
    assert resumed.resumed_from == 12 and resumed.iterations == 30
    assert [row["iteration"] for row in resumed.trace] == [row["iteration"] for row in straight.trace]
    assert torch.isfinite(resumed.output).all()
    # another device's reg-noise draws from iteration 12 on: the same quality, not the same bits
    assert abs(resumed.trace[-1]["psnr_gt"] - straight.trace[-1]["psnr_gt"]) < 1.0


def test_dip_restore_on_cuda_end_to_end(tmp_path: Path, observation) -> None:
    """`dip restore --device cuda` writes its run, and its record names the GPU, the precision and the peak memory."""
    save_observation(observation, tmp_path / "obs")
    flags = ["--arch", "tiny", "--iterations", "20", "--device", "cuda", "--precision", "auto", "--quiet"]
    assert main(["restore", str(tmp_path / "obs"), *flags, "--out", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert record["device"].startswith("cuda") and torch.cuda.get_device_name() in record["device"]
    assert record["peak_memory_mb"] > 0 and record["memory_measure"] == "peak allocated on the GPU"
    assert record["precision"]["asked"] == "auto" and record["precision"]["ran"] in ("bf16", "fp32")
    assert (tmp_path / "run" / "restored.png").is_file()


def test_the_workflows_dip_rule_on_cuda(tmp_path: Path) -> None:
    """The DIP rule under `--resources gpu=1`: each fit runs on the GPU."""
    config = copy.deepcopy(TEST_CONFIG)
    config["tasks"] = {"denoising": ["25"]}
    config["fit"] = {"denoising": config["fit"]["denoising"]}
    config["baselines"] = {"denoising": config["baselines"]["denoising"]}
    config["device"] = "cuda"
    folder = workflow_copy(tmp_path / "wf", config)
    run = snakemake(folder, "--cores", "2", "--resources", "gpu=1")
    assert run.returncode == 0, run.stderr[-5000:]
    (record,) = (folder / "results").glob("*/denoising/25/*/dip-tiny/seed0/record.json")
    assert json.loads(record.read_text())["device"].startswith("cuda")


def test_the_gpu_slot_of_a_real_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two fits per GPU: two slots of each real device, each usable; a third claim would wait."""
    monkeypatch.setenv(gpu_slots.SLOT_DIR_VARIABLE, str(tmp_path / "slots"))
    monkeypatch.setenv(gpu_slots.FITS_PER_GPU_VARIABLE, "2")
    count = torch.cuda.device_count()
    try:
        claimed = [gpu_slots.claim(CUDA) for _ in range(2 * count)]
        assert sorted(slot for _, slot in claimed) == list(range(2 * count))
        assert sorted(device.index for device, _ in claimed) == sorted(list(range(count)) * 2)
        for device, _ in claimed:
            assert torch.ones(4, device=device).sum().item() == 4
    finally:
        while gpu_slots._held:
            gpu_slots._held.pop().release()


def count_syncs(run: Callable[[], object]) -> int:
    """The host syncs (CUDA synchronizing operations) that `run()` makes, as torch's sync debug mode reports them."""
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("called a synchronizing CUDA operation" in str(warning.message) for warning in caught)


@pytest.mark.parametrize("stopping", ["fixed", "es-wmv"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_no_host_sync_outside_the_iterations_that_trace_log_or_checkpoint(
    tmp_path: Path, stopping: str, precision: str
) -> None:
    """A fit of N + 40 iterations syncs as often as one of N: the 40 iterations between make none. (With fp16 the
    GradScaler reads its overflow flag at every step: a sync per iteration, by design.) Resumed fits are checked too:
    a checkpoint loaded onto the GPU once left Adam's step counts there (a read-back per parameter and step)."""

    def run(iterations: int, checkpoint: Path | None = None, stop_event: StopAfter | None = None) -> None:
        settings = FitSettings(
            iterations=iterations,
            trace_every=iterations,
            backtrack_every=iterations,
            checkpoint_every=iterations,
            stopping=stopping,
            es_window=5,
            es_patience=10_000,
            precision=precision,
        )
        problem = on(small_problem(), CUDA)
        fit(problem, settings, fingerprint="a", checkpoint=checkpoint, stop_event=stop_event, progress=True)

    run(20)  # warm-up: cuDNN's choices, CUDA's lazy loading, the stopping rule's kernels
    short, long = count_syncs(lambda: run(20)), count_syncs(lambda: run(60))
    assert long == short, f"{long - short} host syncs in 40 iterations that neither trace, log nor checkpoint"

    interrupted = tmp_path / "interrupted.ckpt"
    with pytest.raises(FitInterrupted):
        run(100, interrupted, StopAfter(8))

    def resumed(iterations: int) -> None:
        checkpoint = Path(shutil.copy(interrupted, tmp_path / f"resume-{iterations}.ckpt"))
        run(iterations, checkpoint)

    short, long = count_syncs(lambda: resumed(20)), count_syncs(lambda: resumed(60))
    assert long == short, f"{long - short} host syncs in 40 iterations of a resumed fit"
