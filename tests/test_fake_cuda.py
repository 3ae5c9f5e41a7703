"""The CUDA path checked without a GPU: the fit's code run on fake CUDA tensors (tests/fake_cuda.py), which carry a
device, a dtype and a shape but no data, so that a tensor left on the CPU inside a CUDA fit, a checkpoint loaded
without its `map_location`, a dtype autocast leaves unexpected or a host sync per iteration fails here rather than on
the first GPU. Runs in the CPU tiers, in seconds; the gpu tier (tests/test_gpu.py) checks the numbers on a real GPU.

Followed here: every task's A (`forward_model`, and the blur's adjoint) and `build_problem` on CUDA; every preset's
forward, backward and Adam step at bf16 (one also at fp32, and at fp16 with its loss scaler); which layers CUDA
autocast runs in bf16; single fits with reg-noise, EMA, backtracking, a stopping rule with `es_continue`, every
watching rule, frames, DIP-TV and SGLD, and stacked (vmap'ed) fits with the same options, each keeping on the host
only what belongs there and no bf16/fp16 tensor in its state; the NaN guard's restores; a CPU checkpoint resumed onto
CUDA; how often a fit syncs with the GPU and copies to it, against its number of iterations.

Not followed (and why): the numbers (fake tensors hold none: the gpu tier's job), hence any path a value decides
(host reads return placeholders: a loss of 0, no rule firing; the NaN guard is reached by making them NaN); autograd's
backward pass, which needs a CUDA runtime for its streams (a stand-in gives each leaf the graph reaches a zero gradient
of its own device and dtype; the forward graph is the real one); whether a random op's generator is on its tensors'
device (torch hands the fake mode a new wrapper of the generator; the log records the device of each generator made
instead); the CUDA generator's own state (the stand-in is a CPU generator); `dip.api` around the fit (GPU slots,
`torch.cuda.set_device`, peak memory, writing the images, which needs their values) and `dip.device`'s CUDA queries
(tests/test_device.py patches them one by one).
"""

from __future__ import annotations

import ctypes
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dip.errors import DivergenceError
from dip.fit import FitProblem, FitSettings, fit, fit_batch
from dip.models import PRESETS, build_model, make_input, minimum_side, resolve_spec
from dip.physics import Blur
from dip.restoration import build_problem
from dip.tasks import TASKS, make_operator
from tests.fake_cuda import CUDA, build_guard, fake_cuda

LEVELS = {
    "denoising": "25",
    "super-resolution": "4",
    "inpainting": "random50",
    "jpeg": "20",
    "deblurring": "gauss1.6-n2",
    "flash-no-flash": "pair",
}
LOW = {"bf16": torch.bfloat16, "fp16": torch.float16}
HOST_STATE = {
    "generator",
    "langevin/generator",
    "frames/*/pixels",
    "optimizer/state/*/step",
    "snapshot/optimizer/state/*/step",
}
"""What a CUDA fit's checkpoint keeps on the host: the generators' states (CPU tensors in torch), the frames (8-bit
CPU copies) and Adam's step counts (on the CPU, as `torch.optim.Adam` keeps them, also in backtracking's snapshot);
everything else (net, Adam's moments, average, stopping rule, watchers, snapshot, posterior mean) is on the GPU."""
pytestmark = pytest.mark.filterwarnings("ignore:Accessing the data pointer of FakeTensor")


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    try:
        return build_guard(tmp_path_factory.mktemp("fake-cuda"))
    except (FileNotFoundError, OSError) as error:
        pytest.skip(f"the fake CUDA tier needs a C++ compiler to register c10's fake CUDA guard ({error})")


def test_the_fake_gpu_refuses_what_a_real_one_refuses(guard) -> None:
    """The tier's premise: a CPU tensor in a CUDA op fails (a CPU 0-dim tensor is a scalar and passes, as on CUDA)."""
    with fake_cuda(guard) as log:
        x = torch.ones(2, 3, device="cuda")
        with pytest.raises(RuntimeError, match="found at least two devices, cuda:0 and cpu"):
            x + torch.ones(3)
        assert (x * torch.tensor(2.0)).device == CUDA
        assert float(x.sum()) == 0.0 and bool(x.isfinite().all())
    assert log.host_reads == ["cuda", "cuda"]


