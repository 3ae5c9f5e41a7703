"""Score a run against the clean image (PSNR, SSIM under a named protocol); writes metrics.json.

Protocol `auto`: `y-dip` for super-resolution (the authors' script), `rgb` otherwise. Super-resolution runs are also
scored under `y-matlab` (Y channel, shave = factor), reported in the same record.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dip.io import read_image
from dip.metrics import PROTOCOLS, default_protocol, evaluate
from dip.operators import load_observation
from dip.record import read_json, write_json

RECORDED_META = ("task", "level", "factor", "lr", "sigma")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="run directory with restored.png and record.json")
    parser.add_argument("--observation", type=Path, required=True, help="the observation directory of the run")
    parser.add_argument("--protocol", choices=("auto", *PROTOCOLS), default="auto")
    parser.add_argument("--out", type=Path, required=True, help="metrics.json to write")


def run(args: argparse.Namespace) -> int:
    observation = load_observation(args.observation)
    record = read_json(args.run / "record.json")
    restored = read_image(args.run / "restored.png")
    meta = observation.meta
    task, factor = meta["task"], meta.get("factor")
    protocol = default_protocol(task) if args.protocol == "auto" else args.protocol
    scores = evaluate(restored, observation.clean, protocol=protocol, factor=factor)
    metrics = {key: meta[key] for key in RECORDED_META if key in meta}
    metrics.update(meta.get("labels", {}))
    metrics.update(
        method=record["method"],
        variant=record.get("variant", ""),
        seed=record.get("seed", 0),
        protocol=protocol,
        psnr=scores["psnr"],
        ssim=scores["ssim"],
        ssim_window=scores["ssim_window"],
        iterations=record.get("iterations", 0),
        seconds=record.get("seconds"),
        device=record.get("device", ""),
        run_dir=str(args.run),
    )
    if task == "super-resolution":
        matlab = evaluate(restored, observation.clean, protocol="y-matlab", factor=factor)
        metrics.update(psnr_y_matlab=matlab["psnr"], ssim_y_matlab=matlab["ssim"])
    if observation.observed.shape == observation.clean.shape:
        metrics["psnr_observed"] = evaluate(observation.observed, observation.clean, protocol=protocol)["psnr"]
    write_json(args.out, metrics)
    return 0
