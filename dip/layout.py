"""The run layout, spelled here once: the files of an observation, a run and a failed step's folder, the run-name
grammar (`dip-<variant>`, `seed<S>`, `-last`, `-mean<N>`) and the workflow's folder tree (`workflow_paths`, which
`workflow/rules/common.smk` imports). The API, the report, the viewer and the rules ask this module;
docs/ARCHITECTURE.md says what each file holds."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# --- an observation directory (`dip degrade`) ---------------------------------------------------------------------
OBSERVED = "observed.png"
CLEAN = "clean.png"
MASK = "mask.png"
GUIDE = "guide.png"
OBSERVATION_META = "observation.json"

# --- a run directory (`dip restore`, `dip baseline`, `dip combine`) ------------------------------------------------
RESTORED = "restored.png"
LAST = "last.png"
RECORD = "record.json"
TRACE = "trace.csv"
FRAMES_SPRITE = "frames.webp"
FRAMES_INDEX = "frames.json"

# --- any step's folder, when the step failed (`dip.failures`) -----------------------------------------------------
FAILURE = "failure.json"

# --- the run-name grammar -----------------------------------------------------------------------------------------
DIP_PREFIX = "dip-"
LAST_SUFFIX = "-last"
SEED_MEAN = "seed-mean"
"""The `fit.<task>.outputs` entry, and the run folder, of the pixel mean over a variant's seeds."""


def dip_method(variant: str) -> str:
    """The method (table row) of a DIP variant's fits: `dip-<variant>`."""
    return f"{DIP_PREFIX}{variant}"


def last_method(method: str) -> str:
    """The method of a fit's last output, where it chose another: `<method>-last`."""
    return f"{method}{LAST_SUFFIX}"


def mean_method(method: str, runs: int) -> str:
    """The method of the pixel mean of `runs` runs: `<method>-mean<N>`."""
    return f"{method}-mean{runs}"


def seeded(name: str, seed: int | str) -> str:
    """`<name>/seed<S>`: one seed's run of a DIP variant or method."""
    return f"{name}/seed{seed}"


def seed_run(variant: str, seed: int | str) -> str:
    """A DIP fit's run folder under its observation's: `dip-<variant>/seed<S>`."""
    return seeded(dip_method(variant), seed)


def last_run(variant: str, seed: int | str) -> str:
    """The run folder of a fit's last output: `dip-<variant>/seed<S>-last`."""
    return last_method(seed_run(variant, seed))


def seed_mean_run(variant: str) -> str:
    """The run folder of the mean over a variant's seeds: `dip-<variant>/seed-mean`."""
    return f"{dip_method(variant)}/{SEED_MEAN}"


def run_pattern(variants: str, methods: Iterable[str]) -> str:
    """A regular expression of the run names: a DIP fit, its last output or seed mean of one of `variants` (itself a
    regular expression), or one of the baseline `methods`."""
    fits = rf"{re.escape(DIP_PREFIX)}({variants})/(seed\d+|seed\d+{re.escape(LAST_SUFFIX)}|{re.escape(SEED_MEAN)})"
    return fits + "".join(f"|{re.escape(method)}" for method in methods)


# --- the workflow's folder tree -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkflowPaths:
    """The workflow's paths as Snakemake patterns (wildcards in braces), all under `results`."""

    results: str = "results"

    @property
    def summary(self) -> str:
        return f"{self.results}/summary.csv"

    @property
    def traces(self) -> str:
        return f"{self.results}/traces.csv"

    @property
    def image_dir(self) -> str:
        return f"{self.results}/{{dataset}}/images/{{image}}"

    @property
    def observation(self) -> str:
        return f"{self.results}/{{dataset}}/{{task}}/{{level}}/{{image}}/observation"

    def run(self, name: str = "{run}") -> str:
        """A run folder beside its observation; `name` a run name or pattern (default: the `{run}` wildcard)."""
        return f"{self.results}/{{dataset}}/{{task}}/{{level}}/{{image}}/{name}"

    def metrics(self, name: str = "{run}") -> str:
        """A run's metrics record."""
        return f"{self.results}/metrics/{{dataset}}/{{task}}/{{level}}/{{image}}/{name}.json"

    def checkpoint(self, name: str) -> str:
        """A fit's checkpoint, outside its run folder (Snakemake deletes a job's outputs before it starts)."""
        return f"{self.results}/.checkpoints/{{dataset}}/{{task}}/{{level}}/{{image}}/{name}-{{settings}}.ckpt"

    def log(self, step: str, name: str) -> str:
        """The log of a job of `step` on the run, observation or image `name`."""
        return f"{self.results}/logs/{step}/{{dataset}}/{{task}}/{{level}}/{{image}}/{name}.log"

    def benchmark(self, step: str, name: str) -> str:
        """The `benchmark:` file of a job of `step` on `name`."""
        return f"{self.results}/benchmarks/{step}/{{dataset}}/{{task}}/{{level}}/{{image}}/{name}.tsv"


def workflow_paths() -> WorkflowPaths:
    """The workflow's paths (`workflow/rules/common.smk`)."""
    return WorkflowPaths()
