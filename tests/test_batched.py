"""Batched fits (`dip.fit.fit_batch`, `dip.stacked`): a batch of K fits is each fit as it runs alone.

Tolerances: fp32 on the CPU, the stacked model runs its convolutions grouped, which rounds differently from one
convolution per fit (~1e-7 relative); on these small fits that stays below 1e-5 over 50 iterations. (On larger nets
DIP with Adam is chaotic at this level: a 1e-7 change of z moves a tiny net's output by ~1e-2 in five iterations,
so there only the optimiser step is compared exactly, below.)
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import pytest
import torch
from torch.func import vmap
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from dip.errors import ConfigError, DivergenceError
from dip.fit import FitInterrupted, fit, fit_batch
from dip.fit_settings import FitSettings
from dip.fit_steps import SingleNet
from dip.models import build_model
from dip.stacked import StackedNets, stacked_conv2d
from tests.test_fit import BlindFor, NanAt, ShiftedOn, StopAfter, small_problem

SEEDS = (0, 1, 2)


def settings_of(iterations: int, **common) -> list[FitSettings]:
    """Three fits with settings of their own: seeds, output averaging on one, learning rates."""
    return [
        FitSettings(iterations=iterations, seed=0, trace_every=5, backtrack_every=10, **common),
        FitSettings(iterations=iterations, seed=1, trace_every=5, backtrack_every=10, ema=0.9, **common),
        FitSettings(iterations=iterations, seed=2, trace_every=5, backtrack_every=10, lr=0.02, **common),
    ]


def test_the_first_50_iterations_of_a_batch_of_three_are_the_three_fits():
    """Blind for 4 iterations (`BlindFor`), each fit's rule picks iteration 4, alone and in the batch: the pick of
    two computations that round differently is compared where no rounding decides it."""
    settings = settings_of(50, stopping="es-wmv", es_window=5, es_patience=10, es_continue=True, frames=3)
    settings = [replace(s, reg_noise_std=0.0) for s in settings]
    alone = [fit(small_problem(s.seed, BlindFor(4)), s, progress=False) for s in settings]
    batch = fit_batch([small_problem(s.seed, BlindFor(4)) for s in settings], settings, progress=False)
    for single, batched in zip(alone, batch, strict=True):
        assert torch.allclose(batched.output, single.output, atol=1e-5, rtol=0)
        assert torch.allclose(batched.last_output, single.last_output, atol=1e-5, rtol=0)
        losses = torch.tensor([[r["loss"] for r in run.trace] for run in (single, batched)])
        assert torch.allclose(losses[1], losses[0], rtol=1e-5, atol=0)
        assert [r["iteration"] for r in batched.trace] == [r["iteration"] for r in single.trace]
        assert batched.early_stop["selected_iteration"] == single.early_stop["selected_iteration"] == 4
        assert [f.iteration for f in batched.frames] == [f.iteration for f in single.frames]
        assert (batched.output_kind, batched.iterations) == (single.output_kind, single.iterations)


def test_a_batch_of_bayesian_dip_fits_is_the_fits_run_alone():
    """SGLD in a batch: each fit's Langevin noise (its own stream) goes into its own nets' weights, Adam's weight
    decay is per fit (without it in the stack, fit 0 ends up to 0.02 away), and the posterior means are those of
    the fits run alone; a plain fit beside them stays plain."""
    sgld = {"langevin_sigma": 2.0, "weight_decay": 5e-4, "langevin_burnin": 10, "langevin_every": 5}
    settings = [
        FitSettings(iterations=40, seed=0, **sgld),
        FitSettings(iterations=40, seed=1, **{**sgld, "weight_decay": 0.0}),
        FitSettings(iterations=40, seed=2, trace_every=5),
    ]
    alone = [fit(small_problem(s.seed), s, progress=False) for s in settings]
    batch = fit_batch([small_problem(s.seed) for s in settings], settings, progress=False)
    for single, batched in zip(alone, batch, strict=True):
        assert batched.output_kind == single.output_kind
        assert torch.allclose(batched.output, single.output, atol=1e-5, rtol=0)
    assert batch[0].output_kind == "posterior mean of 5 outputs (SGLD, after 10 iterations)"


def test_300_iteration_fits_end_within_0_05_db_of_their_single_fits():
    settings = settings_of(300)
    alone = [fit(small_problem(s.seed), s, progress=False) for s in settings]
    batch = fit_batch([small_problem(s.seed) for s in settings], settings, progress=False)
    for single, batched in zip(alone, batch, strict=True):
        assert batched.trace[-1]["psnr_gt"] == pytest.approx(single.trace[-1]["psnr_gt"], abs=0.05)


def test_a_fit_that_diverges_or_backtracks_does_so_alone():
    settings = settings_of(40)
    settings[1] = FitSettings(iterations=40, seed=1, trace_every=1, max_backtracks=2)  # NaN from the start: diverges
    settings[2] = FitSettings(iterations=60, trace_every=5, backtrack_every=5)  # a PSNR drop at iteration 10
    problems = [small_problem(0), small_problem(1, forward=NanAt()), small_problem(0, ShiftedOn(range(11, 12)))]
    first, diverged, backtracked = fit_batch(problems, settings, progress=False)
    assert isinstance(diverged, DivergenceError)
    assert backtracked.backtracks == 1 and torch.isfinite(backtracked.output).all()
    assert torch.allclose(first.output, fit(small_problem(0), settings[0], progress=False).output, atol=1e-5)
    alone = fit(small_problem(0, ShiftedOn(range(11, 12))), settings[2], progress=False)
    assert alone.backtracks == 1 and backtracked.iterations == alone.iterations == 60
    assert torch.allclose(backtracked.output, alone.output, atol=1e-5)


def test_fits_that_stop_early_leave_the_others_running():
    """Blind for 4 iterations (`BlindFor`), ES-WMV with a window of 5 picks iteration 4: the first fit stops after
    iteration 9, whatever the rounding."""
    common = {"stopping": "es-wmv", "es_window": 5, "reg_noise_std": 0.0}
    settings = [
        FitSettings(iterations=120, seed=0, es_patience=5, **common),
        FitSettings(iterations=120, seed=1, es_patience=1000, **common),
        FitSettings(iterations=60, seed=2),
    ]
    batch = fit_batch([small_problem(s.seed, BlindFor(4)) for s in settings], settings, progress=False)
    assert (batch[0].iterations, batch[0].selected_iteration) == (10, 4)
    assert batch[1].iterations == 120 and batch[2].iterations == 60
    alone = [fit(small_problem(s.seed, BlindFor(4)), s, progress=False) for s in settings]
    for single, batched in zip(alone, batch, strict=True):
        assert (batched.iterations, batched.selected_iteration) == (single.iterations, single.selected_iteration)
        assert torch.allclose(batched.output, single.output, atol=1e-5)


def test_watching_rules_run_in_a_batch_as_alone():
    """Blind for 4 iterations (`BlindFor`), ES-WMV (window 5) picks iteration 4 and ES-EMV iteration 1, alone and in
    the batch, and each fires 5 iterations later."""
    settings = [FitSettings(iterations=40, seed=seed, trace_every=5, es_window=5, es_patience=5) for seed in SEEDS]
    settings = [replace(s, reg_noise_std=0.0) for s in settings]
    alone = [fit(small_problem(s.seed, BlindFor(4)), s, progress=False) for s in settings]
    batch = fit_batch([small_problem(s.seed, BlindFor(4)) for s in settings], settings, progress=False)
    for single, batched in zip(alone, batch, strict=True):
        assert set(batched.watched) == set(single.watched) == {"es-wmv", "es-emv"}
        for rule, pick in (("es-wmv", 4), ("es-emv", 1)):
            record = single.watched[rule]
            assert batched.watched[rule]["stop_iteration"] == record["stop_iteration"] == pick + 6
            assert batched.watched[rule]["selected_iteration"] == record["selected_iteration"] == pick
            assert batched.watched[rule]["psnr_gt"] == pytest.approx(record["psnr_gt"], abs=1e-3)


def test_dip_tv_runs_in_a_batch_as_alone():
    settings = [FitSettings(iterations=40, seed=seed, tv_weight=0.01 * seed, watch=()) for seed in SEEDS]
    alone = [fit(small_problem(s.seed), s, progress=False) for s in settings]
    batch = fit_batch([small_problem(s.seed) for s in settings], settings, progress=False)
    for single, batched in zip(alone, batch, strict=True):
        assert torch.allclose(batched.output, single.output, atol=1e-5, rtol=0)


def test_an_interrupted_batch_resumes_each_fit_from_its_checkpoint(tmp_path):
    settings = settings_of(30, checkpoint_every=7)
    checkpoints = [tmp_path / f"fit{seed}.ckpt" for seed in SEEDS]
    keys = [f"fit{seed}" for seed in SEEDS]
    reference = fit_batch([small_problem(s.seed) for s in settings], settings, fingerprints=keys, progress=False)
    with pytest.raises(FitInterrupted, match="iteration 12"):
        problems = [small_problem(s.seed) for s in settings]
        fit_batch(problems, settings, fingerprints=keys, checkpoints=checkpoints, stop_event=StopAfter(12))
    assert all(path.exists() for path in checkpoints)
    problems = [small_problem(s.seed) for s in settings]
    resumed = fit_batch(problems, settings, fingerprints=keys, checkpoints=checkpoints, progress=False)
    for again, first in zip(resumed, reference, strict=True):
        assert again.resumed_from == 12
        assert torch.equal(again.output, first.output)
        assert [r["loss"] for r in again.trace] == [r["loss"] for r in first.trace]
    # a batched fit's checkpoint is a single fit's: the fit resumes alone, where it was
    single = fit(small_problem(0), settings[0], fingerprint="fit0", checkpoint=checkpoints[0], progress=False)
    assert single.resumed_from == 30 and torch.allclose(single.output, reference[0].output, atol=1e-6)


def test_one_adam_step_over_the_stack_is_each_nets_own():
    """Given the same gradients, the stacked update is torch.optim.Adam's, and a fit that does not step keeps its
    parameters and optimiser state."""
    torch.manual_seed(0)
    nets = [build_model("tiny", 3) for _ in SEEDS]
    singles = [copy.deepcopy(net) for net in nets]
    settings = [FitSettings(lr=0.01 * (seed + 1)) for seed in SEEDS]
    stacked = StackedNets(nets, settings, torch.device("cpu"))
    optimizers = [torch.optim.Adam(net.parameters(), lr=s.lr) for net, s in zip(singles, settings, strict=True)]
    generator = torch.Generator().manual_seed(0)
    for stepping in ([True, True, True], [True, False, True], [True, True, True]):
        for index, (net, optimizer) in enumerate(zip(singles, optimizers, strict=True)):
            optimizer.zero_grad()
            for name, param in net.named_parameters():
                param.grad = torch.randn(param.shape, generator=generator)
                stacked.params[name].grad = (
                    stacked.params[name].grad if index else torch.zeros_like(stacked.params[name])
                )
                stacked.params[name].grad[index] = param.grad
            if stepping[index]:
                optimizer.step()
        stacked.step(stepping)
        for index, net in enumerate(singles):
            state = stacked.state_dict(index)
            for name, param in net.named_parameters():
                assert torch.allclose(state["model"][name], param, atol=1e-6, rtol=0), name
            assert len(state["optimizer"]["state"]) == len(optimizers[index].state_dict()["state"])


class DtypesOf(TorchDispatchMode):
    """Records the dtypes each convolution and BatchNorm (forward and backward) takes and returns."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, set[tuple[str, ...]]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if "convolution" in name or "batch_norm" in name:
            tensors = [t for t in tree_leaves((args, out)) if isinstance(t, torch.Tensor) and t.is_floating_point()]
            self.seen.setdefault(name, set()).add(tuple(sorted({str(t.dtype) for t in tensors})))
        return out


