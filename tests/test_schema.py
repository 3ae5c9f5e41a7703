"""The workflow's config schema agrees with the code: its enums are the Python registries (presets, precisions,
stopping rules, task types, level grammars where they can be listed, baselines per task, run outputs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dip.api import COMBINED_OUTPUTS
from dip.device import DEVICES, PRECISIONS
from dip.layout import SEED_MEAN
from dip.methods import METHODS
from dip.models import PRESETS
from dip.stopping import EARLY_STOPPING_RULES, STOPPING_RULES
from dip.tasks import TASKS, make_operator
from dip.tasks.denoising import NOISE_SEVERITIES
from dip.tasks.super_resolution import SR_FACTORS, SR_LR_CONVENTIONS

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text())
FIT = SCHEMA["$defs"]["fit"]["properties"]
PROPERTIES = SCHEMA["properties"]


def levels(task: str) -> list[str]:
    """The levels the schema admits for `task`, as strings (a number and its string are one level)."""
    return sorted({str(level) for level in PROPERTIES["tasks"]["properties"][task]["items"]["enum"]})


def test_task_names_are_the_task_types() -> None:
    for where in (
        PROPERTIES["tasks"]["properties"],
        PROPERTIES["fit"]["properties"],
        PROPERTIES["baselines"]["properties"],
        PROPERTIES["datasets"]["additionalProperties"]["properties"]["tasks"]["items"]["enum"],
    ):
        assert sorted(where) == sorted(TASKS)


def test_presets_precisions_and_stopping_rules_are_the_registries() -> None:
    preset = PROPERTIES["variants"]["additionalProperties"]["properties"]["preset"]["enum"]
    assert sorted(preset) == sorted(PRESETS)
    assert sorted(FIT["precision"]["enum"]) == sorted(PRECISIONS)
    assert sorted(FIT["stopping"]["enum"]) == sorted(STOPPING_RULES)
    assert sorted(FIT["watch"]["items"]["enum"]) == sorted(EARLY_STOPPING_RULES)


def test_devices_are_the_ones_the_code_selects() -> None:
    pattern = PROPERTIES["device"]["pattern"]
    assert all(re.fullmatch(pattern, device) for device in (*DEVICES, "cuda:1"))
    assert not re.fullmatch(pattern, "tpu")


def test_outputs_are_the_combined_runs() -> None:
    combined = [output for output in COMBINED_OUTPUTS if output != "restored"]
    assert sorted(FIT["outputs"]["items"]["enum"]) == sorted([*combined, SEED_MEAN])


@pytest.mark.parametrize("task", TASKS)
def test_every_level_of_the_schema_is_a_canonical_level_of_its_task(task: str) -> None:
    for level in levels(task):
        assert make_operator(task, level).level == level


def test_enumerable_level_grammars_are_listed_whole() -> None:
    factors = {str(f) if lr == "lanczos" else f"{f}-{lr}" for f in SR_FACTORS for lr in SR_LR_CONVENTIONS}
    assert set(levels("super-resolution")) == factors
    assert levels("flash-no-flash") == ["pair"]
    kinds = {level.split("-")[0] for level in levels("denoising") if not level.replace(".", "").isdigit()}
    assert kinds == set(NOISE_SEVERITIES)


@pytest.mark.parametrize("task", TASKS)
def test_baselines_per_task_are_those_its_levels_take(task: str) -> None:
    schema: list[Any] = PROPERTIES["baselines"]["properties"][task]["items"]["enum"]
    taken = {method for level in levels(task) for method in make_operator(task, level).baselines}
    assert set(schema) == taken
    assert set(schema) <= set(METHODS)
