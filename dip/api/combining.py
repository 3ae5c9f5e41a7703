"""`dip combine`: the pixel mean of runs of one observation (seed means, a DIP fit's last output)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dip.api.runs import Restoration, read_run
from dip.errors import ConfigError
from dip.io import write_image
from dip.layout import LAST, RECORD, RESTORED, last_method, mean_method
from dip.outputs import COMBINED_RUN, claim, clear
from dip.record import versions, write_json

COMBINED_OUTPUTS = {"restored": RESTORED, "last": LAST}
"""What `combine` takes from each run: its chosen output, or a DIP fit's last output."""


def combine(
    runs: list[str | Path],
    *,
    output: str = "restored",
    method: str | None = None,
    out: str | Path | None = None,
) -> Restoration:
    """The pixel mean of some runs of one observation: e.g. the averaged outputs of two DIP fits with different seeds
    (the paper's denoising "averaged over two optimization runs"), or, with `output="last"` and one run, a DIP fit's
    last output where it chose another (the paper's "after 1800 optimization steps"). Written to `out` as a run
    directory (restored.png, record.json) that `evaluate` scores like any other; `method` names its table row."""
    if output not in COMBINED_OUTPUTS:
        raise ConfigError(f"output must be one of {', '.join(COMBINED_OUTPUTS)}, got {output!r}")
    if not runs:
        raise ConfigError("combine needs at least one run directory")
    if out is not None:
        out = claim(out, COMBINED_RUN, inputs=runs)
    given = [Path(run).resolve() for run in runs]
    twice = next((run for run, path in zip(runs, given, strict=True) if given.count(path) > 1), None)
    if twice is not None:
        raise ConfigError(f"{twice}: given twice; a mean over runs takes each once")
    read = [read_run(Path(run), COMBINED_OUTPUTS[output]) for run in runs]
    records, images = [record for record, _ in read], [image for _, image in read]
    first = records[0]
    for run, record, image in zip(runs[1:], records[1:], images[1:], strict=True):
        if not _same_observation(record, first) or image.shape != images[0].shape:
            raise ConfigError(f"{run}: restores another observation than {runs[0]}; only runs of one can be combined")
        if record.get("method") != first.get("method") and method is None:
            raise ConfigError(
                f"{run} is a run of {record.get('method')}, {runs[0]} of {first.get('method')}: a mean over runs of "
                "different methods needs a name of its own (--method)"
            )
    what = "last output" if output == "last" else "chosen output"
    seeds = [record.get("seed", 0) for record in records]
    restored = np.mean(np.stack(images), axis=0, dtype=np.float64).astype(np.float32)
    combined = last_method(first["method"]) if output == "last" else mean_method(first["method"], len(runs))
    record = {
        "kind": "combine",
        "method": method or combined,
        "variant": first.get("variant", "") if all(r.get("variant") == first.get("variant") for r in records) else "",
        "seed": seeds[0],
        "seeds": seeds,
        "iterations": max(record.get("iterations", 0) for record in records),
        "smoke_iterations": first.get("smoke_iterations"),
        "selected_iteration": first.get("iterations", 1) - 1 if output == "last" else None,
        "output": f"{what} of {runs[0]}" if len(runs) == 1 else f"mean of the {what}s of {len(runs)} runs",
        "combined_from": [str(run) for run in runs],
        "seconds": sum(record.get("seconds") or 0 for record in records),
        "device": first.get("device", ""),
        **_combined_cost(records),
        **(
            {"precision": first["precision"]}
            if all(r.get("precision") == first.get("precision") for r in records)
            else {}
        ),
        "observation": first.get("observation", {}),
        "observation_digest": first.get("observation_digest"),
        "versions": versions(),
    }
    if out is not None:
        clear(out, COMBINED_RUN)
        write_image(out / RESTORED, restored)
        write_json(out / RECORD, record)
    return Restoration(restored, record)


def _combined_cost(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the combined runs cost: their wall seconds summed (each was fitted), the highest of their peak memories
    (they ran one after another, or in processes of their own); none where a run did not record its cost."""
    if any(record.get("wall_seconds") is None for record in records):
        return {}
    peaks = [record.get("peak_memory_mb") for record in records]
    return {
        "wall_seconds": sum(record["wall_seconds"] for record in records),
        "peak_memory_mb": None if None in peaks else max(peaks),
        "memory_measure": records[0].get("memory_measure"),
    }


def _same_observation(record: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two run records restore one observation: by their digests, or by the meta where one has none."""
    if record.get("observation_digest") and other.get("observation_digest"):
        return record["observation_digest"] == other["observation_digest"]
    return record.get("observation") == other.get("observation")
