"""List, download (verified by SHA-256) and export datasets: embedded samples, local folders, public sets.

`dip datasets list` shows the registry; `images NAME` lists a dataset's image names; `fetch NAME` downloads a public
set into the cache; `export NAME --out DIR` writes its images as DIR/<image>.png (optionally only some, shrunk and
centre-cropped). NAME may also be the path of a local folder of images.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tabulate import tabulate

from dip import datasets, outputs
from dip.errors import ConfigError
from dip.io import center_crop, shrink, write_image
from dip.replacing import building, locked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "images", "fetch", "export"))
    parser.add_argument("name", nargs="?", help="dataset name or folder path (not for `list`)")
    parser.add_argument("--out", help="export: directory to write the PNG files into")
    parser.add_argument("--images", nargs="+", help="export: only these images (default: all)")
    parser.add_argument(
        "--shrink", type=int, metavar="SIDE", help="export: scale each image down so that its shorter side is SIDE"
    )
    parser.add_argument("--crop", type=int, help="export: centre-crop each image to at most CROP×CROP pixels")


def export(
    name: str, out: str | Path, images: list[str] | None, crop: int | None, shrink_to: int | None = None
) -> list[Path]:
    """Write the chosen images of a dataset as PNG files into `out` (new, or an earlier export: `dip.outputs`), each
    scaled down to `shrink_to` (its shorter side) then centre-cropped to `crop`; returns their paths."""
    out = outputs.claim(out, outputs.IMAGES, inputs=[name])
    for flag, value in (("--crop", crop), ("--shrink", shrink_to)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be ≥ 1, got {value}")
    written, sources = [], {}
    with locked(out), building(out, outputs.IMAGES, adds=True) as folder:  # added to an earlier export, if any
        for image_name in images or datasets.list_images(name):
            target = folder / f"{image_name}.png"
            source = datasets.image_path(name, image_name)
            image = datasets.load(name, image_name)  # read even when copied: a bad file is named here, not its copy
            made = []  # what was done to the source, for messages that name it
            if crop is None and shrink_to is None and source.suffix.lower() == ".png":
                shutil.copyfile(source, target)
            else:
                if shrink_to is not None:
                    image = shrink(image, shrink_to)
                    made.append(f"shrunk to {image.shape[0]}×{image.shape[1]}")
                if crop is not None:
                    image, _ = center_crop(image, min(crop, image.shape[0]), min(crop, image.shape[1]))
                    made.append(f"centre-cropped to {image.shape[0]}×{image.shape[1]}")
                write_image(target, image)
            written.append(out / target.name)
            sources[target.name] = f"{source} ({', '.join(made)})" if made else str(source)
        datasets.record_sources(folder, sources, earlier=out)
    return written


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        rows = [[d.name, d.kind, d.description, d.source] for d in datasets.DATASETS.values()]
        rows += [[name, "folder only", note, ""] for name, note in datasets.FOLDER_ONLY.items()]
        print(tabulate(rows, headers=["dataset", "kind", "description", "source / licence"]))
        return 0
    if not args.name:
        raise ConfigError(f"`dip datasets {args.action}` needs a dataset name")
    if args.action == "images":
        print("\n".join(datasets.list_images(args.name)))
    elif args.action == "fetch":
        paths = datasets.fetch(args.name, progressbar=sys.stderr.isatty())
        print(f"{len(paths)} images verified in {datasets.cache_dir() / args.name}")
    else:
        if args.out is None:
            raise ConfigError("`dip datasets export` needs --out DIR")
        for path in export(args.name, args.out, args.images, args.crop, args.shrink):
            print(path)
    return 0


def identity(args: argparse.Namespace) -> dict[str, object]:
    return {"source": args.name, "image": " ".join(args.images or [])}


def record_failure(args: argparse.Namespace, record: dict) -> bool:
    """Record a failed `export` in its --out folder; other actions have no output to put it in."""
    if args.action != "export" or args.out is None:
        return False
    outputs.write_failure(args.out, outputs.IMAGES, record)
    return True
