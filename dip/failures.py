"""Failure records: a job that fails on bad input or settings writes what failed, why and where its log is, in place
of its results, so that one bad image or diverged fit leaves the rest of a benchmark and its report intact.

A failed step writes ``failure.json`` into the directory it would have filled (an exported image's folder, an
observation, a run) or, for `dip evaluate`, a ``metrics.json`` with ``status: failed``. A later step that meets one
raises `UpstreamFailure` and records the original cause under its own name, so that the report says which step
failed first and which log to read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dip.errors import DipError
from dip.layout import FAILURE, OBSERVATION_META

FAILED = "failed"


class UpstreamFailure(DipError):
    """A step's input is a failure record: the step cannot run, and passes the original failure on."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__(f"{record['stage']} failed: {record['error']} (log: {record.get('log') or 'none'})")
        self.record = record


def failure_record(stage: str, error: DipError, log: str | None, identity: dict[str, Any]) -> dict[str, Any]:
    """What a failed step writes: its stage (or the first failed step's, for an upstream failure), error and log."""
    if isinstance(error, UpstreamFailure):
        return {**error.record, "identity": {**error.record.get("identity", {}), **identity}}
    return {"status": FAILED, "stage": stage, "error": str(error), "log": log, "identity": identity}


def write_failure(directory: Path, record: dict[str, Any]) -> Path:
    """Write `record` as DIRECTORY/failure.json (creating the directory), whole or not at all."""
    from dip.io import write_atomically

    path = directory / FAILURE
    write_atomically(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path


def read_failure(directory: Path) -> dict[str, Any] | None:
    """The failure record of a step's output directory, or None when the step did not fail."""
    path = Path(directory) / FAILURE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        return {"status": FAILED, "stage": "unknown", "error": f"{path}: unreadable failure record ({error})"}


def meta_identity(meta: dict[str, Any]) -> dict[str, Any]:
    """Task, level and labels of an observation's meta (KeyError/TypeError if it is not one)."""
    return {"task": meta["task"], "level": meta["level"], **meta.get("labels", {})}


def observation_identity(directory: Path) -> dict[str, Any]:
    """Task, level and labels of an observation directory, or of its failure record; {} if it has neither."""
    meta_path = Path(directory) / OBSERVATION_META
    try:
        return meta_identity(json.loads(meta_path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        record = read_failure(directory)
        return dict(record.get("identity", {})) if record else {}


def check_upstream(path: Path) -> None:
    """Raise `UpstreamFailure` when `path` (a directory, or a missing file in one) is a failed step's output."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if path.is_dir() or not path.exists():
        record = read_failure(folder)
        if record is not None:
            raise UpstreamFailure(record)
