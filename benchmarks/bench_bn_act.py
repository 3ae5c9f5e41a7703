"""BatchNorm (training mode) + LeakyReLU(0.2), eager against fused by `torch.compile`: the "fused ops" lever.

Times forward + backward of the block on one activation of the `paper` net (by default its largest: 128 channels at
512×512), after warm-up, and prints the compile time and the largest difference from eager.

    python benchmarks/bench_bn_act.py
    python benchmarks/bench_bn_act.py --channels-last --dtype bf16 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from dip.device import configure_threads, tune_cpu_allocator


def block(channels: int) -> nn.Sequential:
    """The pair the `paper` net repeats after every convolution."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, inplace=True))


def step(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """One forward + backward; returns the input's gradient."""
    x = x.detach().requires_grad_()
    module(x).backward(grad)
    assert x.grad is not None
    return x.grad


def seconds_per_step(module: nn.Module, x: torch.Tensor, grad: torch.Tensor, repeats: int) -> float:
    step(module, x, grad)
    start = time.perf_counter()
    for _ in range(repeats):
        step(module, x, grad)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    args = parser.parse_args()

    configure_threads(args.threads)
    tune_cpu_allocator()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    generator = torch.Generator().manual_seed(0)
    shape = (1, args.channels, args.size, args.size)
    x = torch.randn(shape, generator=generator).to(dtype=dtype, memory_format=layout)
    grad = torch.randn(shape, generator=generator).to(dtype=dtype, memory_format=layout)
    eager = block(args.channels).to(dtype=dtype, memory_format=layout)
    fused = block(args.channels).to(dtype=dtype, memory_format=layout)
    fused.load_state_dict(eager.state_dict())

    start = time.perf_counter()
    compiled = torch.compile(fused)
    expected, got = step(eager, x, grad), step(compiled, x, grad)
    compile_seconds = time.perf_counter() - start
    difference = float((expected.float() - got.float()).abs().max())

    eager_seconds = seconds_per_step(eager, x, grad, args.repeats)
    fused_seconds = seconds_per_step(compiled, x, grad, args.repeats)
    print(f"BatchNorm + LeakyReLU, {shape}, {args.dtype}, {'channels_last' if args.channels_last else 'NCHW'}")
    print(f"eager:    {eager_seconds * 1e3:8.1f} ms per forward + backward")
    speedup = eager_seconds / fused_seconds
    print(f"compiled: {fused_seconds * 1e3:8.1f} ms ({speedup:.2f}x), compile {compile_seconds:.0f} s")
    print(f"largest difference of the input gradient: {difference:.2e}")


if __name__ == "__main__":
    main()
