"""The `dip` command of the GPU run (run.sh puts it on PATH): `dip restore` and `dip baseline` of the workflow, once
$DIP_DEADLINE has passed, write their "not started" failure record here, before anything imports torch; every other
call is `dip` itself.

Why: the tables pass at the end of the run meets every fit that never started (hundreds in the paper's grid), and
`dip restore` imports torch (~1.5 s) before it checks the deadline. The record written here is the one `dip restore
--record-failure` / `dip baseline --record-failure` writes (tests/test_gpu_run.py compares the two); a call this does
not recognise (no --record-failure, a batch's --seeds, an option it cannot read) goes to `dip` unchanged.

    python benchmarks/gpu/dip_command.py restore OBS --out RUN --variant V --seed 0 ... --record-failure LOG
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

DEADLINE_VARIABLE = "DIP_DEADLINE"
MESSAGE = f"not started: the run's time budget (${DEADLINE_VARIABLE}) was spent"
"""The message of `dip.cli.restore.check_deadline` (the same record, checked by the test)."""


def deadline_passed() -> bool:
    """Whether $DIP_DEADLINE is set, readable and past (a bad value is left for `dip` to report)."""
    try:
        return time.time() >= float(os.environ.get(DEADLINE_VARIABLE, ""))
    except ValueError:
        return False


def option(argv: list[str], flag: str) -> str | None:
    """The value after `flag` in `argv` (the workflow's rules write `--flag value`), or None."""
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def not_started(argv: list[str]) -> int | None:
    """Write the "not started" failure record of a workflow's `dip restore` / `dip baseline` past the deadline and
    return 0; None when this is not such a call (then `dip` runs it)."""
    if len(argv) < 2 or argv[0] not in ("restore", "baseline") or not deadline_passed():
        return None
    command, observation = argv[0], Path(argv[1])
    out, log = option(argv, "--out"), option(argv, "--record-failure")
    if out is None or log is None or "--seeds" in argv or observation.name.startswith("-"):
        return None
    from dip import outputs
    from dip.errors import DipError, TimeBudgetSpent
    from dip.failures import failure_record, observation_identity
    from dip.layout import dip_method

    try:
        if command == "restore":
            seed = option(argv, "--seed")
            variant = option(argv, "--variant") or option(argv, "--arch") or ""
            method = option(argv, "--method") or dip_method(variant)
            who = {"method": method, "variant": variant, "seed": None if seed is None else int(seed)}
            kind = outputs.DIP_RUN
        else:
            who = {"method": option(argv, "--method"), "variant": "", "seed": 0}
            kind = outputs.BASELINE_RUN
        record = failure_record(command, TimeBudgetSpent(MESSAGE), log, {**observation_identity(observation), **who})
        outputs.write_failure(Path(out), kind, record)
    except (DipError, OSError, ValueError):
        return None  # `dip` itself says what is wrong
    print(f"dip {command}: error: {MESSAGE}", file=sys.stderr)
    return 0


def main() -> int:
    code = not_started(sys.argv[1:])
    if code is not None:
        return code
    from dip.cli import main as dip

    return dip()


if __name__ == "__main__":
    sys.exit(main())
