"""What saving frames costs a fit: the same fit with and without `--frames`, timed in one process, alternately.

Runs the `tiny` net on a 128×128 denoising observation (scikit-image's astronaut) through `dip.restoration.restore`,
the code `dip restore` runs, and writes the frames as `dip restore` does; checks that the outputs are identical. Wall
and CPU time (one thread) are both given, best of the fits: on a shared machine the CPU time is the steadier.

    python benchmarks/bench_frames.py                          # 300 iterations, 40 frames, 3 fits each
    python benchmarks/bench_frames.py --iterations 500 --frames 60 --rounds 5
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from skimage import data

from dip.fit_settings import FitSettings
from dip.frames import FrameRecorder, write_frames
from dip.io import to_numpy
from dip.models import resolve_spec
from dip.restoration import restore
from dip.tasks import make_operator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="pairs of fits (without, with frames), alternated")
    args = parser.parse_args()
    torch.set_num_threads(1)

    image = data.astronaut()[100 : 100 + args.size, 150 : 150 + args.size].astype(np.float32) / 255
    operator = make_operator("denoising", "25")
    observation = operator.observe(image, seed=0)
    plain = FitSettings(**{**operator.paper_fit(), "iterations": args.iterations})
    framed = replace(plain, frames=args.frames)
    times: dict[str, dict[int, list[float]]] = {"wall": {0: [], args.frames: []}, "cpu": {0: [], args.frames: []}}
    outputs = {}
    spec, cpu = resolve_spec("tiny"), torch.device("cpu")
    restore(observation, operator, spec, replace(plain, iterations=5), device=cpu)  # warm-up, not timed
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for settings in (plain, framed):
                wall, processor = time.perf_counter(), time.process_time()
                result, _ = restore(observation, operator, spec, settings, device=cpu)
                write_frames(Path(folder), result.frames, image.shape[:2])
                times["wall"][settings.frames].append(time.perf_counter() - wall)
                times["cpu"][settings.frames].append(time.process_time() - processor)
                outputs[settings.frames] = to_numpy(result.output)
    assert np.array_equal(outputs[0], outputs[args.frames]), "frames changed the fit's output"
    print(f"tiny net, {args.size}×{args.size}, {args.iterations} iterations, {args.rounds} fits each (alternated)")
    for clock, seconds in times.items():
        without, with_frames = min(seconds[0]), min(seconds[args.frames])
        listed = {count: ", ".join(f"{s:.2f}" for s in values) for count, values in seconds.items()}
        print(
            f"  {clock:>4} time, best of each: without frames {without:.2f} s, with {args.frames} frames "
            f"{with_frames:.2f} s: {100 * (with_frames / without - 1):+.1f} %   (without: {listed[0]}; with: "
            f"{listed[args.frames]})"
        )
    alone = min(capture_seconds(args, image) for _ in range(3))
    print(f"  taking and writing the {args.frames} frames alone: {1000 * alone:.0f} ms; outputs identical")


def capture_seconds(args: argparse.Namespace, image: np.ndarray) -> float:
    """Seconds to take `args.frames` frames (the image under fading noise, as a fit's outputs), with their PSNRs,
    and to write them."""
    generator = torch.Generator().manual_seed(0)
    clean = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()
    fading = [clean + torch.randn(clean.shape, generator=generator) / (2 + i) for i in range(args.frames)]
    recorder = FrameRecorder(args.iterations, args.frames, side=256)
    start = time.perf_counter()
    for iteration, output in zip(recorder.schedule, fading, strict=True):
        psnr = -10 * math.log10(float(torch.mean((output.clamp(0, 1) - clean) ** 2)))
        recorder.capture(iteration, output, psnr, psnr)
    with tempfile.TemporaryDirectory() as folder:
        write_frames(Path(folder), recorder.frames, image.shape[:2])
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
