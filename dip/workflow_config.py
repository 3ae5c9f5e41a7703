"""Checks of the Snakemake workflow's configuration, made before any job runs.

`check_config(config, schema, overrides)` applies the `--config` overrides (with the types the schema asks for, which
Snakemake's own parsing of them does not give), validates the config with Snakemake's `validate` (which fills in the
schema's defaults), then checks what the schema cannot: variants against their arch, datasets against their images,
fit settings against each other and dataset crops against the nets of the grid (`dip.workflow_grid`), which it
returns. Each problem is a `ConfigError("<key.path>: <problem>")`, one line naming the offending key.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import yaml

from dip.errors import ConfigError, DipError
from dip.layout import SEED_MEAN
from dip.workflow_grid import Grid, benchmarked_tasks, build_grid, dataset_images, level_fit, used_images

KEY_SEPARATOR = re.compile(r"\.|__")
"""Separates the parts of a nested `--config` key: `fit.denoising.iterations` or `fit__denoising__iterations`."""
MAX_MESSAGE = 300
MAX_LISTED = 12
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def check_config(
    config: dict[str, Any],
    schema: Mapping[str, Any] | str | os.PathLike[str],
    overrides: Mapping[str, Any] | None = None,
    full: bool = True,
) -> Grid:
    """Every check of this module, in order, and the grid they leave (`dip.workflow_grid`); `config` gets the
    overrides and the schema's defaults in place. With `full=False` (the Snakemake of one job on a cluster, after the
    main one checked it all) only the schema's checks: the others build every variant's net, seconds per job."""
    schema = load_schema(schema) if isinstance(schema, (str, os.PathLike)) else schema
    apply_overrides(config, overrides or {}, schema)
    check_numbers(config, schema)
    validate_schema(config, schema)
    if config.get("smoke_iterations"):
        notes = leave_out_offline(config)
        if full:
            for note in notes:
                print(f"smoke run: {note}", file=sys.stderr)
    if not full:
        return build_grid(config)
    check_tasks(config)
    check_variants(config)
    check_given_inputs(config)
    check_datasets(config)
    grid = build_grid(config)
    check_crops(config, grid)
    return grid


def load_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The schema in a YAML (or JSON) file, with its file URI as `$id` so that relative `$ref`s resolve next to it."""
    path = Path(path).resolve()
    schema = yaml.safe_load(path.read_text(encoding="utf-8"))
    schema["$id"] = path.as_uri()
    return schema


# --- `--config` overrides -------------------------------------------------------------------------------------------


def split_key(key: str) -> list[str]:
    """The path of a `--config` key: `fit.denoising.iterations` and `fit__denoising__iterations` both name
    `config["fit"]["denoising"]["iterations"]`."""
    parts = KEY_SEPARATOR.split(key)
    if not all(parts):
        raise ConfigError(f"{key}: an empty part in a nested key (write KEY.SUBKEY or KEY__SUBKEY)")
    return parts


