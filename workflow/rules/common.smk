"""Configuration, the benchmark grid and the target list: everything the rules derive from `config`."""

import hashlib
import json
import os
import re
import subprocess

import pandas as pd
from snakemake.exceptions import WorkflowError

from dip.errors import ConfigError
from dip.operators import make_operator
from dip.workflow_config import (
    check_config,
    fit_flags as level_flags,
    level_fit,
    variant_fit,
    variant_spec,
)

# The `--config` overrides put in place, the schema's checks and defaults, and every other check of the config that
# needs no job (dip/workflow_config.py): a bad value stops the run here, in one line naming its key.
if not workflow.modifier.skip_validation:
    try:
        check_config(
            config,
            workflow.source_path("../schemas/config.schema.yaml"),
            workflow.config_settings.overwrite_config,
            full=workflow.is_main_process,
        )
    except ConfigError as error:
        raise WorkflowError(f"Invalid configuration: {error}") from None

# The checkout that the rules' conda environment installs (workflow/envs/dip.yaml): this one, whatever the working
# directory, also when the workflow is a module of another.
os.environ.setdefault(
    "DIP_BENCH_SOURCE",
    os.path.abspath(
        workflow.current_basedir.join("../..").get_path_or_uri(secret_free=True)
    ),
)

# Fits per GPU (dip/gpu_slots.py): the jobs of this machine read it from their environment.
if "fits_per_gpu" in config:
    os.environ["DIP_FITS_PER_GPU"] = str(config["fits_per_gpu"])

# Every job writes a directory: its results, or a failure record (dip/failures.py) that the later steps pass on, so
# that one bad image or diverged fit still leaves the summary, tables, figures and report of everything else.
IMAGE_DIR = "results/{dataset}/images/{image}"
OBSERVATION = "results/{dataset}/{task}/{level}/{image}/observation"
DIP_RUN = "results/{dataset}/{task}/{level}/{image}/dip-{variant}/seed{seed}"
BASELINE_RUN = "results/{dataset}/{task}/{level}/{image}/{method}"
LAST_RUN = "results/{dataset}/{task}/{level}/{image}/dip-{variant}/seed{seed}-last"
SEED_MEAN_RUN = "results/{dataset}/{task}/{level}/{image}/dip-{variant}/seed-mean"
RUN = "results/{dataset}/{task}/{level}/{image}/{run}"
METRICS = "results/metrics/{dataset}/{task}/{level}/{image}/{run}.json"
CHECKPOINT = "results/.checkpoints/{dataset}/{task}/{level}/{image}/dip-{variant}/seed{seed}-{settings}.ckpt"


def config_error(key: str, problem: str) -> WorkflowError:
    """A configuration error whose message names the offending key."""
    return WorkflowError(f"Invalid configuration: {key}: {problem}")


def list_images(name: str, dataset: dict) -> list[str]:
    """Image names of a dataset: the configured list or `dip datasets images`, cut to the limit."""
    if "images" in dataset:
        images = dataset["images"]
    else:
        command = ["dip", "datasets", "images", dataset["source"]]
        try:
            listing = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError:
            raise config_error(
                f"datasets.{name}.images",
                "not given, and the `dip` command that lists them is not installed",
            ) from None
        if listing.returncode != 0:
            raise config_error(f"datasets.{name}.source", listing.stderr.strip())
        images = listing.stdout.splitlines()
    return images[: dataset.get("limit")]


TASKS = {
    task: [str(level) for level in levels]
    for task, levels in config["tasks"].items()
    if levels
}

IMAGES = {
    name: list_images(name, dataset) for name, dataset in config["datasets"].items()
}


MASKS = {name: dataset.get("masks", {}) for name, dataset in config["datasets"].items()}
PAIRS = {name: dataset.get("pairs", {}) for name, dataset in config["datasets"].items()}


def dataset_runs(dataset: str, task: str, level: str, image: str) -> bool:
    """Whether the grid has this observation: the dataset runs the task, level `file` has a mask, flash-no-flash a
    flash photo, and an already-degraded image a level that takes a photo as it is."""
    settings = config["datasets"][dataset]
    operator = make_operator(task, level)
    return (
        task in settings.get("tasks", TASKS)
        and (not operator.needs_mask_file or image in MASKS[dataset])
        and (not operator.needs_flash_file or image in PAIRS[dataset])
        and (not settings.get("degraded") or operator.takes_photo)
    )


