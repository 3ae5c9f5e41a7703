"""Write a static results viewer of a summary CSV (from `dip aggregate`) into a folder: OUT/index.html opens from
file:// and offline, with no network access.

Comparison: per dataset, task, level and image, the ground truth, the observation and every method's output at the
same place and size (number keys or hovering switch them), a wipe between any two, a zoomed crop of each that follows
the pointer, and each method's PSNR/SSIM with its protocol. Restoration process: the frames of a DIP run (saved by
`dip restore --frames N`) stepped with the arrow keys, a slider or a swipe, beside its PSNR curves with the current
frame, the early-stopping rule's pick and the best iteration marked. Failed runs are shown as missing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dip.outputs import VIEWER, claim
from dip.report.viewer.caps import ViewerCaps

DEFAULTS = ViewerCaps()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("summary", type=Path, help="summary CSV written by `dip aggregate`")
    parser.add_argument("--out", required=True, help="folder to write (new, empty or an earlier viewer)")
    parser.add_argument(
        "--image-side",
        type=int,
        default=DEFAULTS.image_side,
        metavar="PX",
        help="shrink larger images to at most PX on their longer side",
    )
    parser.add_argument(
        "--frame-side",
        type=int,
        default=DEFAULTS.frame_side,
        metavar="PX",
        help="shrink larger frames to at most PX on their longer side",
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=DEFAULTS.max_frames,
        metavar="N",
        help="show at most N frames of a run (evenly picked among those it saved, first and last kept)",
    )


def run(args: argparse.Namespace) -> int:
    from dip.report.aggregate import read_table
    from dip.report.viewer.write import write_viewer

    out = claim(args.out, VIEWER, inputs=[args.summary])
    caps = ViewerCaps(image_side=args.image_side, frame_side=args.frame_side, max_frames=args.max_frames)
    data = write_viewer(read_table(args.summary), out, caps)
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    print(
        f"{len(data['observations'])} observations, {len(data['runs'])} DIP runs -> {out / 'index.html'} "
        f"({size / 1e6:.1f} MB)"
    )
    return 0
