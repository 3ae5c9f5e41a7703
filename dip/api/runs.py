"""What every use case shares: a run's result (`Restoration`), reading a run folder, and what identifies the
observation a run restores."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dip.errors import ConfigError
from dip.failures import check_upstream
from dip.io import read_image
from dip.layout import RECORD, RESTORED
from dip.record import fingerprint, read_json
from dip.tasks import Observation
from dip.tasks.observation_dir import load_observation


@dataclass
class Restoration:
    """A restored image (float32 (H, W, C) in [0, 1]) and its run record; DIP runs also carry their trace."""

    output: np.ndarray
    record: dict[str, Any]
    trace: list[dict[str, float]] = field(default_factory=list)


def read_run(run_dir: Path, image: str = RESTORED) -> tuple[dict[str, Any], np.ndarray]:
    """A run directory's record and one of its images; a failed run's record raises `UpstreamFailure`."""
    check_upstream(run_dir)
    if not (run_dir / RECORD).is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no {RECORD})")
    try:
        record = read_json(run_dir / RECORD)
    except (OSError, ValueError) as error:  # a binary file: UnicodeDecodeError, a ValueError
        raise ConfigError(f"{run_dir / RECORD}: not a run record ({error})") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{run_dir / RECORD}: not a run record (a JSON object written by `dip restore`)")
    if not (run_dir / image).is_file():
        raise ConfigError(f"{run_dir}: the run has no {image} ({record.get('output') or 'no such output'})")
    return record, read_image(run_dir / image)


def as_observation(observation: Observation | str | Path) -> Observation:
    return observation if isinstance(observation, Observation) else load_observation(observation)


def input_path(value: object) -> str | Path | None:
    """`value` where it is a path (an input a command reads from a file), else None."""
    return value if isinstance(value, str | Path) else None


def observation_digest(observation: Observation) -> str:
    """What identifies an observation: its meta and x0 as its 16-bit file holds it, so that the observation in
    memory and the same one read back from its folder have one digest."""
    observed = np.round(np.clip(observation.observed.astype(np.float64), 0, 1) * 65535).astype(np.uint16)
    return fingerprint(observation.meta, observed)


def check_same_observation(run: str | Path, record: dict[str, Any], observation: Observation, what: str) -> None:
    """Refuse a run whose record says it restores another observation than `observation` (named by `what`): by its
    `observation_digest`, or, for a record written before runs had one, by the observation's meta."""
    digest = record.get("observation_digest")
    meta = record.get("observation")
    other = digest != observation_digest(observation) if digest is not None else meta not in (None, observation.meta)
    if other:
        raise ConfigError(f"{run}: restores another observation than {what}; give the observation it was fitted to")
