"""The engine of batched fits: K nets of one architecture, fitted at one image size, as one stacked model.

`torch.func.stack_module_state` stacks the K nets' parameters and buffers; `vmap` over `functional_call` runs them in
one call (PyTorch turns the batched convolutions into grouped ones). BatchNorm stays per fit and in training mode, its
running statistics stacked like the parameters. Under autocast (bf16) the nets compute as a single fit's
(`AutocastUnderVmap`). Adam is elementwise, so one update over the stack is each fit's own update; each fit keeps its
own step count, learning rate and weight decay (Adam's L2 term, which Bayesian DIP's SGLD sets), and a fit that does
not step (it backtracked, stopped or diverged) keeps its parameters and optimiser state as they were. Each fit's part
is saved and loaded in the format of one `nn.Module` and one `torch.optim.Adam`, so its checkpoint is the one a single
fit writes.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.modules.utils import _pair
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from dip.device import autocast
from dip.errors import ConfigError
from dip.fit_settings import FitSettings

BETAS, EPS = (0.9, 0.999), 1e-8
"""`torch.optim.Adam`'s defaults, which the single fit uses."""

CONVOLUTIONS = frozenset(
    (torch.conv1d, torch.conv2d, torch.conv3d, torch.conv_transpose1d, torch.conv_transpose2d, torch.conv_transpose3d)
)
"""The convolutions that autocast casts on every device where it sees them (`F.conv2d` is `torch.conv2d`)."""


@torch.library.custom_op("dip::stacked_conv2d", mutates_args=())
def stacked_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
) -> torch.Tensor:
    """`torch.conv2d` with a bias, whose `vmap` (`_stacked_conv2d_rule`) adds the stacked bias inside the grouped
    convolution, as one fit's kernel adds its bias: `vmap`'s own rule adds it after, one rounding more (in bf16)."""
    return torch.conv2d(x, weight, bias, stride, padding, dilation, groups)


def _stacked_conv2d_rule(
    info: Any, in_dims: tuple, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *options: Any
) -> tuple[torch.Tensor, int]:
    """K convolutions as one with K × groups groups, each fit's bias in it: (N, K, C_out, H, W), batched on dim 1."""
    stride, padding, dilation, groups = options
    stacked = [
        tensor.movedim(dim, 0) if dim is not None else tensor.expand(info.batch_size, *tensor.shape)
        for tensor, dim in zip((x, weight, bias), in_dims[:3], strict=True)
    ]
    x, weight, bias = stacked[0].transpose(0, 1), stacked[1], stacked[2]  # x: (N, K, C_in, H, W)
    grouped = x.reshape(x.shape[0], -1, *x.shape[3:])
    out = torch.conv2d(
        grouped, weight.flatten(0, 1), bias.flatten(), stride, padding, dilation, groups * info.batch_size
    )
    return out.unflatten(1, (info.batch_size, -1)), 1


stacked_conv2d.register_vmap(_stacked_conv2d_rule)


