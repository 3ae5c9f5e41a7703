"""The results viewer: a static page (works from file://, offline) comparing every method on each observation and
stepping through each DIP fit's frames beside its PSNR curve.

`write_viewer(summary, out, caps)` writes OUT/index.html, viewer.js, viewer.css (package data, `page/`),
viewer-data.js (`window.DIP_VIEWER_DATA = {...}`: the page's data, loaded by a plain <script>, as file:// allows no
fetch) and OUT/assets/ (the images, and one frame sprite per DIP run).
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dip import __version__
from dip.errors import DipError
from dip.failures import FAILED
from dip.layout import CLEAN, FRAMES_SPRITE, GUIDE, OBSERVED, RECORD, RESTORED, TRACE, seeded
from dip.outputs import VIEWER, claim
from dip.record import read_json
from dip.replacing import building, locked
from dip.report.notes import NO_TRUTH, run_notes, smoke_iterations
from dip.report.ordering import level_label, method_order
from dip.report.viewer.caps import ASSETS, DATA_FILE, PAGE_FILES, ViewerCaps
from dip.report.viewer.images import copy_image, image_shape, write_frame_sprite

OBSERVATION_KEYS = ["dataset", "task", "level", "image"]
OBSERVATION_LABELS = {
    "denoising": "noisy observation",
    "super-resolution": "low-resolution input",
    "inpainting": "masked observation",
    "jpeg": "decoded JPEG",
    "flash-no-flash": "no-flash photo (the target)",
    "deblurring": "blurred observation",
}
GUIDE_LABEL = "flash photo (the net's input z)"


def write_viewer(summary: pd.DataFrame, out: Path, caps: ViewerCaps) -> dict[str, Any]:
    """Write the viewer of `summary` (a table of `dip aggregate`) into `out`; returns the page's data.

    The viewer is built in a folder of its own beside `out` and moved in once whole (`dip.replacing`): a file that
    cannot be read (a corrupt restored image) or a full disk stops the command with the earlier viewer in place."""
    if "observation_dir" not in summary:
        raise DipError(
            "the summary has no observation_dir column (score the runs with `dip evaluate RUN --observation DIR`)"
        )
    check_folders(summary)
    out = claim(out, VIEWER)
    with locked(out), building(out, VIEWER) as staging:
        (staging / ASSETS).mkdir()
        return _write(summary, staging, caps)


def _write(summary: pd.DataFrame, out: Path, caps: ViewerCaps) -> dict[str, Any]:
    data = {
        "title": "dip-bench results viewer",
        "generator": f"dip-bench {__version__}",
        "smoke_iterations": _smoke(summary),
        "notes": _notes(summary),
        "observations": [],
        "runs": [],
    }
    identified = summary[summary.task != ""]
    for key, rows in identified.groupby(OBSERVATION_KEYS, sort=False):
        data["observations"].append(_observation(dict(zip(OBSERVATION_KEYS, key, strict=True)), rows, out, caps, data))
    script = "window.DIP_VIEWER_DATA = " + json.dumps(data, separators=(",", ":"), allow_nan=False) + ";\n"
    (out / DATA_FILE).write_text(script.replace("</", "<\\/"), encoding="utf-8")
    page = resources.files("dip.report.viewer") / "page"
    for name in PAGE_FILES:
        (out / name).write_bytes((page / name).read_bytes())
    return data


def check_folders(summary: pd.DataFrame) -> None:
    """Refuse a summary none of whose run folders exists here (its paths are relative to where the workflow ran)."""
    folders = [_text(folder) for folder in summary.run_dir if _text(folder)] if "run_dir" in summary else []
    if folders and not any(Path(folder).is_dir() for folder in folders):
        raise DipError(
            f"none of the summary's run folders exists here (e.g. {folders[0]}): run `dip viewer` in the folder "
            "that the workflow ran in"
        )


def _smoke(summary: pd.DataFrame) -> int | None:
    counts = [smoke_iterations(summary, task) for task in summary.task.unique()]
    counts = [count for count in counts if count is not None]
    return max(counts) if counts else None


def _notes(summary: pd.DataFrame) -> list[str]:
    """Each failed run once (the notes of the tables), without the smoke marker and the note on runs without ground
    truth (the page shows both itself: a banner, and "no ground truth" on each tile)."""
    notes: list[str] = []
    for task in sorted(summary.task.unique()):
        own = [note for note in run_notes(summary, task) if not note.startswith(("SMOKE", NO_TRUTH))]
        notes += [note for note in own if note not in notes]
    return notes


def _observation(
    key: dict[str, str], rows: pd.DataFrame, out: Path, caps: ViewerCaps, data: dict[str, Any]
) -> dict[str, Any]:
    """One observation of the page: the ground truth, the observation and one entry per run, in display order."""
    index = len(data["observations"])
    folder = f"{ASSETS}/o{index}"
    obs_dir = _observation_dir(rows)
    clean = obs_dir / CLEAN if obs_dir is not None else None
    has_truth = clean is not None and clean.is_file()
    ok = rows[rows.status != FAILED] if "status" in rows else rows
    reference = clean if has_truth else _first_restored(ok)
    height, width = image_shape(reference) if reference is not None else (0, 0)
    scale = min(1.0, caps.image_side / max(height, width, 1))
    entries = []
    if has_truth:
        copy_image(clean, out / folder / "truth.png", scale)
        entries.append(_entry("truth", "ground truth", "truth", f"{folder}/truth.png"))
    if obs_dir is not None and (obs_dir / OBSERVED).is_file():
        copy_image(obs_dir / OBSERVED, out / folder / "observation.png", scale)
        metrics = _observed_metrics(ok)
        label = OBSERVATION_LABELS.get(key["task"], "observation")
        entries.append(_entry("observation", label, "observation", f"{folder}/observation.png", metrics))
    if obs_dir is not None and (obs_dir / GUIDE).is_file():
        copy_image(obs_dir / GUIDE, out / folder / GUIDE, scale)
        entries.append(_entry("guide", GUIDE_LABEL, "guide", f"{folder}/{GUIDE}"))
    for position, row in enumerate(_ordered(rows).to_dict("records")):
        entries.append(_run_entry(row, f"{folder}/m{position}", out, scale, caps, data, index, (height, width)))
    return {
        **key,
        "level_label": level_label(key["task"], key["level"]),
        "height": round(height * scale),
        "width": round(width * scale),
        "has_truth": has_truth,
        "seeds": sorted({int(seed) for seed in rows.seed[rows.variant != ""]}),
        "entries": entries,
    }


def _observed_metrics(rows: pd.DataFrame) -> dict[str, Any] | None:
    """The observation's PSNR to the ground truth (where sizes agree), under the protocol of its runs."""
    for row in rows.to_dict("records"):
        psnr = _number(row.get("psnr_observed"))
        if psnr is not None:
            return _metrics(psnr, None, _text(row.get("protocol")))
    return None


