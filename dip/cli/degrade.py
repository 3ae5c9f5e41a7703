"""Make the observation x0 of a clean image for a task and level; writes an observation directory.

Levels: denoising "25" (σ on 0–255); super-resolution "4" (factor 2, 3, 4, 8; LR by PIL Lanczos, the DIP authors'
convention) or "4-bicubic" (MATLAB-style bicubic LR, the common SR benchmarks' convention); inpainting "random50" (50 %
of pixels dropped), "text", "box25" (a centred box of 25 % of the area), "file" (with --mask-file).
The same image, task, level and seed give the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dip.datasets import exported_source
from dip.errors import ConfigError
from dip.failures import check_upstream, write_failure
from dip.io import read_image
from dip.operators import TASKS, make_operator, save_observation


def parse_labels(pairs: list[str]) -> dict[str, str]:
    """KEY=VALUE strings to a dict (labels carried into every record, e.g. dataset=set5 image=baby)."""
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--label {pair!r} is not KEY=VALUE")
        labels[key] = value
    return labels


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, help="clean image (PNG, JPEG, TIFF)")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--level", required=True, help="corruption level (see above)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise / mask")
    parser.add_argument("--mask-file", type=Path, help="mask image for inpainting level 'file' (white = known)")
    parser.add_argument("--multiple", type=int, default=32, help="centre-crop so both sides divide by this")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="label to record")
    parser.add_argument("--out", type=Path, required=True, help="observation directory to write")


def run(args: argparse.Namespace) -> int:
    if args.multiple < 1:
        raise ConfigError(f"--multiple must be ≥ 1, got {args.multiple}")
    labels = parse_labels(args.label)
    for path in (args.image, args.mask_file):
        if path is not None:
            check_upstream(path)
    operator = make_operator(args.task, args.level, mask_path=args.mask_file)
    clean = read_image(args.image)
    source = exported_source(args.image)
    observation = operator.observe(clean, args.seed, multiple=args.multiple, source=source, labels=labels)
    save_observation(observation, args.out)
    return 0


def identity(args: argparse.Namespace) -> dict[str, object]:
    return {"task": args.task, "level": args.level, **parse_labels(args.label)}


def record_failure(args: argparse.Namespace, record: dict) -> bool:
    write_failure(args.out, record)
    return True