def image(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    return np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (x + c * y) + c) for c in range(3)], -1).astype(np.float32)


def observation_of(task: str, tmp_path: Path):
    """An observation of `task` at its level in LEVELS (flash-no-flash: a pair of files)."""
    if task == "flash-no-flash":
        flash = tmp_path / "flash.png"
        from dip.io import write_image

        write_image(flash, image(64, 64)[::-1].copy())
        operator = make_operator(task, LEVELS[task], flash_path=str(flash))
    else:
        operator = make_operator(task, LEVELS[task])
    return operator, operator.observe(image(64, 64), seed=0)


@pytest.mark.parametrize("task", TASKS)
def test_every_task_builds_its_problem_and_applies_its_forward_operator_on_cuda(guard, task, tmp_path) -> None:
    operator, observation = observation_of(task, tmp_path)
    spec = resolve_spec(operator.paper_preset)
    with fake_cuda(guard) as log:
        problem = build_problem(observation, operator, spec, seed=0, device=torch.device("cuda"))
        tensors = [problem.net_input, problem.observed, *problem.net.state_dict().values()]
        tensors += list(problem.forward.state_dict().values()) + ([] if problem.clean is None else [problem.clean])
        assert {t.device for t in tensors} == {CUDA}
        with torch.no_grad():
            output = problem.net(problem.net_input)
            predicted = problem.forward(output)
        assert output.device == CUDA and output.dtype == torch.float32
        assert predicted.device == CUDA and predicted.dtype == torch.float32
        assert predicted.shape == problem.observed.shape
        if isinstance(problem.forward, Blur):
            assert problem.forward.adjoint(predicted).shape == output.shape
    # z is drawn on the CPU (the same bytes on every device), then moved; flash-no-flash's z is the flash photo
    assert log.generators == ([] if operator.net_input(observation) is not None else [torch.device("cpu")])


def tiny_problem(spec: str | dict = "tiny", side: int = 32, channels: int = 3) -> FitProblem:
    """A seeded net with its input, x0 and clean image, built on the CPU (the test moves them)."""
    torch.manual_seed(0)
    net = build_model(spec, channels)
    z = make_input(spec, side, side, torch.Generator().manual_seed(0))
    x0 = torch.from_numpy(image(side, side)[..., :channels].transpose(2, 0, 1)[None].copy())
    return FitProblem(net, z, torch.nn.Identity(), x0, x0.clone())


def on_cuda(problem: FitProblem) -> FitProblem:
    return FitProblem(
        problem.net.to(CUDA),
        problem.net_input.to(CUDA),
        problem.forward.to(CUDA),
        problem.observed.to(CUDA),
        None if problem.clean is None else problem.clean.to(CUDA),
    )


@pytest.mark.parametrize(
    ("preset", "precision"),
    [(preset, "bf16") for preset in PRESETS] + [("tiny", "fp32"), ("tiny", "fp16")],
)
def test_every_preset_steps_on_cuda_at_each_precision(guard, preset, precision) -> None:
    """One iteration of a fit of each preset: forward under autocast, backward, Adam (fp16: with its loss scaler).
    bf16 for every preset (the fp32 path is the same code without autocast: once, as fp16's)."""
    spec = resolve_spec(preset)
    problem = tiny_problem(spec, max(minimum_side(spec), 32))
    if preset == "flash-no-flash":
        problem.net_input = problem.observed.clone()  # its z is the flash photo
    raw: list[torch.dtype] = []
    problem.net.register_forward_hook(lambda module, inputs, output: raw.append(output.dtype))
    with fake_cuda(guard):
        problem = on_cuda(problem)
        result = fit(problem, FitSettings(iterations=1, precision=precision, watch=()), progress=False)
        params = list(problem.net.parameters())
        assert {(p.device, p.dtype) for p in params} == {(CUDA, torch.float32)}
        assert {(p.grad.device, p.grad.dtype) for p in params} == {(CUDA, torch.float32)}
    assert set(raw) == {LOW.get(precision, torch.float32)}  # the net ran under CUDA autocast
    assert (result.output.device, result.output.dtype) == (torch.device("cpu"), torch.float32)
    assert result.output.shape == problem.observed.shape