def _observation_dir(rows: pd.DataFrame) -> Path | None:
    folders = [_text(folder) for folder in rows.observation_dir if _text(folder)]
    return Path(folders[0]) if folders and Path(folders[0]).is_dir() else None


def _first_restored(rows: pd.DataFrame) -> Path | None:
    for folder in rows.run_dir:
        path = Path(_text(folder)) / RESTORED
        if _text(folder) and path.is_file():
            return path
    return None


def _ordered(rows: pd.DataFrame) -> pd.DataFrame:
    """The runs: baselines, then DIP variants (each alphabetically), seeds in order."""
    order = {method: position for position, method in enumerate(method_order(rows))}
    return rows.assign(_order=rows.method.map(order)).sort_values(["_order", "seed"]).drop(columns="_order")


def _entry(
    key: str, label: str, kind: str, src: str | None, metrics: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {"key": key, "label": label, "kind": kind, "src": src, "metrics": metrics, **extra}


def _run_entry(
    row: dict[str, Any],
    stem: str,
    out: Path,
    scale: float,
    caps: ViewerCaps,
    data: dict[str, Any],
    obs: int,
    shape: tuple[int, int],
) -> dict[str, Any]:
    """A run's entry: its image and scores, or what failed; a DIP run also gets its process data (`runs`). Its image
    must have the observation's `shape` (height, width): one of another size is not the image its scores are of."""
    is_dip = bool(row["variant"])
    extra = {"variant": row["variant"], "seed": int(row["seed"])} if is_dip else {}
    key = seeded(row["method"], row["seed"]) if is_dip else row["method"]
    kind = "dip" if is_dip else "baseline"
    run_dir = Path(_text(row.get("run_dir")))
    restored = run_dir / RESTORED
    if row.get("status") == FAILED or not _text(row.get("run_dir")) or not restored.is_file():
        error = _text(row.get("error")) or f"no restored image in {run_dir}"
        missing = {"stage": _text(row.get("stage")), "error": error, "log": _text(row.get("log"))}
        return _entry(key, row["method"], kind, None, None, missing=missing, **extra)
    copy_image(restored, out / f"{stem}.png", scale)  # first: it says in one line that a file cannot be read
    if image_shape(restored) != shape:
        found = "×".join(map(str, image_shape(restored)))
        raise DipError(
            f"{restored}: {found}, but the image it restores is {shape[0]}×{shape[1]}: replaced since the run was "
            "scored? Restore and score it again"
        )
    metrics = _metrics(_number(row.get("psnr")), _number(row.get("ssim")), _text(row.get("protocol")))
    entry = _entry(key, row["method"], kind, f"{stem}.png", metrics, **extra)
    if is_dip:
        entry["run"] = len(data["runs"])
        data["runs"].append(_process(row, run_dir, f"{stem}-{FRAMES_SPRITE}", out, caps, obs))
    return entry


def _metrics(psnr: float | None, ssim: float | None, protocol: str) -> dict[str, Any] | None:
    """PSNR and SSIM under their protocol; None without a PSNR (no ground truth)."""
    if psnr is None:
        return None
    return {"psnr": round(psnr, 2), "ssim": None if ssim is None else round(ssim, 4), "protocol": protocol}


def _process(row: dict[str, Any], run_dir: Path, sprite: str, out: Path, caps: ViewerCaps, obs: int) -> dict[str, Any]:
    """A DIP run's restoration process: its trace, frames, and what the stopping rule did."""
    record = _record(run_dir)
    trace = _trace(run_dir)
    frames = write_frame_sprite(run_dir, out / sprite, caps.frame_side, caps.max_frames)
    if frames is not None:
        frames["src"] = sprite
    iterations = int(record.get("iterations") or (trace["iteration"][-1] + 1 if trace else 0))
    return {
        "observation": obs,
        "label": row["method"],
        "seed": int(row["seed"]),
        "iterations": iterations,
        "selected_iteration": record.get("selected_iteration"),
        "output": _text(record.get("output")),
        "stop_reason": _text(record.get("stop_reason")),
        "smoke": bool(record.get("smoke_iterations")),
        "stopping": _stopping(record, iterations),
        "watched": _watched(record),
        "best": _best(trace),
        "trace": trace,
        "frames": frames,
    }


def _record(run_dir: Path) -> dict[str, Any]:
    try:
        record = read_json(run_dir / RECORD)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _trace(run_dir: Path) -> dict[str, Any] | None:
    """The run's PSNR curves (NaN as None; a curve without a finite value as None); None without a trace."""
    path = run_dir / TRACE
    try:
        trace = pd.read_csv(path)
        iterations = [int(i) for i in trace.iteration] if "iteration" in trace else []
    except (OSError, ValueError):  # pandas' ParserError and EmptyDataError, a binary file, a bad iteration
        return None
    if not iterations:
        return None
    curves = {"iteration": iterations}
    for column in ("psnr_obs", "psnr_gt", "psnr_gt_avg"):
        values = pd.to_numeric(trace[column], errors="coerce").to_numpy(float) if column in trace else np.array([])
        curves[column] = _finite_or_none(values) if values.size else None
    return curves


def _finite_or_none(values: np.ndarray) -> list[float | None] | None:
    finite = np.isfinite(values)
    if not finite.any():
        return None
    return [round(float(v), 3) if ok else None for v, ok in zip(values, finite, strict=True)]


def _stopping(record: dict[str, Any], iterations: int) -> dict[str, Any] | None:
    """What an early-stopping rule did: where it fired (None: never), what it picked, that output's PSNR."""
    rule = (record.get("fit") or {}).get("stopping", "fixed")
    if rule == "fixed":
        return None
    early = record.get("early_stop")
    if early:  # es_continue: the fit went on; the record says where the rule would have stopped
        return {
            "rule": rule,
            "continued": True,
            "stop_iteration": early.get("stop_iteration"),
            "selected_iteration": early.get("selected_iteration"),
            "psnr_gt": _number(early.get("psnr_gt")),
        }
    fired = record.get("stop_reason", "iterations") != "iterations"
    return {
        "rule": rule,
        "continued": False,
        "stop_iteration": iterations if fired else None,
        "selected_iteration": record.get("selected_iteration"),
        "psnr_gt": None,
    }


def _watched(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rule that watched the fit (`record["watched"]`): where it fired (None: never), its pick, that PSNR."""
    return [
        {
            "rule": rule,
            "stop_iteration": values.get("stop_iteration"),
            "selected_iteration": values.get("selected_iteration"),
            "psnr_gt": _number(values.get("psnr_gt")),
        }
        for rule, values in (record.get("watched") or {}).items()
    ]


def _best(trace: dict[str, Any] | None) -> dict[str, Any] | None:
    """The traced iteration whose output was closest to the ground truth (an oracle, for the plot only)."""
    if trace is None or trace["psnr_gt"] is None:
        return None
    values = [-math.inf if v is None else v for v in trace["psnr_gt"]]
    best = int(np.argmax(values))
    return {"iteration": trace["iteration"][best], "psnr_gt": trace["psnr_gt"][best]}


def _number(value: Any) -> float | None:
    """A finite float, or None (NaN, empty, text)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str:
    """A text cell of the summary, '' for an empty one (NaN)."""
    return value if isinstance(value, str) else ""