def _conv2d_arguments(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> tuple:
    return input, weight, bias, stride, padding, dilation, groups


class AutocastUnderVmap(TorchFunctionMode):
    """What autocast does to one fit's net, done to nets run under `vmap`.

    In a single fit, autocast casts each convolution's input, weight and bias to its dtype (bf16) and the convolution
    runs there; BatchNorm then takes that bf16 input with its fp32 parameters and statistics, computes in fp32 and
    returns bf16. Under `vmap` the batching rule takes the convolution first and hands autocast the
    `aten::convolution` it lowers it to, which CUDA's autocast casts but the CPU's does not: a bf16 batch on the CPU
    ran its convolutions in fp32. This mode casts them before `vmap` sees them (the fp32 master weights are cast, so
    their gradients are fp32), and runs BatchNorm of a bf16 input in fp32 and returns bf16, as the single fit's
    kernel does (`vmap`'s BatchNorm with stacked fp32 statistics takes no bf16 input). Every other op reaches
    autocast as in a single fit. `vmap`'s rule adds a stacked bias after the convolution, a second bf16 rounding on
    every device, where a single fit's kernel adds it before rounding: a 2-D convolution with a bias (every conv of
    the nets but the U-Net's transposed ones) runs as `stacked_conv2d`, whose rule adds it inside."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in CONVOLUTIONS:
            args, kwargs = tree_map(self._cast, (args, kwargs))
            if func is torch.conv2d:
                x, weight, bias, stride, padding, dilation, groups = _conv2d_arguments(*args, **kwargs)
                if bias is not None and not isinstance(padding, str):
                    options = [list(_pair(option)) for option in (stride, padding, dilation)]
                    return stacked_conv2d(x, weight, bias, *options, groups)
        elif func is F.batch_norm and args[0].dtype == self.dtype:
            return func(args[0].float(), *args[1:], **kwargs).to(self.dtype)
        return func(*args, **kwargs)

    def _cast(self, value: Any) -> Any:
        return value.to(self.dtype) if isinstance(value, torch.Tensor) and value.is_floating_point() else value


def autocast_under_vmap(device: torch.device) -> contextlib.AbstractContextManager:
    """`AutocastUnderVmap` with autocast's dtype where autocast is on; nothing (no mode, no cost per op) elsewhere."""
    if not torch.is_autocast_enabled(device.type):
        return contextlib.nullcontext()
    return AutocastUnderVmap(torch.get_autocast_dtype(device.type))


class StackedNets:
    """K nets of one architecture as one stacked model, each with its own Adam state."""

    memory_format = torch.contiguous_format

    def __init__(self, nets: list[nn.Module], settings: list[FitSettings], device: torch.device) -> None:
        check_stackable(nets, settings)
        for net in nets:
            net.train()  # BatchNorm in training mode for the whole fit, as in the authors' code
        self.size, self.device, self.precision = len(nets), device, settings[0].precision
        self.params, self.buffers = stack_module_state(nets)
        self.names = list(self.params)
        self.base = copy.deepcopy(nets[0]).to("meta")
        self.lr = torch.tensor([s.lr for s in settings], dtype=torch.float64, device=device)
        self.weight_decay = torch.tensor([s.weight_decay for s in settings], device=device)
        self.decays = any(s.weight_decay > 0 for s in settings)  # known on the host: no sync per step
        self.steps = torch.zeros(self.size, dtype=torch.float64, device=device)
        self.stepping, self.mask = [True] * self.size, torch.ones(self.size, dtype=torch.bool, device=device)
        """The fits that stepped last, on the host and on the device: copied there only when they change."""
        self.exp_avg = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self.exp_avg_sq = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self.param_groups = [
            torch.optim.Adam(nets[0].parameters(), lr=s.lr, weight_decay=s.weight_decay).state_dict()["param_groups"][0]
            for s in settings
        ]
        self._run = vmap(self._one)

    def _one(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def _outputs(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        with autocast(self.precision, self.device), autocast_under_vmap(self.device):
            outputs = self._run(self.params, self.buffers, torch.stack(inputs))
        return list(outputs.float().unbind(0))

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        for param in self.params.values():
            param.grad = None
        return self._outputs(inputs)

    def backward(self, losses: list[torch.Tensor]) -> None:
        torch.stack(losses).sum().backward()  # each fit's gradient is its own loss's: the sum couples nothing

    @torch.no_grad()
    def step(self, stepping: list[bool]) -> None:
        """Adam (as `torch.optim.Adam` computes it) for the fits marked True; the mask goes to the device only when it
        changed (a host-to-device copy syncs, and this runs at every iteration)."""
        if stepping != self.stepping:
            self.stepping, self.mask = list(stepping), torch.tensor(stepping, device=self.device)
        mask = self.mask
        self.steps = torch.where(mask, self.steps + 1, self.steps)
        beta1, beta2 = BETAS
        step_size = (self.lr / (1 - beta1**self.steps)).float()
        correction2 = ((1 - beta2**self.steps) ** 0.5).float()
        for name, param in self.params.items():
            shape = (self.size,) + (1,) * (param.dim() - 1)
            keep = mask.view(shape)
            grad = param.grad
            if self.decays:
                grad = grad.add(self.weight_decay.view(shape) * param)  # Adam's weight decay: an L2 term's gradient
            exp_avg = torch.where(keep, self.exp_avg[name].lerp(grad, 1 - beta1), self.exp_avg[name])
            exp_avg_sq = self.exp_avg_sq[name].mul(beta2).addcmul_(grad, grad, value=1 - beta2)
            exp_avg_sq = torch.where(keep, exp_avg_sq, self.exp_avg_sq[name])
            denom = (exp_avg_sq.sqrt() / correction2.view(shape)).add_(EPS)
            updated = param - step_size.view(shape) * exp_avg / denom
            param.copy_(torch.where(keep, updated, param))
            self.exp_avg[name], self.exp_avg_sq[name] = exp_avg, exp_avg_sq

    def conv_weights(self, index: int) -> list[torch.Tensor]:
        """Fit `index`'s convolution weights, as views into the stack (where SGLD adds its noise)."""
        return [param[index] for param in self.params.values() if param.dim() == 5]

    @torch.no_grad()
    def evaluate(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return self._outputs(inputs)

    def state_dict(self, index: int) -> dict[str, Any]:
        """Fit `index`'s net and Adam state, copied out of the stack, as `nn.Module` and `Adam` state dicts."""
        model = {name: tensor[index].detach().clone() for name, tensor in {**self.params, **self.buffers}.items()}
        state: dict[int, dict[str, torch.Tensor]] = {}
        if self.steps[index] > 0:  # Adam has no state before its first step
            step = self.steps[index].float().cpu()
            for i, name in enumerate(self.names):
                exp_avg, exp_avg_sq = self.exp_avg[name][index].clone(), self.exp_avg_sq[name][index].clone()
                state[i] = {"step": step.clone(), "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        group = {**self.param_groups[index], "params": list(range(len(self.names)))}
        return {"model": model, "optimizer": {"state": state, "param_groups": [group]}}

    @torch.no_grad()
    def load_state_dict(self, index: int, state: dict[str, Any]) -> None:
        for name, tensor in {**self.params, **self.buffers}.items():
            tensor[index].copy_(state["model"][name])
        adam = state["optimizer"]["state"]
        self.steps[index] = float(adam[0]["step"]) if adam else 0.0
        for i, name in enumerate(self.names):
            self.exp_avg[name][index] = adam[i]["exp_avg"] if adam else 0
            self.exp_avg_sq[name][index] = adam[i]["exp_avg_sq"] if adam else 0


def check_stackable(nets: list[nn.Module], settings: list[FitSettings]) -> None:
    """Nets of one architecture (the same parameter and buffer shapes), run at one precision in NCHW."""
    shapes = [[(name, tuple(t.shape)) for name, t in net.state_dict().items()] for net in nets]
    if any(shape != shapes[0] for shape in shapes[1:]):
        raise ConfigError("batched fits need nets of one architecture")
    if len({s.precision for s in settings}) > 1 or settings[0].precision == "fp16":
        raise ConfigError("batched fits run at one precision, fp32 or bf16 (fp16 loss scaling is per fit)")
    if any(s.channels_last for s in settings):
        raise ConfigError("batched fits run in NCHW: leave channels_last off")
