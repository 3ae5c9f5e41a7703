"""The authors' benchmark driver (orig_dip_bench.py, carried by prepare.sh) under a named float32 arithmetic, so that
their row and ours compare like with like on CUDA:

- `ieee`: TF32 off for cuDNN's convolutions and cuBLAS's matmuls, what our `fp32` runs;
- `tf32`: TF32 on for both, what our `tf32` runs (their notebooks, left alone, get cuDNN's default: TF32
  convolutions, IEEE matmuls; the paper net's arithmetic is its convolutions).

cuDNN's autotuning stays off, as in their notebooks. The driver itself is run unchanged (runpy, as `__main__`).

    python benchmarks/gpu/authors.py --arithmetic ieee DRIVER --repo AUTHORS --device cuda --mode denoise ...
"""

from __future__ import annotations

import argparse
import runpy
import sys

ARITHMETIC = {"ieee": "fp32", "tf32": "tf32"}
"""The arithmetic named here -> the precision of ours that runs it (dip.device.configure_cuda)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arithmetic", choices=sorted(ARITHMETIC), required=True)
    parser.add_argument("driver", help="orig_dip_bench.py; the arguments after it are the driver's")
    args, driver_args = parser.parse_known_args()
    import torch

    from dip.device import configure_cuda

    device = driver_args[driver_args.index("--device") + 1] if "--device" in driver_args else "cpu"
    configure_cuda(torch.device(device), ARITHMETIC[args.arithmetic], autotune=False)
    conv, matmul = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    print(f"authors.py: {args.arithmetic} on {device}: convolutions {conv}, matmuls {matmul}", flush=True)
    sys.argv = [args.driver, *driver_args]
    runpy.run_path(args.driver, run_name="__main__")


if __name__ == "__main__":
    main()
