"""The engine of batched fits: K nets of one architecture, fitted at one image size, as one stacked model.

`torch.func.stack_module_state` stacks the K nets' parameters and buffers; `vmap` over `functional_call` runs them in
one call (PyTorch turns the batched convolutions into grouped ones). BatchNorm stays per fit and in training mode, its
running statistics stacked like the parameters. Adam is elementwise, so one update over the stack is each fit's own
update; each fit keeps its own step count, learning rate and weight decay (Adam's L2 term, which Bayesian DIP's SGLD
sets), and a fit that does not step (it backtracked, stopped or diverged) keeps its parameters and optimiser state as
they were. Each fit's part is saved and loaded in the format of one `nn.Module` and one `torch.optim.Adam`, so its
checkpoint is the one a single fit writes.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from dip.device import autocast
from dip.errors import ConfigError

if TYPE_CHECKING:
    from dip.fit import FitSettings

BETAS, EPS = (0.9, 0.999), 1e-8
"""`torch.optim.Adam`'s defaults, which the single fit uses."""


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
        self.exp_avg = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self.exp_avg_sq = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self.masks: dict[tuple[bool, ...], torch.Tensor] = {}
        """Which fits step, on the device, by pattern: made once each (a copy to a GPU waits for it)."""
        self.param_groups = [
            torch.optim.Adam(nets[0].parameters(), lr=s.lr, weight_decay=s.weight_decay).state_dict()["param_groups"][0]
            for s in settings
        ]
        self._run = vmap(self._one)

    def _one(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        for param in self.params.values():
            param.grad = None
        with autocast(self.precision, self.device):
            outputs = self._run(self.params, self.buffers, torch.stack(inputs))
        return list(outputs.float().unbind(0))

    def backward(self, losses: list[torch.Tensor]) -> None:
        torch.stack(losses).sum().backward()  # each fit's gradient is its own loss's: the sum couples nothing

    @torch.no_grad()
    def step(self, stepping: list[bool]) -> None:
        """Adam (as `torch.optim.Adam` computes it) for the fits marked True."""
        mask = self.masks.get(tuple(stepping))
        if mask is None:
            mask = self.masks[tuple(stepping)] = torch.tensor(stepping, device=self.device)
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
        with autocast(self.precision, self.device):
            return list(self._run(self.params, self.buffers, torch.stack(inputs)).float().unbind(0))

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