def test_under_bf16_autocast_the_convolutions_run_in_bf16_and_the_fit_reads_float32(guard) -> None:
    """What CUDA autocast runs in bf16 in the paper's net: every convolution, its BatchNorm and LeakyReLU, and the
    final sigmoid; bilinear upsampling runs in float32 (torch's CUDA autocast list), and so do the concatenation after
    it (promoted) and its BatchNorm, until the next convolution casts back. The output the fit reads is float32."""
    problem = tiny_problem("paper", 64)
    dtypes: dict[str, set[torch.dtype]] = {}

    def record(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> None:
        dtypes.setdefault(type(module).__name__, set()).add(output.dtype)

    with fake_cuda(guard):
        problem = on_cuda(problem)
        for module in problem.net.modules():
            if not list(module.children()):
                module.register_forward_hook(record)
        result = fit(problem, FitSettings(iterations=1, precision="bf16", ema=0.9, watch=()), progress=False)
    assert dtypes["Conv2d"] == {torch.bfloat16} and dtypes["Sigmoid"] == {torch.bfloat16}
    assert dtypes["Upsample"] == {torch.float32}
    assert dtypes["BatchNorm2d"] == {torch.bfloat16, torch.float32}
    assert result.output.dtype == torch.float32 and result.output_kind.startswith("average")


def every_option(**changes: object) -> FitSettings:
    """Settings that turn on every part of a fit: reg-noise, EMA, backtracking, a stopping rule that goes on
    (`es_continue`), every watching rule, frames, DIP-TV, SGLD with weight decay, checkpoints."""
    settings = {
        "iterations": 4,
        "reg_noise_std": 0.03,
        "ema": 0.9,
        "backtrack_every": 2,
        "stopping": "es-wmv",
        "es_window": 2,
        "es_patience": 2,
        "es_continue": True,
        "noise_sigma": 25.0,
        "frames": 2,
        "frame_side": 16,
        "tv_weight": 0.01,
        "langevin_sigma": 2.0,
        "langevin_burnin": 1,
        "langevin_every": 1,
        "weight_decay": 5e-8,
        "trace_every": 2,
        "checkpoint_every": 2,
    }
    return FitSettings(**{**settings, **changes})


def host_paths(saved: dict[str, tuple[torch.device, torch.dtype]]) -> set[str]:
    """The paths (numbers as *) of a checkpoint's tensors that are on the CPU."""
    return {
        "/".join("*" if part.isdigit() else part for part in path.strip("/").split("/"))
        for path, (device, _) in saved.items()
        if device.type == "cpu"
    }


def low_precision(saved: dict[str, tuple[torch.device, torch.dtype]]) -> set[str]:
    """The paths of a checkpoint's tensors in bf16 or fp16 (autocast's outputs kept as state)."""
    return {path for path, (_, dtype) in saved.items() if dtype in (torch.bfloat16, torch.float16)}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_fit_with_every_option_keeps_its_state_on_the_gpu(guard, tmp_path, precision) -> None:
    settings = every_option(precision=precision)
    problem = tiny_problem()
    with fake_cuda(guard) as log:
        result = fit(on_cuda(problem), settings, checkpoint=tmp_path / "fit.ckpt", progress=False)
    assert log.generators == [CUDA, CUDA]  # reg-noise and SGLD draw on the GPU
    assert set(result.watched) == {"es-wmv", "es-emv", "noise-level"} and result.early_stop is not None
    assert result.output_kind.startswith("posterior mean")
    for image_ in (result.output, result.last_output):
        assert (image_.device, image_.dtype, image_.is_contiguous()) == (torch.device("cpu"), torch.float32, True)
    assert [(f.pixels.device.type, f.pixels.dtype) for f in result.frames] == [("cpu", torch.uint8)] * 2
    assert log.saved and all(host_paths(saved) <= HOST_STATE and not low_precision(saved) for saved in log.saved)
    assert host_paths(log.saved[-1]) == HOST_STATE


def test_stacked_fits_with_every_option_keep_their_state_on_the_gpu(guard, tmp_path) -> None:
    settings = [every_option(precision="bf16", seed=seed) for seed in (0, 1)]
    problems = [tiny_problem() for _ in settings]
    with fake_cuda(guard) as log:
        problems = [on_cuda(problem) for problem in problems]
        checkpoints = [tmp_path / "a.ckpt", tmp_path / "b.ckpt"]
        results = fit_batch(problems, settings, checkpoints=checkpoints, progress=False)
    assert log.generators == [CUDA] * 4
    for result in results:
        assert not isinstance(result, Exception), result
        assert (result.output.device, result.output.dtype) == (torch.device("cpu"), torch.float32)
        assert result.output_kind.startswith("posterior mean")
    assert all(host_paths(saved) <= HOST_STATE and not low_precision(saved) for saved in log.saved)
    assert host_paths(log.saved[-1]) == HOST_STATE


@pytest.mark.parametrize("stacked", [False, True], ids=["single", "stacked"])
def test_a_checkpoint_written_on_the_cpu_resumes_onto_the_gpu(guard, tmp_path, stacked) -> None:
    """`map_location`: the state of a CPU fit (average, stopping rule, watchers, snapshot, Adam) comes back on the
    GPU, Adam's step counts on the host, and the resumed fit (alone or in a stack) mixes it with its CUDA outputs."""
    checkpoint = tmp_path / "fit.ckpt"
    settings = every_option(frames=0)
    first = fit(tiny_problem(), replace(settings, iterations=2), checkpoint=checkpoint, progress=False)
    assert first.iterations == 2 and checkpoint.exists()
    checkpoints = [checkpoint] + ([shutil.copy(checkpoint, tmp_path / "copy.ckpt")] if stacked else [])
    problems = [tiny_problem() for _ in checkpoints]
    with fake_cuda(guard) as log:
        problems = [on_cuda(problem) for problem in problems]
        if stacked:
            results = fit_batch(problems, [settings] * 2, checkpoints=checkpoints, progress=False)
        else:
            results = [fit(problems[0], settings, checkpoint=checkpoint, progress=False)]
    for result in results:
        assert not isinstance(result, Exception), result
        assert result.resumed_from == 2 and result.iterations == 4
    assert host_paths(log.saved[-1]) == HOST_STATE - {"frames/*/pixels"}


@pytest.mark.parametrize("stacked", [False, True], ids=["single", "stacked"])
def test_the_nan_guard_restores_the_last_good_state_on_the_gpu(guard, stacked) -> None:
    """Every loss read is NaN: the NaN guard restores the snapshot (parameters, Adam, average) `max_backtracks` times
    on the GPU, then the fit fails alone with a DivergenceError."""
    settings = FitSettings(iterations=4, ema=0.9, max_backtracks=2, watch=())
    problems = [tiny_problem() for _ in range(2 if stacked else 1)]
    with fake_cuda(guard, cuda=math.nan):
        problems = [on_cuda(problem) for problem in problems]
        if stacked:
            results = fit_batch(problems, [settings] * 2, progress=False)
        else:
            with pytest.raises(DivergenceError) as raised:
                fit(problems[0], settings, progress=False)
            results = [raised.value]
    assert all(isinstance(result, DivergenceError) and "2 backtracks" in str(result) for result in results)


def syncs_and_uploads(guard, iterations: int, stacked: bool) -> tuple[int, int]:
    """The GPU syncs and host→GPU copies of a fit of `iterations` (one trace row, backtracking check and checkpoint
    at each end), its nets already on the GPU."""
    settings = FitSettings(
        iterations=iterations,
        trace_every=iterations,
        backtrack_every=iterations,
        watch=None,
        noise_sigma=25.0,
        ema=0.9,
        stopping="es-wmv",
        es_window=2,
        es_patience=iterations,
    )
    problems = [tiny_problem() for _ in range(2 if stacked else 1)]
    with fake_cuda(guard) as log:
        problems = [on_cuda(problem) for problem in problems]
        before = len(log.uploads)
        if stacked:
            fit_batch(problems, [settings] * 2, progress=True)
        else:
            fit(problems[0], settings, progress=True)
    return log.syncs(), len(log.uploads) - before


@pytest.mark.parametrize("stacked", [False, True], ids=["single", "stacked"])
def test_the_fit_syncs_with_the_gpu_only_where_it_reads_the_loss(guard, stacked) -> None:
    """Twice the iterations, the same host syncs and host→GPU copies: nothing per iteration waits for the GPU."""
    assert syncs_and_uploads(guard, 2, stacked) == syncs_and_uploads(guard, 4, stacked)
