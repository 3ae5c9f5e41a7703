"""fp32 against `--precision auto` at the paper's fit settings: the same observations and seeds, restored twice.

    python benchmarks/precision_parity.py IMAGE [IMAGE ...] --task denoising --level 25 --crop 96 \
        --seeds 0 1 --work /tmp/parity-denoising

Each image is centre-cropped to `--crop` px (the paper's images take hours per fit on a CPU), degraded once per seed
(`dip degrade --seed S`), restored with the task's paper settings and the paper net under each precision
(`dip restore --precision P --threads 1 --seed S`) and scored (`dip evaluate`). A fit whose folder already holds a
record is not run again, so an interrupted measurement goes on where it stopped. Prints one row per image and seed
(PSNR of the paper's output under each precision and their difference) and, per precision, the mean over every
fit, its seed means' spread and the mean difference with its standard error: with several seeds, fp32 and bf16 fits
part ways within a few hundred iterations, so a single pair's difference is mostly seed-to-seed spread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

from PIL import Image

PRECISIONS = {"fp32": [], "auto": ["--channels-last"]}
"""Each precision and the flags it runs with: `auto` is bf16 with channels_last where the CPU computes bf16 natively."""


def centre_crop(image: Path, side: int, out: Path) -> Path:
    """`image`'s centre `side` × `side` pixels as a PNG in `out` (once)."""
    target = out / f"{image.stem}-{side}.png"
    if not target.exists():
        with Image.open(image) as opened:
            rgb = opened.convert("RGB")
        left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
        if left < 0 or top < 0:
            raise SystemExit(f"{image}: smaller than {side} px")
        out.mkdir(parents=True, exist_ok=True)
        rgb.crop((left, top, left + side, top + side)).save(target)
    return target


def run(*command: object) -> None:
    subprocess.run([str(part) for part in command], check=True)


def fit(observation: Path, precision: str, seed: int, run_dir: Path, extra: list[str]) -> dict:
    """The metrics of one fit (run and scored once)."""
    metrics = run_dir.parent / f"{run_dir.name}.json"
    if not metrics.exists():
        if not (run_dir / "record.json").exists():
            run(
                "dip",
                "restore",
                observation,
                "--precision",
                precision,
                *PRECISIONS[precision],
                "--seed",
                seed,
                "--threads",
                1,
                "--quiet",
                "--out",
                run_dir,
                *extra,
            )
        run("dip", "evaluate", run_dir, "--observation", observation, "--out", metrics)
    record = json.loads((run_dir / "record.json").read_text())
    return {**json.loads(metrics.read_text()), "ran": record["precision"]["ran"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--task", required=True)
    parser.add_argument("--level", required=True)
    parser.add_argument("--crop", type=int, default=96, help="centre crop side in px (default: 96)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--work", type=Path, required=True, help="folder for crops, observations and runs")
    parser.add_argument("--restore-args", default="", help="extra `dip restore` flags, one string")
    args = parser.parse_args()
    rows = []
    for image in args.images:
        crop = centre_crop(image, args.crop, args.work / "crops")
        for seed in args.seeds:
            observation = args.work / "obs" / f"{crop.stem}-seed{seed}"
            if not observation.exists():
                run(
                    "dip",
                    "degrade",
                    crop,
                    "--task",
                    args.task,
                    "--level",
                    args.level,
                    "--seed",
                    seed,
                    "--out",
                    observation,
                )
            scores = {
                precision: fit(
                    observation, precision, seed, args.work / precision / observation.name, args.restore_args.split()
                )
                for precision in PRECISIONS
            }
            rows.append((crop.stem, seed, scores))
            fp32, auto = (scores[p]["psnr"] for p in PRECISIONS)
            print(
                f"{crop.stem:24} seed {seed}  fp32 {fp32:6.2f}  auto ({scores['auto']['ran']}) {auto:6.2f}  "
                f"Δ {auto - fp32:+.2f} dB  [{scores['fp32']['protocol']}]",
                flush=True,
            )
    differences = [scores["auto"]["psnr"] - scores["fp32"]["psnr"] for _, _, scores in rows]
    for precision in PRECISIONS:
        values = [scores[precision]["psnr"] for _, _, scores in rows]
        print(f"mean {precision}: {statistics.mean(values):.3f} dB over {len(values)} fits")
    error = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else float("nan")
    print(f"mean Δ (auto − fp32): {statistics.mean(differences):+.3f} dB ± {error:.3f} (standard error)")


if __name__ == "__main__":
    main()
