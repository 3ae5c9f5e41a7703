"""The benchmark grid, computed once from a config the schema has checked: which observations (dataset × task × level ×
image) are made, which DIP runs (variant × seed, and the outputs combined from them) and which baselines run on them.
`workflow/rules/common.smk` builds its targets and wildcards from it, and the checks before any job
(`dip.workflow_config`) walk it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dip.errors import ConfigError
from dip.layout import SEED_MEAN, last_run, seed_mean_run, seed_run
from dip.tasks import make_operator

OBSERVATION_COLUMNS = ["dataset", "task", "level", "image"]


def benchmarked_tasks(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """The tasks that are run, each with its levels as strings (a task with no levels is not run)."""
    return {task: [str(level) for level in levels] for task, levels in config["tasks"].items() if levels}


def level_fit(config: Mapping[str, Any], task: str, level: str | None) -> dict[str, Any]:
    """The fit settings of one task and level: `fit.<task>` overridden by its `levels.<level>` entry, with the
    top-level `seeds` where neither gives any."""
    settings = {"seeds": config["seeds"], **config["fit"][task]}
    override = settings.pop("levels", {}).get(level, {})
    return {**settings, **override}


def dataset_images(name: str, dataset: Mapping[str, Any]) -> list[str] | None:
    """All image names of a dataset's source (None for a zip that is not fetched yet: they are not known)."""
    from dip.datasets import get_dataset, list_images

    try:
        source = get_dataset(dataset["source"])
    except ConfigError as error:
        raise ConfigError(f"datasets.{name}.source: {error}") from None
    try:
        return list_images(source)
    except ConfigError as error:
        if source.kind == "archive" and "images" in dataset:
            return None  # `dip datasets fetch` makes them known; the jobs check the configured names then
        raise ConfigError(f"datasets.{name}.source: {error}") from None


def used_images(dataset: Mapping[str, Any], images: list[str] | None) -> list[str]:
    """The images a dataset runs: the configured ones, else all of them, cut to `limit`."""
    chosen = dataset.get("images", images or [])
    return list(chosen)[: dataset.get("limit")]


def observes(dataset: Mapping[str, Any], tasks: Mapping[str, list[str]], task: str, level: str, image: str) -> bool:
    """Whether the grid has this observation: the dataset runs the task, level `file` has a mask, flash-no-flash a
    flash photo, and an already-degraded image a level that takes a photo as it is."""
    operator = make_operator(task, level)
    return (
        task in dataset.get("tasks", tasks)
        and (not operator.needs_mask_file or image in dataset.get("masks", {}))
        and (not operator.needs_flash_file or image in dataset.get("pairs", {}))
        and (not dataset.get("degraded") or operator.takes_photo)
    )


@dataclass(frozen=True)
class Grid:
    """The benchmark's runs: each data frame has a row per observation or run, its identifying columns."""

    tasks: dict[str, list[str]]
    images: dict[str, list[str]]
    observations: pd.DataFrame
    """dataset, task, level, image."""
    dip_runs: pd.DataFrame
    """The observation's columns, variant, seed."""
    last_runs: pd.DataFrame
    """The DIP runs whose level asks for their last output as well (`fit.<task>.outputs: [last]`)."""
    seed_mean_runs: pd.DataFrame
    """The observation's columns and variant, where the level asks for the mean over its seeds."""
    baseline_runs: pd.DataFrame
    """The observation's columns, method."""

    def named_runs(self) -> pd.DataFrame:
        """Every run with its name under its observation's folder (`run`): DIP fits, the outputs combined from them,
        baselines."""
        named = [
            self.dip_runs.assign(run=list(map(seed_run, self.dip_runs.variant, self.dip_runs.seed))),
            self.last_runs.assign(run=list(map(last_run, self.last_runs.variant, self.last_runs.seed))),
            self.seed_mean_runs.assign(run=list(map(seed_mean_run, self.seed_mean_runs.variant))),
            self.baseline_runs.rename(columns={"method": "run"}),
        ]
        return pd.concat([runs[[*OBSERVATION_COLUMNS, "run"]] for runs in named], ignore_index=True)


def build_grid(config: Mapping[str, Any]) -> Grid:
    """The grid of `config` (its schema defaults filled in); a ConfigError when no dataset runs any task."""
    tasks = benchmarked_tasks(config)
    images = {
        name: used_images(dataset, None if "images" in dataset else dataset_images(name, dataset))
        for name, dataset in config["datasets"].items()
    }
    observations = pd.DataFrame(
        [
            (dataset, task, level, image)
            for dataset, names in images.items()
            for task, levels in tasks.items()
            for level in levels
            for image in names
            if observes(config["datasets"][dataset], tasks, task, level, image)
        ],
        columns=OBSERVATION_COLUMNS,
    )
    if observations.empty:
        raise ConfigError("datasets: no dataset runs any of the configured tasks and levels")
    dip_runs = observations.merge(_fits(config, tasks), on=["task", "level"])
    return Grid(
        tasks=tasks,
        images=images,
        observations=observations,
        dip_runs=dip_runs,
        last_runs=_with_output(config, dip_runs, "last"),
        seed_mean_runs=_with_output(config, dip_runs, SEED_MEAN).drop(columns="seed").drop_duplicates(),
        baseline_runs=observations.merge(_baselines(config, tasks), on=["task", "level"]),
    )


def _fits(config: Mapping[str, Any], tasks: Mapping[str, list[str]]) -> pd.DataFrame:
    """The DIP fits of each task and level: one per variant and seed."""
    return pd.DataFrame(
        [
            (task, level, variant, seed)
            for task, levels in tasks.items()
            for level in levels
            for variant in level_fit(config, task, level)["variants"]
            for seed in level_fit(config, task, level)["seeds"]
        ],
        columns=["task", "level", "variant", "seed"],
    )


def _with_output(config: Mapping[str, Any], runs: pd.DataFrame, output: str) -> pd.DataFrame:
    """The DIP runs whose task and level ask for `output` besides the chosen one (`fit.<task>.outputs`)."""
    wanted = [
        output in level_fit(config, task, level).get("outputs", [])
        for task, level in zip(runs.task, runs.level, strict=True)
    ]
    return runs[pd.Series(wanted, index=runs.index, dtype=bool)]


def _baselines(config: Mapping[str, Any], tasks: Mapping[str, list[str]]) -> pd.DataFrame:
    """The baselines of each task and level: the configured methods that solve it (e.g. the median filter on impulse
    noise only)."""
    return pd.DataFrame(
        [
            (task, level, method)
            for task, methods in config["baselines"].items()
            for level in tasks.get(task, [])
            for method in methods
            if method in make_operator(task, level).baselines
        ],
        columns=["task", "level", "method"],
    )
