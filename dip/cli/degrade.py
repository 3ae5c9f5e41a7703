"""Make the observation x0 of a clean image for a task and level; writes an observation directory.

Levels: denoising "25" (Gaussian σ on 0–255) or a noise kind at an ImageNet-C severity 1–5, "impulse-2" (salt and
pepper), "shot-3" (Poisson), "speckle-4" (multiplicative); super-resolution "4" (factor 2, 3, 4, 8; LR by PIL Lanczos,
the DIP authors' convention) or "4-bicubic" (MATLAB-style bicubic LR, the common SR benchmarks' convention);
inpainting "random50" (50 % of pixels dropped; "random98" keeps 2 %), "text", "box25" (a centred box of 25 % of the
area), "file" (with --mask-file); jpeg "10" (the decoded JPEG at quality 10: Pillow, 4:2:0 chroma, baseline, not
optimised); deblurring "gauss1.6-n2" (Gaussian kernel σ = 1.6 px, noise σ = 2 on 0–255) or "motion9-45deg-n2" (a
straight motion blur 9 px long at 45°), with a mirror boundary (the observation keeps the image's size);
flash-no-flash "pair" (the image is the no-flash photo, --flash-file its flash photo, which becomes the net's input z).
The same image, task, level and seed give the same bytes.

Your own photo, already degraded (no ground truth: no PSNR, the report shows the images): --observed takes it as x0
as it is. Super-resolution: the photo is the low-resolution image, the output is factor × larger; denoising: the level
is the photo's noise σ; inpainting: level "file" with --mask-file (white = known pixels). Flash-no-flash has no ground
truth either.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dip import api, outputs
from dip.errors import ConfigError
from dip.tasks import TASKS


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
    parser.add_argument(
        "image", type=Path, help="clean image (PNG, JPEG, TIFF); with --observed, the observation itself"
    )
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--level", required=True, help="corruption level (see above)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise / mask")
    parser.add_argument("--mask-file", type=Path, help="mask image for inpainting level 'file' (white = known)")
    parser.add_argument("--flash-file", type=Path, help="flash-no-flash: the flash photo of the pair (the net's input)")
    parser.add_argument(
        "--observed",
        action="store_true",
        help="the image is already degraded (your own photo): x0 as it is, no ground truth, no PSNR",
    )
    parser.add_argument("--multiple", type=int, default=32, help="centre-crop so both sides divide by this")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="label to record")
    parser.add_argument("--out", required=True, help="observation directory to write")


def run(args: argparse.Namespace) -> int:
    api.degrade(
        args.image,
        args.task,
        args.level,
        seed=args.seed,
        mask_file=args.mask_file,
        flash_file=args.flash_file,
        observed=args.observed,
        multiple=args.multiple,
        labels=parse_labels(args.label),
        out=args.out,
    )
    return 0


def identity(args: argparse.Namespace) -> dict[str, object]:
    return {"task": args.task, "level": args.level, **parse_labels(args.label)}


def record_failure(args: argparse.Namespace, record: dict) -> bool:
    outputs.write_failure(args.out, outputs.OBSERVATION, record)
    return True