OBSERVATIONS = pd.DataFrame(
    [
        (dataset, task, level, image)
        for dataset, images in IMAGES.items()
        for task, levels in TASKS.items()
        for level in levels
        for image in images
        if dataset_runs(dataset, task, level, image)
    ],
    columns=["dataset", "task", "level", "image"],
)
if OBSERVATIONS.empty:
    raise config_error(
        "datasets", "no dataset runs any of the configured tasks and levels"
    )
DIP_RUNS = OBSERVATIONS.merge(
    pd.DataFrame(
        [
            (task, level, variant, seed)
            for task, levels in TASKS.items()
            for level in levels
            for variant in level_fit(config, task, level)["variants"]
            for seed in level_fit(config, task, level)["seeds"]
        ],
        columns=["task", "level", "variant", "seed"],
    ),
    on=["task", "level"],
)


def with_output(runs: pd.DataFrame, output: str) -> pd.DataFrame:
    """The DIP runs whose task and level ask for `output` besides the chosen one (`fit.<task>.outputs`)."""
    wanted = [
        output in level_fit(config, task, level).get("outputs", [])
        for task, level in zip(runs.task, runs.level)
    ]
    return runs[pd.Series(wanted, index=runs.index, dtype=bool)]


LAST_RUNS = with_output(DIP_RUNS, "last")
SEED_MEAN_RUNS = (
    with_output(DIP_RUNS, "seed-mean").drop(columns="seed").drop_duplicates()
)
BASELINE_RUNS = OBSERVATIONS.merge(
    pd.DataFrame(
        [
            (task, level, method)
            for task, methods in config["baselines"].items()
            for level in TASKS.get(task, [])
            for method in methods
            # a method runs on the levels it solves (e.g. the median filter on impulse noise only)
            if method in make_operator(task, level).baselines
        ],
        columns=["task", "level", "method"],
    ),
    on=["task", "level"],
)


def run_files(pattern: str, runs: pd.DataFrame) -> list[str]:
    """`pattern` expanded with every row of `runs`."""
    return expand(pattern, zip, **runs.to_dict("list"))


def alternatives(values) -> str:
    """A regular expression matching exactly one of `values`."""
    strings = {str(value) for value in values}
    return "|".join(
        re.escape(value)
        for value in sorted(strings, key=lambda value: (-len(value), value))
    )


METHODS = sorted(BASELINE_RUNS.method.unique())
VARIANTS = sorted(DIP_RUNS.variant.unique())


wildcard_constraints:
    dataset=alternatives(IMAGES),
    task=alternatives(TASKS),
    level=alternatives(level for levels in TASKS.values() for level in levels),
    image=alternatives(
        [image for images in IMAGES.values() for image in images]
        + [mask for masks in MASKS.values() for mask in masks.values()]
        + [flash for pairs in PAIRS.values() for flash in pairs.values()]
    ),
    variant=alternatives(VARIANTS),
    seed=r"\d+",
    method=alternatives(METHODS) or "(?!)",
    run=rf"dip-({alternatives(VARIANTS)})/seed(\d+|\d+-last|-mean)"
    + "".join(f"|{re.escape(m)}" for m in METHODS),


def degrade_inputs(wildcards) -> dict[str, str]:
    """The image of an observation, its mask image for inpainting level `file`, its flash photo for flash-no-flash."""
    inputs = {
        "image": IMAGE_DIR.format(dataset=wildcards.dataset, image=wildcards.image)
    }
    operator = make_operator(wildcards.task, wildcards.level)
    if operator.needs_mask_file:
        mask = MASKS[wildcards.dataset][wildcards.image]
        inputs["mask"] = IMAGE_DIR.format(dataset=wildcards.dataset, image=mask)
    if operator.needs_flash_file:
        flash = PAIRS[wildcards.dataset][wildcards.image]
        inputs["flash"] = IMAGE_DIR.format(dataset=wildcards.dataset, image=flash)
    return inputs


def image_file(folder: str, image: str) -> str:
    """The PNG that `dip datasets export` wrote into an image's folder."""
    return os.path.join(folder, f"{image}.png")