def test_a_bf16_batch_computes_as_a_single_bf16_fit():
    """A bf16 batch on the CPU runs its convolutions in bf16, as a single fit and as a batch on CUDA: under `vmap`
    the CPU's autocast saw only the `aten::convolution` that conv2d is lowered to, which it does not cast, and the
    batch ran in fp32 under a bf16 label; and `vmap` added the biases after the convolutions, one bf16 rounding more.

    The nets are compared at the same parameters (one forward and backward): DIP with Adam is chaotic at rounding
    level, so after a few iterations any two arithmetics drift apart. Measured (tiny net, 32×32, under both CPU
    ISAs): a member's output is within 0.0013 (0–255, mean absolute difference) of its single bf16 fit's, which is
    0.36–0.61 from fp32's; its gradient within 0.9 % (relative) of the single bf16 fit's, which is 12–25 % from
    fp32's; under oneDNN's SSE4.1 kernels (`ONEDNN_MAX_CPU_ISA=SSE41`, no bf16 instructions) the member's output was
    0.07 of the bf16-to-fp32 distance from its single fit, hence the bound of a quarter of it. The fp32 batch of
    before was as far from bf16 as fp32 is (a ratio of about 1)."""
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    nets = [build_model("tiny", 3) for _ in range(2)]
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand(1, 8, 32, 32, generator=generator) for _ in nets]
    target = torch.rand(1, 3, 32, 32, generator=generator)

    def gradient(params) -> torch.Tensor:
        return torch.cat([param.grad.flatten() for param in params])

    def single(precision: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        outputs, gradients = [], []
        for net, net_input in zip(nets, inputs, strict=True):
            engine = SingleNet(copy.deepcopy(net), FitSettings(precision=precision), cpu)
            (output,) = engine.forward([net_input])
            engine.backward([((output - target) ** 2).mean()])
            outputs.append(output.detach())
            gradients.append(gradient(engine.net.parameters()))
        return outputs, gradients

    stacked = StackedNets([copy.deepcopy(net) for net in nets], [FitSettings(precision="bf16")] * 2, cpu)
    with DtypesOf() as dtypes:
        batched = stacked.forward(inputs)
        stacked.backward([((output - target) ** 2).mean() for output in batched])
    for name in ("convolution", "convolution_backward"):
        assert dtypes.seen[name] == {("torch.bfloat16",)}, name
    assert dtypes.seen["native_batch_norm"] == {("torch.float32",)}  # fp32 statistics, as a single fit's kernel
    (fp32, fp32_gradients), (bf16, bf16_gradients) = single("fp32"), single("bf16")
    for index, member in enumerate(batched):
        assert member.dtype == torch.float32
        distance = (bf16[index] - fp32[index]).abs().mean()
        assert (member.detach() - bf16[index]).abs().mean() < 0.25 * distance
        member_gradient = torch.cat([stacked.params[name].grad[index].flatten() for name in stacked.names])
        gradient_distance = (bf16_gradients[index] - fp32_gradients[index]).norm()
        assert (member_gradient - bf16_gradients[index]).norm() < 0.25 * gradient_distance


@pytest.mark.parametrize(
    ("options", "shared_input"),
    [
        ({"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1}, False),
        ({"stride": [2, 1], "padding": [1, 2], "dilation": [1, 2], "groups": 2}, True),
    ],
)
def test_stacked_conv2d_under_vmap_is_each_fits_conv2d(options, shared_input):
    """`stacked_conv2d`'s vmap rule (one grouped convolution, the biases inside) gives each fit's `conv2d`, forward
    and backward, with its input stacked or shared."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1 if shared_input else 3, 2, 4, 9, 8, generator=generator)[0 if shared_input else slice(None)]
    weight = torch.randn(3, 6, 4 // options["groups"], 3, 3, generator=generator, requires_grad=True)
    bias = torch.randn(3, 6, generator=generator, requires_grad=True)
    args = [options[key] for key in ("stride", "padding", "dilation", "groups")]
    batched = vmap(lambda *tensors: stacked_conv2d(*tensors, *args), in_dims=(None if shared_input else 0, 0, 0))
    out = batched(x, weight, bias)
    alone = torch.stack([torch.conv2d(x if shared_input else x[i], weight[i], bias[i], *args) for i in range(3)])
    assert torch.allclose(out, alone, atol=1e-5, rtol=0)
    gradients = [torch.autograd.grad(result.square().sum(), (weight, bias)) for result in (out, alone)]
    for batched_gradient, alone_gradient in zip(*gradients, strict=True):
        assert torch.allclose(batched_gradient, alone_gradient, atol=1e-4, rtol=1e-5)


def test_the_batched_step_copies_nothing_to_the_device_while_the_same_fits_step():
    """The mask of the fits that step goes to the device only when it changes: a host-to-device copy syncs the
    host with the GPU, and the step runs at every iteration (here on the `meta` device, whose copies are counted)."""

    class HostToDevice(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.copies = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            host = [a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor) and a.device.type == "cpu"]
            from_lists = func in (torch.tensor, torch.as_tensor)
            if isinstance(out, torch.Tensor) and out.device.type == "meta" and (host or from_lists):
                self.copies += 1
            return out

    torch.manual_seed(0)
    nets = [build_model("tiny", 3).to("meta") for _ in SEEDS]
    stacked = StackedNets(nets, [FitSettings() for _ in SEEDS], torch.device("meta"))
    for param in stacked.params.values():
        param.grad = torch.zeros_like(param)
    with HostToDevice() as counter:
        for _ in range(3):
            stacked.step([True, True, True])
    assert counter.copies == 0
    with HostToDevice() as counter:
        for stepping in ([True, False, True], [True, False, True], [True, True, True]):
            stacked.step(stepping)
    assert counter.copies == 2  # once per change


def test_a_batch_needs_one_architecture_and_precision():
    torch.manual_seed(0)
    nets = [build_model("tiny", 3), build_model("light", 3)]
    with pytest.raises(ConfigError, match="one architecture"):
        StackedNets(nets, [FitSettings(), FitSettings()], torch.device("cpu"))
    with pytest.raises(ConfigError, match="NCHW"):
        StackedNets(nets[:1], [FitSettings(channels_last=True)], torch.device("cpu"))
    assert math.isfinite(FitSettings().lr)


def test_dip_restore_fits_observations_times_seeds_into_the_workflows_run_directories(tmp_path):
    """`dip restore OBS OBS --seeds 0 1 --out DIR`: one run directory per observation and seed, named as the
    workflow names them, each the fit `dip restore OBS --seed S` makes; an observation whose step failed fails its
    fits alone (a failure record with --record-failure), the others are written."""
    import json

    import numpy as np
    from skimage import data

    from dip.cli import main
    from dip.failures import write_failure
    from dip.io import read_image, write_image
    from dip.layout import FAILURE as FAILURE_FILE

    image = tmp_path / "tiny.png"
    write_image(image, data.astronaut()[60:92, 200:232].astype(np.float32) / 255)
    observations = []
    for level in ("25", "50"):
        out = tmp_path / f"obs{level}"
        labels = ["--label", "dataset=set", "--label", f"image=img{level}"]
        assert main(["degrade", str(image), "--task", "denoising", "--level", level, *labels, "--out", str(out)]) == 0
        observations.append(str(out))
    failed = tmp_path / "failed"
    write_failure(failed, {"status": "failed", "stage": "degrade", "error": "bad", "identity": {"task": "denoising"}})
    common = ["--arch", "tiny", "--iterations", "4", "--quiet", "--threads", "1"]
    args = [*observations, str(failed), "--seeds", "0", "1", "--out", str(tmp_path / "runs"), *common]
    assert main(["restore", *args, "--record-failure", "log.txt"]) == 0
    runs = sorted(path.parent.relative_to(tmp_path / "runs") for path in (tmp_path / "runs").rglob("record.json"))
    assert [str(run) for run in runs] == [
        f"set/denoising/{level}/img{level}/dip-tiny/seed{seed}" for level in ("25", "50") for seed in (0, 1)
    ]
    assert (tmp_path / "runs/denoising/unknown/failed/dip-tiny/seed1" / FAILURE_FILE).exists()
    record = json.loads((tmp_path / "runs/set/denoising/50/img50/dip-tiny/seed1/record.json").read_text())
    assert (record["seed"], record["batch"], record["fit"]["reg_noise_std"]) == (1, 4, 1 / 20)  # σ=50's own setting
    single = tmp_path / "single"
    assert main(["restore", observations[1], "--seed", "1", "--out", str(single), *common]) == 0
    batched = read_image(tmp_path / "runs/set/denoising/50/img50/dip-tiny/seed1/restored.png")
    assert np.abs(batched - read_image(single / "restored.png")).max() <= 2 / 255
