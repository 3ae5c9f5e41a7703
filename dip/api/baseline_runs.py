"""`dip baseline`: a method other than DIP restores an observation into a run folder."""

from __future__ import annotations

import time
from pathlib import Path

from dip.api.runs import Restoration, as_observation, input_path, observation_digest
from dip.cost import CostMeter
from dip.errors import ConfigError
from dip.io import write_image
from dip.layout import RECORD, RESTORED
from dip.outputs import BASELINE_RUN, claim, clear
from dip.record import versions, write_json
from dip.tasks import Observation, operator_for


def baseline(observation: Observation | str | Path, method: str, *, out: str | Path | None = None) -> Restoration:
    """Restore an observation with a classical baseline of its task; written to `out` (restored.png, record.json)."""
    from dip.baselines import run_baseline

    meter = CostMeter()
    if out is not None:
        out = claim(out, BASELINE_RUN, inputs=[input_path(observation)])
    observation = as_observation(observation)
    operator = operator_for(observation)
    if method not in operator.baselines:
        raise ConfigError(f"no baseline {method!r} for {operator.task}; choose one of: {', '.join(operator.baselines)}")
    start = time.perf_counter()
    restored = run_baseline(method, observation.observed, **operator.baseline_arguments(observation))
    meta = observation.meta
    record = {
        "kind": "baseline",
        "method": method,
        "variant": "",
        "seed": meta.get("seed", 0),
        "iterations": 0,
        "seconds": time.perf_counter() - start,
        "device": "cpu",
        **meter.finish(),
        "observation": meta,
        "observation_digest": observation_digest(observation),
        "versions": versions(),
    }
    if out is not None:
        clear(out, BASELINE_RUN)
        write_image(out / RESTORED, restored)
        write_json(out / RECORD, record)
    return Restoration(restored, record)