def degrade_flags(wildcards, input) -> str:
    """`--mask-file` for inpainting level `file`, `--flash-file` for flash-no-flash, `--observed` for a dataset of
    already-degraded images."""
    flags = []
    if "mask" in input.keys():
        mask = MASKS[wildcards.dataset][wildcards.image]
        flags.append(f"--mask-file {image_file(input.mask, mask)}")
    if "flash" in input.keys():
        flash = PAIRS[wildcards.dataset][wildcards.image]
        flags.append(f"--flash-file {image_file(input.flash, flash)}")
    if config["datasets"][wildcards.dataset].get("degraded"):
        flags.append("--observed")
    return " ".join(flags)


def export_flags(wildcards) -> str:
    """Optional flags of `dip datasets export` for a dataset."""
    dataset = config["datasets"][wildcards.dataset]
    return " ".join(
        f"--{key} {dataset[key]}" for key in ("shrink", "crop") if key in dataset
    )


def arch_json(wildcards) -> str:
    """The model spec of a DIP variant as the JSON of `dip restore --arch-json`."""
    return json.dumps(variant_spec(config, wildcards.variant), sort_keys=True)


def fit_flags(wildcards) -> str:
    """The configured fit settings of a task and level, and the variant's own (e.g. DIP-TV's weight), as `dip restore`
    flags (the others take the paper's defaults)."""
    settings = level_fit(config, wildcards.task, wildcards.level)
    flags = level_flags({**settings, **variant_fit(config, wildcards.variant)})
    if config.get("smoke_iterations"):
        flags.append(f"--smoke-iterations {config['smoke_iterations']}")
    return " ".join(flags)


def checkpoint_file(wildcards) -> str:
    """A fit's checkpoint, named by a digest of its settings: a fit whose config changed never meets (nor leaves
    alone, unused) the checkpoint of the old settings."""
    settings = [arch_json(wildcards), fit_flags(wildcards), config["degradation_seed"]]
    digest = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:12]
    return CHECKPOINT.format(**wildcards, settings=digest)


def seed_runs(wildcards) -> list[str]:
    """The fits of every seed of a variant on one observation, for their mean."""
    seeds = level_fit(config, wildcards.task, wildcards.level)["seeds"]
    return expand(DIP_RUN, seed=seeds, **wildcards)


def metrics_files() -> list[str]:
    """Every run's metrics record (its scores, or its failure): DIP fits, the outputs combined from them, baselines."""
    named = [
        DIP_RUNS.assign(
            run=[f"dip-{v}/seed{s}" for v, s in zip(DIP_RUNS.variant, DIP_RUNS.seed)]
        ),
        LAST_RUNS.assign(
            run=[
                f"dip-{v}/seed{s}-last"
                for v, s in zip(LAST_RUNS.variant, LAST_RUNS.seed)
            ]
        ),
        SEED_MEAN_RUNS.assign(
            run=[f"dip-{v}/seed-mean" for v in SEED_MEAN_RUNS.variant]
        ),
        BASELINE_RUNS.rename(columns={"method": "run"}),
    ]
    columns = ["dataset", "task", "level", "image", "run"]
    return [path for runs in named for path in run_files(METRICS, runs[columns])]


def all_targets() -> list[str]:
    """The final outputs: the summary, the tables and figures of every task that some dataset runs, and the viewer."""
    tasks = [task for task in TASKS if task in set(OBSERVATIONS.task)]
    return [
        "results/summary.csv",
        "results/viewer",
        *expand("results/tables/{task}.{ext}", task=tasks, ext=["md", "tex", "html"]),
        *expand(
            "results/figures/{task}-{figure}.png",
            task=tasks,
            figure=["psnr", "curves", "images"],
        ),
    ]


def report_failures(summary_path: str) -> None:
    """After a run: say how many runs failed, and where the tables list them (the jobs themselves succeeded)."""
    if not os.path.exists(summary_path):
        return
    summary = pd.read_csv(summary_path, dtype=str)
    if "status" not in summary:
        return
    failed = summary[summary.status == "failed"]
    if failed.empty:
        return
    logger.warning(
        f"{len(failed)} of {len(summary)} runs failed; the tables in results/tables/ list each with its error and "
        f"log. First: {failed.error.iloc[0]}"
    )