def apply_overrides(config: dict[str, Any], overrides: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Put the `--config KEY=VALUE` overrides in place in `config`, with the types the schema asks for.

    `overrides` is what Snakemake parsed (`workflow.config_settings.overwrite_config`), which it has already merged into
    `config`: a nested key (`fit__denoising__iterations=7`) as a top-level key, which is moved into place here, and
    flow collections (`seeds=[0,1]`) with every scalar a string, which becomes the YAML value where the schema wants
    a number, a boolean, a list or a mapping (a value still given as a string is parsed as YAML there).
    """
    for key, value in overrides.items():
        path = split_key(key)
        if len(path) > 1:
            config.pop(key, None)
        target = config
        for depth, part in enumerate(path[:-1]):
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(f"{key}: {where} is not a mapping, so it has no key {path[depth + 1]!r}")
        value = _coerce(copy.deepcopy(value), _subschema(schema, path), ".".join(path), schema)
        if isinstance(value, dict) and isinstance(target.get(path[-1]), dict):
            _merge(target[path[-1]], value)  # as Snakemake merges a mapping into the config's
        else:
            target[path[-1]] = value


def _merge(target: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _resolve_ref(root: Mapping[str, Any], schema: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """`schema` with a local `$ref` (`#/$defs/...`) replaced by its target, merged under the sibling keywords."""
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/"):
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema if isinstance(schema, Mapping) else None


def _child(root: Mapping[str, Any], schema: Mapping[str, Any] | None, key: str | int) -> Mapping[str, Any] | None:
    """The subschema of an object's property or an array's item (None where the schema says nothing)."""
    schema = _resolve_ref(root, schema)
    if schema is None:
        return None
    if isinstance(key, int):
        items = schema.get("items")
        return _resolve_ref(root, items) if isinstance(items, Mapping) else None
    if key in schema.get("properties", {}):
        return _resolve_ref(root, schema["properties"][key])
    extra = schema.get("additionalProperties")
    return _resolve_ref(root, extra) if isinstance(extra, Mapping) else None


def _subschema(root: Mapping[str, Any], path: Iterable[str]) -> Mapping[str, Any] | None:
    schema: Mapping[str, Any] | None = root
    for part in path:
        schema = _child(root, schema, part)
    return _resolve_ref(root, schema)


def _types(schema: Mapping[str, Any] | None) -> set[str]:
    kind = (schema or {}).get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def _is_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, JSON_TYPES[kind])


def _coerce(value: Any, schema: Mapping[str, Any] | None, key: str, root: Mapping[str, Any]) -> Any:
    """`value` with its strings read as YAML where the schema wants no string (see `_read_string`); `root` is the whole
    schema, which `$ref`s point into."""
    if isinstance(value, str):
        value = _read_string(value, schema, key)
    if isinstance(value, dict):
        return {k: _coerce(v, _child(root, schema, str(k)), f"{key}.{k}", root) for k, v in value.items()}
    if isinstance(value, list):
        return [_coerce(v, _child(root, schema, i), f"{key}[{i}]", root) for i, v in enumerate(value)]
    return value


def _read_string(value: str, schema: Mapping[str, Any] | None, key: str) -> Any:
    """The YAML value of a string where its type is not a string (a YAML error there is a ConfigError), where its enum
    lists the YAML value but not the string, and where the schema says nothing (e.g. a variant's hyper-parameters)."""
    types, enum = _types(schema), (schema or {}).get("enum")
    if ("string" in types) if types else (enum is not None and value in enum):
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as error:
        if not types:
            return value
        problem = str(getattr(error, "problem", None) or error).splitlines()[0]
        raise ConfigError(f"{key}: {value!r} is not a YAML value ({problem})") from None
    if isinstance(parsed, str) and "number" in types:
        with contextlib.suppress(ValueError):
            parsed = float(parsed)  # YAML 1.1 reads 1e-3 as a string
    if types:
        return parsed if any(_is_type(parsed, kind) for kind in types) else value
    return parsed if enum is None or parsed in enum else value


# --- numbers --------------------------------------------------------------------------------------------------------


def check_numbers(config: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Refuse NaN and infinity anywhere (JSON Schema's bounds let them through: NaN compares false), and read a whole
    number written as a float (`iterations: 20.0`, Snakemake's `--config smoke_iterations=1e3`) as the integer it is
    where the schema asks for an integer, which `dip restore` takes (`--iterations 20`, not `20.0`)."""
    _check_numbers(config, schema, "", schema)


def _check_numbers(value: Any, schema: Mapping[str, Any] | None, key: str, root: Mapping[str, Any]) -> Any:
    """`value` with its whole floats made integers where `schema` wants one; a non-finite number is a ConfigError."""
    if isinstance(value, dict):
        for name in value:
            value[name] = _check_numbers(value[name], _child(root, schema, str(name)), _key_path([key, name]), root)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = _check_numbers(item, _child(root, schema, index), f"{key}[{index}]", root)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{key}: {value} is not a number this benchmark takes; give a finite value")
        if value.is_integer() and "integer" in _types(schema) and "number" not in _types(schema):
            return int(value)
    return value


# --- the schema -----------------------------------------------------------------------------------------------------


def validate_schema(config: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Validate `config` against the JSON schema (draft 2020-12) that `load_schema` read, and fill in its defaults
    with Snakemake's own `validate`; a problem is one line naming its key (`_describe`), with how many others there are.

    The problems are found before the defaults are filled in: a default is a valid value, so they are the same."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match
    from snakemake.utils import validate

    errors = list(Draft202012Validator(schema).iter_errors(config))
    if errors:
        error = best_match(errors)
        others = len(errors) - 1
        more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
        raise ConfigError(_describe(error) + more)
    validate(config, url2pathname(urlparse(schema["$id"]).path), set_default=True)


def _key_path(parts: Iterable[str | int]) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _listing(names: Iterable[Any]) -> str:
    names = [str(name) for name in names]
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f", … ({len(names)} in all)" if len(names) > MAX_LISTED else "")


def _describe(error: Any) -> str:
    """`<key.path>: <problem>` for a jsonschema ValidationError (a missing or unknown key is named in the path)."""
    path = list(error.absolute_path)
    instance, schema = error.instance, error.schema
    if error.validator == "required" and isinstance(instance, Mapping):
        missing = [name for name in error.validator_value if name not in instance]
        if missing:
            return _shorten(f"{_key_path([*path, missing[0]])}: required, but missing")
    if error.validator == "additionalProperties" and isinstance(instance, Mapping) and error.validator_value is False:
        known = list(schema.get("properties", {}))
        unknown = [name for name in instance if name not in known]
        if unknown:
            return _shorten(f"{_key_path([*path, unknown[0]])}: unknown key (known: {_listing(known)})")
    return _shorten(f"{_key_path(path) or 'config'}: {error.message}")


# --- checks the schema cannot make ----------------------------------------------------------------------------------


RUN_KEYS = ("variants", "seeds", "outputs")
"""The keys of `fit.<task>` that say which runs the grid has; the others are `dip restore` flags."""


def fit_flags(settings: Mapping[str, Any]) -> list[str]:
    """A level's fit settings (`level_fit`) as `dip restore` flags: `reg_noise_std: 0.03` → `--reg-noise-std 0.03`,
    each value quoted for the shell."""
    flags = []
    for key, value in sorted(settings.items()):
        if key in RUN_KEYS or value is False:
            continue
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, list):  # `watch: [es-wmv, es-emv]` → `--watch es-wmv es-emv` (`[]`: `--watch`, none)
            flags.append(" ".join([flag, *(shlex.quote(str(item)) for item in value)]))
        else:
            flags.append(flag if value is True else f"{flag} {shlex.quote(str(value))}")
    return flags


def stopping_of(task: str, level: str | None, settings: Mapping[str, Any]) -> str:
    """The stopping rule a level's fit runs: its `stopping` setting, else its task object's default (`fixed` where
    the level is not known)."""
    from dip.tasks import make_operator

    if "stopping" in settings:
        return settings["stopping"]
    return "fixed" if level is None else make_operator(task, level).paper_fit().get("stopping", "fixed")


def check_tasks(config: Mapping[str, Any]) -> None:
    """Every task that is run has fit settings naming defined variants; `es_continue` comes with a stopping rule (set,
    or the task's default); the noise-level rule only where σ is known; `fit.<task>.levels` names levels of the task
    and nests no further."""
    from dip.tasks import make_operator

    tasks = benchmarked_tasks(config)
    if not tasks:
        raise ConfigError("tasks: every task has an empty list of levels")
    for task in tasks:
        if task not in config["fit"]:
            raise ConfigError(f"fit.{task}: a benchmarked task needs DIP fit settings")
    for task, task_settings in config["fit"].items():
        overrides = task_settings.get("levels", {})
        for level, override in overrides.items():
            if "levels" in override:
                raise ConfigError(f"fit.{task}.levels.{level}.levels: level settings do not nest")
            if task in tasks and level not in tasks[task]:
                raise ConfigError(f"fit.{task}.levels.{level}: not a level of tasks.{task} ({', '.join(tasks[task])})")
        for level in [None, *overrides]:
            key = f"fit.{task}" if level is None else f"fit.{task}.levels.{level}"
            settings = level_fit(config, task, level)
            for variant in settings["variants"]:
                if variant not in config["variants"]:
                    raise ConfigError(
                        f"{key}.variants: unknown variant {variant!r} (defined: {', '.join(config['variants'])})"
                    )
            if SEED_MEAN in settings.get("outputs", []) and len(settings["seeds"]) < 2:
                raise ConfigError(
                    f"{key}.outputs: {SEED_MEAN} averages the fits of several seeds, but {key} has one "
                    f"({settings['seeds'][0]}): give `seeds: [0, 1]` there or at the top level"
                )
            levels = [level] if level is not None else [lv for lv in tasks.get(task, []) if lv not in overrides]
            if settings.get("es_continue") and "fixed" in {stopping_of(task, lv, settings) for lv in levels or [None]}:
                raise ConfigError(
                    f"{key}.es_continue: watches an early-stopping rule, but {key} has none: "
                    "set `stopping: es-wmv` as well"
                )
            asks_sigma = "noise-level" in [*settings.get("watch", []), settings.get("stopping")]
            unknown = [lv for lv in levels if asks_sigma and make_operator(task, lv).noise_sigma is None]
            if unknown:
                raise ConfigError(
                    f"{key}: the noise-level rule needs a known Gaussian σ, which {task} {', '.join(unknown)} has "
                    "not: leave it out of `watch` there (by default it watches only where it applies)"
                )


VARIANT_FIT_KEYS = ("tv_weight", "langevin_sigma", "langevin_burnin", "langevin_every", "weight_decay")
"""The fit settings a variant may set under `fit` (the DIP variants of `dip.fit_variants`: a method, not a net)."""


def variant_spec(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A variant's model spec (`dip restore --arch-json`): its entry without `fit`."""
    return {key: value for key, value in config["variants"][name].items() if key != "fit"}


def variant_fit(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A variant's own fit settings (`fit`, e.g. DIP-TV's `tv_weight`), over those of the task and level."""
    return dict(config["variants"][name].get("fit") or {})


def check_variants(config: Mapping[str, Any]) -> None:
    """Each variant is a valid model spec: its preset's arch takes every key it overrides, with a valid value; its
    `fit` sets only `VARIANT_FIT_KEYS`, with valid values."""
    from dip.fit_settings import FitSettings
    from dip.models import resolve_spec

    for name in config["variants"]:
        try:
            resolve_spec(variant_spec(config, name))
            fit = variant_fit(config, name)
            unknown = sorted(set(fit) - set(VARIANT_FIT_KEYS))
            if unknown:
                raise ConfigError(f"fit: {', '.join(unknown)} is not one of {', '.join(VARIANT_FIT_KEYS)}")
            FitSettings(**fit)
        except ConfigError as error:
            raise ConfigError(f"variants.{name}: {error}") from None


def check_given_inputs(config: Mapping[str, Any]) -> None:
    """A task that gives the net its input (flash-no-flash: the RGB flash photo, at full size) is fitted only by
    variants that take it: input depth 3 and a full-size input."""
    from dip.models import input_scale, resolve_spec
    from dip.tasks import make_operator

    for task, levels in benchmarked_tasks(config).items():
        for level in levels:
            if not make_operator(task, level).needs_flash_file:
                continue
            for variant in level_fit(config, task, level)["variants"]:
                spec = resolve_spec(variant_spec(config, variant))
                if spec["input_depth"] != 3 or input_scale(spec) != 1:
                    raise ConfigError(
                        f"fit.{task}.variants: variant {variant!r} takes input_depth {spec['input_depth']}"
                        f"{' at 1/' + str(input_scale(spec)) + ' size' if input_scale(spec) != 1 else ''}, but the "
                        f"net's input of {task} is the flash photo (3 channels, full size): set input_depth: 3 in "
                        f"variants.{variant} (or use preset flash-no-flash)"
                    )


def check_datasets(config: Mapping[str, Any]) -> None:
    """Each source is a registered dataset or an existing folder, and the images, masks and flash photos it names are
    in it."""
    for name, dataset in config["datasets"].items():
        images = dataset_images(name, dataset)
        if images is not None and "images" in dataset:
            unknown = [image for image in dataset["images"] if image not in images]
            if unknown:
                raise ConfigError(
                    f"datasets.{name}.images: not in {dataset['source']}: {', '.join(unknown)} "
                    f"(its images: {_listing(images)})"
                )
        check_companions(name, dataset, images, "masks", ("masks", "mask images"))
        check_companions(name, dataset, images, "pairs", ("flash photos", "flash photos"))
        check_names_as_paths(name, dataset, images)


def check_names_as_paths(name: str, dataset: Mapping[str, Any], images: list[str] | None) -> None:
    """The images a dataset runs, and their masks and flash photos, have no brace in their names: a path of the
    workflow's with a brace is a Snakemake pattern whose wildcard no job can fill. (Any other character is quoted.)"""
    named = [*used_images(dataset, images), *dataset.get("masks", {}).values(), *dataset.get("pairs", {}).values()]
    braced = [image for image in named if "{" in image or "}" in image]
    if braced:
        raise ConfigError(
            f"datasets.{name}: image {braced[0]!r} has a brace in its name, which Snakemake would read as a "
            "wildcard: rename the file"
        )


STAND_IN = {"source": "skimage-samples", "images": ["astronaut"], "crop": 128}
"""The dataset that stands in, in a smoke run, for the tasks whose datasets cannot be had offline."""
STAND_IN_NAME = "offline-stand-in"


def leave_out_offline(config: dict[str, Any]) -> list[str]:
    """A smoke run checks a grid's shape without network: each dataset whose images are not on this machine is left
    out, and the embedded samples (`STAND_IN`) run the tasks left without a dataset. One note per change."""
    from dip.datasets import offline_problem

    notes = []
    for name, dataset in list(config["datasets"].items()):
        problem = offline_problem(dataset["source"], dataset.get("images"))
        if problem is not None:
            notes.append(f"dataset {name!r} ({dataset['source']}) left out: {problem}")
            del config["datasets"][name]
    tasks = benchmarked_tasks(config)
    covered = {task for dataset in config["datasets"].values() for task in dataset.get("tasks", tasks)}
    orphans = [task for task in tasks if task not in covered]
    if notes and orphans:
        config["datasets"][STAND_IN_NAME] = {**copy.deepcopy(STAND_IN), "tasks": orphans}
        notes.append(
            f"dataset {STAND_IN_NAME!r} ({STAND_IN['source']}: {', '.join(STAND_IN['images'])}, "
            f"{STAND_IN['crop']} px) stands in for {', '.join(orphans)}"
        )
    return notes


def check_companions(name: str, dataset: Mapping[str, Any], images: list[str] | None, key: str, what: str) -> None:
    """`datasets.<name>.<key>` (image -> its mask or flash photo) names used images, and companions in the source."""
    companions = dataset.get(key, {})
    unknown = sorted(set(companions) - set(used_images(dataset, images)))
    if unknown:
        raise ConfigError(f"datasets.{name}.{key}: {what[0]} of images not in the dataset: {', '.join(unknown)}")
    if images is not None:
        missing = sorted({image for image in companions.values() if image not in images})
        if missing:
            raise ConfigError(f"datasets.{name}.{key}: {what[1]} not in {dataset['source']}: {', '.join(missing)}")


def restored_side(task: str, level: str, crop: int, observed: bool = False) -> int:
    """The side of the image a DIP fit restores when `dip degrade` gets a `crop` × `crop` image (it crops it to what
    the task and level need; `observed`: an already-degraded one); a ConfigError if it cannot."""
    import numpy as np

    from dip.io import write_image
    from dip.tasks import make_operator

    image = np.zeros((crop, crop, 1), np.float32)
    with tempfile.TemporaryDirectory() as folder:
        files = {}  # a mask or flash photo of the image's size, as the dataset's images are
        for needed, key in (("needs_mask_file", "mask_path"), ("needs_flash_file", "flash_path")):
            if getattr(make_operator(task, level), needed):
                files[key] = str(Path(folder) / f"{key}.png")
                write_image(files[key], np.ones_like(image))
        operator = make_operator(task, level, **files)
        try:
            observation = operator.observe(image, 0, observed=observed)
        except DipError as error:
            raise ConfigError(str(error)) from None
    return min(operator.output_shape(observation))


def check_crops(config: Mapping[str, Any], grid: Grid | None = None) -> None:
    """A dataset's `crop` (or `shrink`, whichever is smaller) leaves images that every variant fitted on the levels its
    observations have (`grid`, by default the config's) can restore: sides that divide by the net's `required_multiple`
    and are at least its `minimum_side`."""
    from dip.models import minimum_side, required_multiple

    grid = build_grid(config) if grid is None else grid
    levels = grid.observations[["dataset", "task", "level"]].drop_duplicates()
    for name, task, level in levels.itertuples(index=False):
        dataset = config["datasets"][name]
        sizes = {key: dataset[key] for key in ("crop", "shrink") if key in dataset}
        if not sizes:
            continue
        key, crop = min(sizes.items(), key=lambda item: (item[1], item[0]))
        try:
            side = restored_side(task, level, crop, observed=bool(dataset.get("degraded")))
        except ConfigError as error:
            problem = f"{crop} is too small for {task} {level}: {error}"
            raise ConfigError(f"datasets.{name}.{key}: {problem}") from None
        overrides = config["fit"][task].get("levels", {})
        where = f"fit.{task}.levels.{level}" if "variants" in overrides.get(level, {}) else f"fit.{task}"
        for variant in level_fit(config, task, level)["variants"]:
            spec = variant_spec(config, variant)
            multiple, shortest = required_multiple(spec), minimum_side(spec)
            if side % multiple or side < shortest:
                raise ConfigError(
                    f"datasets.{name}.{key}: {crop} leaves {side}×{side} images to restore for {task} {level}, "
                    f"but variant {variant!r} ({where}.variants) needs sides that divide by {multiple} "
                    f"and are at least {shortest}"
                )
