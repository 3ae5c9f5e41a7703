"""Configuration, the benchmark grid and the target list: everything the rules derive from `config`."""

import hashlib
import json
import os
import re
import shlex
import shutil

import pandas as pd
from snakemake.exceptions import WorkflowError

from dip.errors import ConfigError
from dip.gpu_slots import FITS_PER_GPU_VARIABLE
from dip.methods import METHODS as METHOD_TYPES
from dip.layout import (
    dip_method,
    last_method,
    last_run,
    mean_method,
    run_pattern,
    seed_mean_run,
    seed_run,
    workflow_paths,
)
from dip.tasks import make_operator
from dip.workflow_config import (
    check_config,
    fit_flags as level_flags,
    variant_fit,
    variant_spec,
)
from dip.workflow_grid import build_grid, level_fit

# The `--config` overrides put in place, the schema's checks and defaults, every other check of the config that needs
# no job (dip/workflow_config.py), and the grid they leave (dip/workflow_grid.py): a bad value stops the run here, in
# one line naming its key.
try:
    if workflow.modifier.skip_validation:
        GRID = build_grid(config)
    else:
        GRID = check_config(
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

# Every job writes a directory: its results, or a failure record (dip/failures.py) that the later steps pass on, so
# that one bad image or diverged fit still leaves the summary, tables, figures and report of everything else.
PATHS = workflow_paths()
IMAGE_DIR = PATHS.image_dir
OBSERVATION = PATHS.observation
DIP_RUN_NAME = seed_run("{variant}", "{seed}")
LAST_RUN_NAME = last_run("{variant}", "{seed}")
SEED_MEAN_RUN_NAME = seed_mean_run("{variant}")
DIP_RUN = PATHS.run(DIP_RUN_NAME)
BASELINE_RUN = PATHS.run("{method}")
LAST_RUN = PATHS.run(LAST_RUN_NAME)
SEED_MEAN_RUN = PATHS.run(SEED_MEAN_RUN_NAME)
RUN = PATHS.run()
METRICS = PATHS.metrics()
CHECKPOINT = PATHS.checkpoint(DIP_RUN_NAME)
BATCH_RUN = "results/.batches/{batch}"
"""A batch of DIP fits (`batch_fits`): its runs, `<dataset>/<task>/<level>/<image>/dip-<variant>/seed<seed>`, which
the `restore` rule copies to DIP_RUN."""
RENDERED = "results/.render/{task}"
"""What `dip render` made of a task: `tables/` and `figures/`, which the `publish` rule puts in `results/`."""


TASKS = GRID.tasks
IMAGES = GRID.images
MASKS = {name: dataset.get("masks", {}) for name, dataset in config["datasets"].items()}
PAIRS = {name: dataset.get("pairs", {}) for name, dataset in config["datasets"].items()}
OBSERVATIONS = GRID.observations
DIP_RUNS = GRID.dip_runs
BASELINE_RUNS = GRID.baseline_runs


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
    run=run_pattern(alternatives(VARIANTS), METHODS),


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
        flags.append(f"--mask-file {shlex.quote(image_file(input.mask, mask))}")
    if "flash" in input.keys():
        flash = PAIRS[wildcards.dataset][wildcards.image]
        flags.append(f"--flash-file {shlex.quote(image_file(input.flash, flash))}")
    if config["datasets"][wildcards.dataset].get("degraded"):
        flags.append("--observed")
    return " ".join(flags)


def export_flags(wildcards) -> str:
    """Optional flags of `dip datasets export` for a dataset, quoted for the shell."""
    dataset = config["datasets"][wildcards.dataset]
    return " ".join(
        f"--{key} {shlex.quote(str(dataset[key]))}"
        for key in ("shrink", "crop")
        if key in dataset
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
        flags.append(
            f"--smoke-iterations {shlex.quote(str(config['smoke_iterations']))}"
        )
    return " ".join(flags)


def baseline_net_flags(wildcards, threads) -> str:
    """`dip baseline`'s flags for a method that runs a net: the device and the job's threads, and for one that fits
    a net a smoke run's iterations; none for a classical method."""
    method = METHOD_TYPES[wildcards.method]
    if not method.on_device:
        return ""
    flags = f"--device {shlex.quote(str(config['device']))} --threads {int(threads)}"
    if method.fits_net and config.get("smoke_iterations"):
        flags += f" --smoke-iterations {int(config['smoke_iterations'])}"
    return flags


def slot_environment(wildcards) -> str:
    """The fit's environment prefix: `fits_per_gpu` as the GPU slots read it (dip/gpu_slots.py), on any node."""
    if "fits_per_gpu" not in config:
        return ""
    return f"{FITS_PER_GPU_VARIABLE}={shlex.quote(str(config['fits_per_gpu']))} "


def checkpoint_file(wildcards) -> str:
    """A fit's checkpoint, named by a digest of its settings: a fit whose config changed never meets (nor leaves
    alone, unused) the checkpoint of the old settings."""
    settings = [arch_json(wildcards), fit_flags(wildcards), config["degradation_seed"]]
    digest = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:12]
    return CHECKPOINT.format(**wildcards, settings=digest)


def plan_batches(runs: pd.DataFrame, size: int) -> dict[str, dict]:
    """The DIP runs in batches of at most `size` fits (`batch_fits`): the observations of one dataset fitted by one
    variant with the same fit flags and seeds, each with all its seeds; named by a digest of their runs.
    """
    batches = {}
    for (dataset, variant), group in runs.groupby(["dataset", "variant"], sort=True):
        by_settings = {}
        for task, level, image in sorted(
            set(zip(group.task, group.level, group.image))
        ):
            seeds = tuple(level_fit(config, task, level)["seeds"])
            flags = fit_flags(wildcards_of(task=task, level=level, variant=variant))
            by_settings.setdefault((flags, seeds), []).append((task, level, image))
        for (flags, seeds), observations in sorted(by_settings.items()):
            per_batch = max(1, size // len(seeds))
            for start in range(0, len(observations), per_batch):
                members = observations[start : start + per_batch]
                digest = hashlib.sha256(
                    json.dumps(
                        [dataset, config["variants"][variant], flags, seeds, members],
                        sort_keys=True,
                    ).encode()
                ).hexdigest()[:12]
                batches[f"{dataset}/dip-{variant}/{digest}"] = {
                    "dataset": dataset,
                    "variant": variant,
                    "seeds": seeds,
                    "observations": members,
                }
    return batches


def wildcards_of(**values):
    """An object with these attributes, as a rule's wildcards."""
    return type("Wildcards", (), values)


BATCHES = (
    plan_batches(DIP_RUNS, config["batch_fits"]) if config["batch_fits"] > 1 else {}
)
BATCH_OF = {
    (batch["dataset"], task, level, image, batch["variant"], str(seed)): name
    for name, batch in BATCHES.items()
    for task, level, image in batch["observations"]
    for seed in batch["seeds"]
}


def batch_of(wildcards) -> str:
    """The batch directory that holds a DIP run (`batch_fits` > 1)."""
    key = (
        wildcards.dataset,
        wildcards.task,
        wildcards.level,
        wildcards.image,
        wildcards.variant,
        wildcards.seed,
    )
    return BATCH_RUN.format(batch=BATCH_OF[key])


def batch_observations(wildcards) -> list[str]:
    """The observations of a batch."""
    batch = BATCHES[wildcards.batch]
    return [
        OBSERVATION.format(
            dataset=batch["dataset"], task=task, level=level, image=image
        )
        for task, level, image in batch["observations"]
    ]


def batch_params(wildcards) -> str:
    """The flags of a batch's `dip restore`: its variant's net, its fit settings and its seeds."""
    batch = BATCHES[wildcards.batch]
    task, level, image = batch["observations"][0]
    member = wildcards_of(variant=batch["variant"], task=task, level=level)
    seeds = " ".join(shlex.quote(str(seed)) for seed in batch["seeds"])
    return (
        f"--variant {shlex.quote(batch['variant'])} --arch-json {shlex.quote(arch_json(member))}"
        f" {fit_flags(member)} --seeds {seeds}"
    )


def seed_runs(wildcards) -> list[str]:
    """The fits of every seed of a variant on one observation, for their mean."""
    seeds = level_fit(config, wildcards.task, wildcards.level)["seeds"]
    return expand(DIP_RUN, seed=seeds, **wildcards)


def metrics_files() -> list[str]:
    """Every run's metrics record (its scores, or its failure): DIP fits, the outputs combined from them, baselines."""
    return run_files(METRICS, GRID.named_runs())


def scored_folders() -> list[str]:
    """Every observation and run folder that the metrics records score. They are targets: Snakemake makes a missing
    file again only where a job that needs it runs, or it is a target, so a folder deleted, or removed by Snakemake
    after its job failed (a killed fit), would otherwise stay missing while the summary kept its old records.
    """
    return run_files(OBSERVATION, OBSERVATIONS) + run_files(RUN, GRID.named_runs())


def all_targets() -> list[str]:
    """The final outputs: the summary, the tables and figures of every task that some dataset runs, and the viewer;
    and, so that a job that failed or a folder deleted is made again, what they are made of: every observation and run
    folder (`scored_folders`) and the render folders that the tables and figures are copied from.
    """
    tasks = [task for task in TASKS if task in set(OBSERVATIONS.task)]
    return [
        *scored_folders(),
        PATHS.summary,
        "results/viewer",
        *expand(RENDERED, task=tasks),
        *expand("results/tables/{task}.{ext}", task=tasks, ext=["md", "tex", "html"]),
        *expand(
            "results/figures/{task}-{figure}.png",
            task=tasks,
            figure=["psnr", "curves", "images"],
        ),
    ]


def publish_rendered(rendered: str, outputs: list[str], log: str) -> None:
    """Put each of `outputs` (`results/tables/T.md`, …) in place from the render folder (`<rendered>/tables/T.md`),
    each whole: a copy beside it, renamed over the last one."""
    with open(log, "w") as handle:
        for output in outputs:
            source = os.path.join(
                rendered,
                os.path.basename(os.path.dirname(output)),
                os.path.basename(output),
            )
            partial = f"{output}.partial"
            try:
                shutil.copyfile(source, partial)
                os.replace(partial, output)
            finally:
                if os.path.exists(partial):
                    os.remove(partial)
            print(f"{source} -> {output}", file=handle)


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
