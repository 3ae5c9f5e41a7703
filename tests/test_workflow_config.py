"""Tests of dip.workflow_config: `--config` overrides, the schema's one-line errors and defaults, and the checks of
variants, datasets, fit settings and crops that the workflow makes before any job."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.utils import validate as snakemake_validate

from dip.datasets import get_dataset
from dip.errors import ConfigError
from dip.fit import FitSettings
from dip.io import write_image
from dip.workflow_config import (
    RUN_KEYS,
    STAND_IN_NAME,
    VARIANT_FIT_KEYS,
    apply_overrides,
    check_config,
    check_crops,
    check_datasets,
    check_given_inputs,
    check_tasks,
    check_variants,
    fit_flags,
    level_fit,
    load_schema,
    split_key,
    validate_schema,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "workflow/schemas/config.schema.yaml"
SCHEMA = load_schema(SCHEMA_PATH)
TEST_CONFIG = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch, tmp_path):
    """A fresh dataset cache: no zip dataset is fetched."""
    monkeypatch.setenv("DIP_DATA_DIR", str(tmp_path / "cache"))


def config(change=None) -> dict:
    """A copy of the test configuration, changed by `change` (a function of the copy)."""
    result = copy.deepcopy(TEST_CONFIG)
    if change is not None:
        change(result)
    return result


def checked(change=None, overrides=None) -> dict:
    """The test configuration changed by `change`, as `check_config` leaves it."""
    result = config(change)
    check_config(result, SCHEMA, overrides)
    return result


def error_of(change=None, overrides=None) -> str:
    with pytest.raises(ConfigError) as caught:
        checked(change, overrides)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    return message


# --- the schema -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [".test/config/config.yaml", "config/config.yaml", "config/paper.yaml"])
def test_defaults_are_filled_in_as_snakemake_validate_fills_them(name: str) -> None:
    ours = yaml.safe_load((REPO / name).read_text())
    theirs = copy.deepcopy(ours)
    validate_schema(ours, SCHEMA)
    snakemake_validate(theirs, str(SCHEMA_PATH))
    assert ours == theirs
    assert ours["resources"]["retries"] == 1 and ours["seeds"] == [0]


def test_the_fit_keys_are_the_fit_settings() -> None:
    """`fit.<task>` holds the grid's keys (which runs, `levels`) and every field of FitSettings but the seed (one run
    per seed), the noise σ (the observation's) and a variant's own (`VARIANT_FIT_KEYS`, under `variants.<name>.fit`);
    the schema's choices are the field's."""
    properties = SCHEMA["$defs"]["fit"]["properties"]
    fields = set(FitSettings.__dataclass_fields__) - {"seed", "noise_sigma", *VARIANT_FIT_KEYS}
    assert set(properties) - {*RUN_KEYS, "levels"} == fields
    for name, setting in FitSettings.__dataclass_fields__.items():
        if "choices" in setting.metadata:
            enum = properties[name].get("enum") or properties[name]["items"]["enum"]  # `watch`: a list of them
            assert tuple(enum) == setting.metadata["choices"]


def test_defaults_are_copies_of_the_schemas() -> None:
    first, second = config(), config()
    validate_schema(first, SCHEMA)
    validate_schema(second, SCHEMA)
    first["seeds"].append(1)
    assert second["seeds"] == [0] and SCHEMA["properties"]["seeds"]["default"] == [0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["fit"]["denoising"].update(iterations=-3),
            "fit.denoising.iterations: -3 is less than the minimum of 1",
        ),
        (lambda c: c["tasks"].update(denoising=["30"]), "tasks.denoising[0]: '30' is not one of"),
        (lambda c: c["tasks"].update(deconvolution=["1"]), "tasks.deconvolution: unknown key (known: denoising,"),
        (lambda c: c["tasks"].update(deblurring=["gauss2-n2"]), "tasks.deblurring[0]: 'gauss2-n2' is not one of"),
        (lambda c: c.update(colour=True), "colour: unknown key (known: datasets, tasks,"),
        (lambda c: c["datasets"]["samples"].pop("source"), "datasets.samples.source: required, but missing"),
        (lambda c: c.pop("variants"), "variants: required, but missing"),
        (lambda c: c["datasets"]["samples"].update(crop="big"), "datasets.samples.crop: 'big' is not of type"),
        (lambda c: c.update(device="gpu"), "device: 'gpu' does not match"),
        (lambda c: c.update(seeds=[2**70]), f"seeds[0]: {2**70} is greater than the maximum of {2**63 - 1}"),
        (
            lambda c: c["fit"]["denoising"].update(seeds=[0, 2**63]),
            f"fit.denoising.seeds[1]: {2**63} is greater than the maximum of {2**63 - 1}",
        ),
        (lambda c: c.update(degradation_seed=2**63), f"degradation_seed: {2**63} is greater than the maximum"),
        (lambda c: c.update(fits_per_gpu=0), "fits_per_gpu: 0 is less than the minimum of 1"),
    ],
    ids=[
        "minimum",
        "enum",
        "unknown-key",
        "deblurring-level",
        "unknown-top-level-key",
        "required",
        "required-top-level",
        "type",
        "pattern",
        "seed-beyond-torch",
        "task-seed-beyond-torch",
        "degradation-seed-beyond-torch",
        "fits-per-gpu",
    ],
)
def test_a_schema_error_is_one_line_naming_the_key(change, message: str) -> None:
    assert error_of(change).startswith(message)


def test_several_schema_errors_report_one_and_count_the_others() -> None:
    def change(c):
        c["fit"]["denoising"]["iterations"] = 0
        c["fit"]["inpainting"]["iterations"] = 0

    def change_more(c):
        change(c)
        c["seeds"] = [-1]

    assert error_of(change).endswith("(and 1 more problem)")
    assert error_of(change_more).endswith("(and 2 more problems)")


def test_a_huge_value_is_cut_short() -> None:
    message = error_of(lambda c: c.update(seeds={f"seed{i}": i for i in range(200)}))
    assert message.startswith("seeds: {") and message.endswith("…")


# --- `--config` overrides -------------------------------------------------------------------------------------------


def test_split_key() -> None:
    assert split_key("seeds") == ["seeds"]
    assert split_key("fit.denoising.iterations") == split_key("fit__denoising__iterations")
    assert split_key("datasets__my-set__crop") == ["datasets", "my-set", "crop"]
    with pytest.raises(ConfigError, match=r"^fit\.\.lr: an empty part"):
        split_key("fit..lr")


def snakemake_merged(overrides: dict) -> dict:
    """The test configuration as Snakemake leaves it for `--config` overrides: merged in, dotted keys and all."""
    from snakemake.utils import update_config

    result = config()
    update_config(result, copy.deepcopy(overrides))
    return result


@pytest.mark.parametrize(
    ("overrides", "where", "value"),
    [
        ({"seeds": ["0", "1"]}, ("seeds",), [0, 1]),  # `seeds=[0,1]`: Snakemake reads flow scalars as strings
        ({"seeds": "[0, 1]"}, ("seeds",), [0, 1]),
        ({"fit__denoising__iterations": 7}, ("fit", "denoising", "iterations"), 7),
        ({"fit.denoising.iterations": "7"}, ("fit", "denoising", "iterations"), 7),
        ({"datasets__samples__crop": 48}, ("datasets", "samples", "crop"), 48),
        ({"fit__denoising__lr": "1e-3"}, ("fit", "denoising", "lr"), 0.001),
        ({"fit__denoising__channels_last": "true"}, ("fit", "denoising", "channels_last"), True),
        ({"tasks": {"denoising": ["25", "50"]}}, ("tasks", "denoising"), ["25", "50"]),
        ({"tasks": {"denoising": ["25"]}}, ("tasks", "super-resolution"), ["2"]),  # merged, as Snakemake does
        ({"datasets": {"samples": {"images": ["001"]}}}, ("datasets", "samples", "images"), ["001"]),
        ({"device": "cuda:0"}, ("device",), "cuda:0"),
        ({"variants__wide": {"preset": "tiny", "channels_down": ["8", "8", "8"]}}, ("variants", "wide"), None),
        ({"resources": {"mem_mb": "8000"}}, ("resources", "mem_mb"), 8000),
        ({"fits_per_gpu": "4"}, ("fits_per_gpu",), 4),
        ({"fit__super-resolution__precision": "auto"}, ("fit", "super-resolution", "precision"), "auto"),
    ],
)
def test_overrides_are_put_in_place_with_the_schemas_types(overrides: dict, where: tuple, value) -> None:
    result = snakemake_merged(overrides)
    apply_overrides(result, overrides, SCHEMA)
    assert not any("__" in key or "." in key for key in result)
    found = result
    for key in where:
        found = found[key]
    if value is None:
        assert found == {"preset": "tiny", "channels_down": [8, 8, 8]}
    else:
        assert found == value and type(found) is type(value)
    validate_schema(result, SCHEMA)


def test_overrides_leave_the_rest_of_the_config_alone() -> None:
    overrides = {"fit__denoising__iterations": 7}
    result = snakemake_merged(overrides)
    apply_overrides(result, overrides, SCHEMA)
    expected = config(lambda c: c["fit"]["denoising"].update(iterations=7))
    assert result == expected
    assert overrides == {"fit__denoising__iterations": 7}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seeds": "[0, 1"}, "seeds: '[0, 1' is not a YAML value (expected ',' or ']'"),
        ({"seeds__first": 1}, "seeds__first: seeds is not a mapping, so it has no key 'first'"),
        ({"fit__denoising__iterations": -3}, "fit.denoising.iterations: -3 is less than the minimum of 1"),
        ({"fit__denosing__iterations": 3}, "fit.denosing: unknown key"),
        ({"seeds": ["zero"]}, "seeds[0]: 'zero' is not of type 'integer'"),
    ],
)
def test_a_bad_override_is_one_line_naming_the_key(overrides: dict, message: str) -> None:
    result = snakemake_merged(overrides)
    with pytest.raises(ConfigError) as caught:
        check_config(result, SCHEMA, overrides)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("overrides", "where", "value"),
    [
        ({"fit__denoising__iterations": 20.0}, ("fit", "denoising", "iterations"), 20),  # Snakemake reads 20.0 a float
        ({"smoke_iterations": 1e3}, ("smoke_iterations",), 1000),
        ({"seeds": [0.0, 1.0]}, ("seeds",), [0, 1]),
        ({"fit__denoising__lr": 1.0}, ("fit", "denoising", "lr"), 1.0),  # a number stays a float
    ],
)
def test_a_whole_number_written_as_a_float_is_the_integer_it_is(overrides: dict, where: tuple, value) -> None:
    """JSON Schema takes 20.0 as an integer, but `dip restore --iterations 20.0` is refused by argparse: every fit
    job would fail. The checked config holds the integer, and the fit's flags say `--iterations 20`."""
    result = snakemake_merged(overrides)
    check_config(result, SCHEMA, overrides)
    found = result
    for key in where:
        found = found[key]
    assert repr(found) == repr(value)  # 20, not 20.0
    assert "--iterations 20.0" not in " ".join(fit_flags(result["fit"]["denoising"]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fit__denoising__lr": float("nan")}, "fit.denoising.lr: nan is not a number this benchmark takes"),
        ({"fit__denoising__lr": ".nan"}, "fit.denoising.lr: nan is not a number this benchmark takes"),
        ({"fit__denoising__tv_weight": float("inf")}, "fit.denoising.tv_weight: inf is not a number"),
        ({"fit__denoising__iterations": 20.5}, "fit.denoising.iterations: 20.5 is not of type 'integer'"),
        ({"fits_per_gpu": 99999999999}, "fits_per_gpu: 99999999999 is greater than the maximum of 64"),
        (
            {"variants__huge": {"preset": "tiny", "channels_down": [100000, 8, 8]}},
            "variants.huge: model key 'channels_down[0]' must be at most 4096, got 100000",
        ),
        (
            {"variants__huge": {"preset": "tiny", "input_depth": 100000}},
            "variants.huge: model key 'input_depth' must be at most 4096",
        ),
    ],
)
def test_numbers_no_job_could_run_are_refused_in_one_line(overrides: dict, message: str) -> None:
    result = snakemake_merged(overrides)
    with pytest.raises(ConfigError) as caught:
        check_config(result, SCHEMA, overrides)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(message), caught.value


# --- tasks, fit settings and variants -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["fit"]["denoising"].update(es_continue=True), "fit.denoising.es_continue: watches an early-stop"),
        (
            lambda c: c["fit"]["inpainting"].update(es_continue=True, stopping="fixed"),
            "fit.inpainting.es_continue:",
        ),
        (lambda c: c["fit"]["inpainting"].update(variants=["huge"]), "fit.inpainting.variants: unknown variant 'huge'"),
        (lambda c: c["fit"].pop("inpainting"), "fit.inpainting: a benchmarked task needs DIP fit settings"),
        (lambda c: c.update(tasks={"denoising": []}), "tasks: every task has an empty list of levels"),
    ],
)
def test_fit_settings_errors(change, message: str) -> None:
    result = config(change)
    validate_schema(result, SCHEMA)
    with pytest.raises(ConfigError) as caught:
        check_tasks(result)
    assert str(caught.value).startswith(message)


def test_es_continue_with_es_wmv_and_a_task_not_run_without_fit_settings_pass() -> None:
    def change(c):
        c["fit"]["denoising"].update(es_continue=True, stopping="es-wmv")
        c["tasks"]["inpainting"] = []
        c["fit"].pop("inpainting")

    checked(change)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"preset": "tiny", "channels": [8]}, "variants.bad: model key 'channels' is not a parameter of arch 'skip'"),
        ({"preset": "decoder", "channels_down": [8]}, "variants.bad: model key 'channels_down' is not a parameter"),
        ({"preset": "tiny", "channels_up": [8, 8]}, "variants.bad: model key 'channels_up' has 2 entries"),
        ({"preset": "tiny", "filter_size_down": 2}, "variants.bad: model key 'filter_size_down' must be an odd"),
        ({"preset": "tiny", "arch": "unet"}, "variants.bad: model key 'arch' = 'unet' conflicts with preset 'tiny'"),
    ],
)
def test_a_variant_key_its_arch_does_not_take_is_named(spec: dict, message: str) -> None:
    result = config(lambda c: c["variants"].update(bad=spec))
    with pytest.raises(ConfigError) as caught:
        check_variants(result)
    assert str(caught.value).startswith(message)


def test_every_fit_variant_runs_in_batches() -> None:
    def change(c):
        c["variants"]["sgld"] = {"preset": "tiny", "fit": {"langevin_sigma": 2.0, "weight_decay": 5e-8}}
        c["variants"]["tv"] = {"preset": "tiny", "fit": {"tv_weight": 0.01}}
        c["batch_fits"] = 4

    check_variants(config(change))


# --- datasets -------------------------------------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of three 40×40 images a, b, c, a mask image a_mask and a file that is no image."""
    folder = tmp_path / "photos"
    for name in ("a", "b", "c", "a_mask"):
        write_image(folder / f"{name}.png", np.full((40, 40, 3), 0.5, dtype=np.float32))
    (folder / "notes.txt").write_text("not an image")
    return folder


def with_dataset(**dataset):
    return lambda c: c.update(datasets={"set": dataset})


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (
            {"source": "skimage-samples", "images": ["astronaut", "lena"]},
            "datasets.set.images: not in skimage-samples: lena (its images: astronaut, chelsea,",
        ),
        ({"source": "set5", "images": ["baby", "lenna"]}, "datasets.set.images: not in set5: lenna (its images: baby"),
        ({"source": "data/no-such-folder"}, "datasets.set.source: unknown dataset 'data/no-such-folder'"),
        ({"source": "set14"}, "datasets.set.source: dataset 'set14' is a zip"),
        (
            {"source": "skimage-samples", "images": ["astronaut"], "masks": {"coffee": "astronaut"}},
            "datasets.set.masks: masks of images not in the dataset: coffee",
        ),
        (
            {"source": "skimage-samples", "limit": 1, "masks": {"coffee": "astronaut"}},
            "datasets.set.masks: masks of images not in the dataset: coffee",
        ),
        (
            {"source": "skimage-samples", "images": ["astronaut"], "masks": {"astronaut": "astronaut_mask"}},
            "datasets.set.masks: mask images not in skimage-samples: astronaut_mask",
        ),
        (
            {"source": "skimage-samples", "images": ["astronaut"], "pairs": {"coffee": "astronaut"}},
            "datasets.set.pairs: flash photos of images not in the dataset: coffee",
        ),
        (
            {"source": "skimage-samples", "images": ["astronaut"], "pairs": {"astronaut": "astronaut_flash"}},
            "datasets.set.pairs: flash photos not in skimage-samples: astronaut_flash",
        ),
    ],
)
def test_dataset_errors(dataset: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_datasets(config(with_dataset(**dataset)))
    assert str(caught.value).startswith(message)


def test_a_folder_dataset_is_checked_against_its_files(photos: Path) -> None:
    check_datasets(config(with_dataset(source=str(photos), images=["c", "a"], masks={"a": "a_mask"})))
    with pytest.raises(ConfigError, match=r"^datasets\.set\.images: not in .*photos: d \(its images: a, a_mask, b, c"):
        check_datasets(config(with_dataset(source=str(photos), images=["a", "d"])))
    with pytest.raises(ConfigError, match=r"^datasets\.set\.source: dataset folder .*empty: no images"):
        (photos.parent / "empty").mkdir()
        check_datasets(config(with_dataset(source=str(photos.parent / "empty"))))


def test_a_relative_folder_is_found_from_the_working_directory(photos: Path, monkeypatch) -> None:
    monkeypatch.chdir(photos.parent)
    check_datasets(config(with_dataset(source="photos", images=["b"])))


def test_the_image_names_of_a_zip_not_fetched_yet_are_taken_as_given() -> None:
    check_datasets(config(with_dataset(source="set14", images=["anything"])))


# --- crops ----------------------------------------------------------------------------------------------------------


def with_variant(spec: dict, tasks=("denoising", "super-resolution", "inpainting")):
    def change(c):
        c["variants"]["net"] = spec
        for task in tasks:
            c["fit"][task]["variants"] = ["net"]

    return change


@pytest.mark.parametrize(
    ("crop", "spec", "message"),
    [
        (
            32,
            {"preset": "paper"},
            "datasets.samples.crop: 32 leaves 32×32 images to restore for denoising 25, but variant 'net' "
            "(fit.denoising.variants) needs sides that divide by 32 and are at least 64",
        ),
        (
            48,
            {"preset": "light"},
            "datasets.samples.crop: 48 leaves 32×32 images to restore for denoising 25, but variant 'net' "
            "(fit.denoising.variants) needs sides that divide by 32 and are at least 64",
        ),
        (
            96,
            {"preset": "tiny", "channels_down": [8] * 6, "channels_up": [8] * 6, "channels_skip": [4] * 6},
            "datasets.samples.crop: 96 leaves 96×96 images to restore for denoising 25, but variant 'net' "
            "(fit.denoising.variants) needs sides that divide by 64 and are at least 128",
        ),
    ],
)
def test_a_crop_too_small_for_a_net_is_named(crop: int, spec: dict, message: str) -> None:
    def change(c):
        with_variant(spec)(c)
        c["datasets"]["samples"]["crop"] = crop

    assert error_of(change) == message


def test_a_shrink_smaller_than_the_crop_is_what_is_checked() -> None:
    def change(c):
        with_variant({"preset": "paper"})(c)
        c["datasets"]["samples"].update(crop=128, shrink=32)

    assert error_of(change).startswith("datasets.samples.shrink: 32 leaves 32×32 images to restore for denoising 25")


def test_a_crop_is_checked_against_each_level() -> None:
    def change(c):
        c["tasks"]["super-resolution"] = ["3"]
        c["datasets"]["samples"]["crop"] = 64

    assert error_of(change).startswith("datasets.samples.crop: 64 is too small for super-resolution 3: image is 64×64")


def test_a_crop_large_enough_passes() -> None:
    checked(lambda c: with_variant({"preset": "paper"})(c) or c["datasets"]["samples"].update(crop=64))
    checked(lambda c: with_variant({"preset": "decoder"})(c))  # its input is 1 pixel at 32 × 32


def test_a_crop_is_checked_only_for_the_variants_of_the_tasks_a_dataset_runs() -> None:
    def change(c):
        with_variant({"preset": "paper"}, tasks=["inpainting"])(c)
        c["datasets"]["samples"]["tasks"] = ["denoising", "super-resolution"]

    result = checked(change)
    check_crops(result)
    result["datasets"]["samples"]["tasks"].append("inpainting")
    with pytest.raises(ConfigError, match=r"^datasets\.samples\.crop: 32 leaves 32×32 images to restore for inpaint"):
        check_crops(result)


def test_a_crop_for_level_file_is_checked_where_the_dataset_has_masks() -> None:
    def change(c):
        c["tasks"] = {"inpainting": ["file"]}
        c["datasets"]["samples"].update(images=["astronaut", "coffee"], masks={"astronaut": "coffee"})
        with_variant({"preset": "paper"}, tasks=["inpainting"])(c)

    assert error_of(change).startswith("datasets.samples.crop: 32 leaves 32×32 images to restore for inpainting file")


# --- the repository's configurations --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [".test/config/config.yaml", "config/config.yaml"])
def test_the_repositorys_configs_pass(name: str) -> None:
    check_config(yaml.safe_load((REPO / name).read_text()), SCHEMA_PATH)


def test_the_paper_config_passes_with_its_folder_and_set14s_names(tmp_path: Path, monkeypatch) -> None:
    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^datasets\.set14\.source: dataset 'set14' is a zip"):
        check_config(copy.deepcopy(paper), SCHEMA_PATH)
    paper["datasets"]["set14"]["images"] = [f"image{i:02d}" for i in range(14)]
    with pytest.raises(ConfigError, match=r"^datasets\.cbm3d-color9\.source: unknown dataset 'data/cbm3d-color9'"):
        check_config(copy.deepcopy(paper), SCHEMA_PATH)
    for image in paper["datasets"]["cbm3d-color9"]["images"]:
        write_image(tmp_path / "data/cbm3d-color9" / f"{image}.png", np.zeros((64, 64, 3), np.float32))
    check_config(paper, SCHEMA_PATH)


def test_a_smoke_run_leaves_out_what_is_not_here_and_the_samples_stand_in(tmp_path: Path, monkeypatch, capsys) -> None:
    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    check_config(paper, SCHEMA_PATH, {"smoke_iterations": 2})
    notes = capsys.readouterr().err.splitlines()
    assert notes[0] == (
        "smoke run: dataset 'set5' (set5) left out: 5 image(s) not downloaded yet "
        "(`dip datasets fetch set5` fetches it)"
    )
    assert "smoke run: dataset 'set14' (set14) left out: not downloaded yet (`dip datasets fetch set14`" in notes[1]
    assert "smoke run: dataset 'cbm3d-color9' (data/cbm3d-color9) left out: no folder data/cbm3d-color9" in notes[2]
    assert len(notes) == 6 and "stands in for denoising, super-resolution, inpainting" in notes[-1]
    assert list(paper["datasets"]) == [STAND_IN_NAME]
    assert paper["datasets"][STAND_IN_NAME]["tasks"] == ["denoising", "super-resolution", "inpainting"]


def test_a_smoke_run_keeps_what_is_here_and_stands_in_only_for_tasks_left_without_a_dataset(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    for image in paper["datasets"]["cbm3d-color9"]["images"]:
        write_image(tmp_path / "data/cbm3d-color9" / f"{image}.png", np.zeros((64, 64, 3), np.float32))
    for file in get_dataset("set5").files:  # as a download leaves them: the run checks presence, jobs the SHA-256
        write_image(tmp_path / "cache/set5" / file.file, np.zeros((64, 64, 3), np.float32))
    check_config(paper, SCHEMA_PATH, {"smoke_iterations": 2})
    assert set(paper["datasets"]) == {"set5", "cbm3d-color9", STAND_IN_NAME}
    assert paper["datasets"][STAND_IN_NAME]["tasks"] == ["inpainting"]
    assert "set5" not in capsys.readouterr().err


# --- settings of single levels ------------------------------------------------------------------------------------
def with_levels(levels: dict):
    def change(c: dict) -> None:
        c["tasks"]["inpainting"] = ["random50", "text"]
        c["variants"]["paper"] = {"preset": "paper"}
        c["fit"]["inpainting"]["levels"] = levels
        c["datasets"]["samples"]["crop"] = 64

    return change


def test_a_level_overrides_its_tasks_fit_settings() -> None:
    result = checked(with_levels({"random50": {"variants": ["paper"], "iterations": 7}}))
    task = {key: value for key, value in result["fit"]["inpainting"].items() if key != "levels"}
    expected = {"seeds": [0], **task, "variants": ["paper"], "iterations": 7}
    assert level_fit(result, "inpainting", "random50") == expected
    assert level_fit(result, "inpainting", "text")["variants"] == ["tiny"]


def test_a_tasks_seeds_override_the_top_level_ones() -> None:
    result = checked(with_levels({"random50": {"seeds": [4, 5]}}))
    assert level_fit(result, "inpainting", "random50")["seeds"] == [4, 5]
    assert level_fit(result, "inpainting", "text")["seeds"] == [0]
    assert level_fit(result, "denoising", "25")["seeds"] == [0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["fit"]["denoising"].update(outputs=["seed-mean"]),
            "fit.denoising.outputs: seed-mean averages the fits of several seeds, but fit.denoising has one (0)",
        ),
        (
            lambda c: c["fit"]["denoising"].update(seeds=[0, 1], outputs=["seed-mean"], levels={"25": {"seeds": [2]}}),
            "fit.denoising.levels.25.outputs: seed-mean averages the fits of several seeds",
        ),
        (lambda c: c["fit"]["denoising"].update(outputs=["best"]), "fit.denoising.outputs"),
    ],
)
def test_outputs_a_level_cannot_make_are_refused(change, message: str) -> None:
    assert message in error_of(change)


def test_a_seed_mean_of_several_seeds_is_accepted() -> None:
    result = checked(lambda c: c["fit"]["denoising"].update(seeds=[0, 1], outputs=["last", "seed-mean"]))
    assert level_fit(result, "denoising", "25")["outputs"] == ["last", "seed-mean"]


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ({"box25": {"iterations": 3}}, "fit.inpainting.levels.box25: not a level of tasks.inpainting"),
        ({"random50": {"variants": ["huge"]}}, "fit.inpainting.levels.random50.variants: unknown variant 'huge'"),
        ({"random50": {"es_continue": True}}, "fit.inpainting.levels.random50.es_continue: watches"),
        ({"random50": {"levels": {}}}, "fit.inpainting.levels.random50.levels: level settings do not nest"),
        ({"random50": {"iterations": 0}}, "fit.inpainting.levels.random50.iterations"),
    ],
)
def test_bad_level_settings_name_their_key(levels: dict, message: str) -> None:
    assert message in error_of(with_levels(levels))


def test_flash_no_flash_is_fitted_only_by_variants_that_take_the_flash_photo() -> None:
    def change(c, variant):
        c["tasks"]["flash-no-flash"] = ["pair"]
        c["variants"]["rgb"] = variant
        c["fit"]["flash-no-flash"] = {"variants": ["rgb"]}

    check_given_inputs(config(lambda c: change(c, {"preset": "tiny", "input_depth": 3})))
    with pytest.raises(ConfigError) as caught:
        check_given_inputs(config(lambda c: change(c, {"preset": "tiny"})))
    assert str(caught.value).startswith(
        "fit.flash-no-flash.variants: variant 'rgb' takes input_depth 8, but the net's input of flash-no-flash is the "
        "flash photo (3 channels, full size)"
    )


# --- JPEG and the non-Gaussian noise kinds --------------------------------------------------------------------------
def with_jpeg_and_noise(c: dict) -> None:
    c["tasks"].update(jpeg=["10"], denoising=["25", "impulse-2"])
    c["fit"]["jpeg"] = {"variants": ["tiny"], "iterations": 30}
    c["baselines"].update(jpeg=["jpeg", "tv"], denoising=["nlm", "median"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["tasks"].update(jpeg=["15"]), "tasks.jpeg[0]: '15' is not one of"),
        (lambda c: c["tasks"].update(jpeg=["q10"]), "tasks.jpeg[0]: 'q10' is not one of"),
        (lambda c: c["tasks"].update(denoising=["impulse-5"]), "tasks.denoising[0]: 'impulse-5' is not one of"),
        (lambda c: c["tasks"].update(denoising=["poisson-2"]), "tasks.denoising[0]: 'poisson-2' is not one of"),
        (lambda c: c["baselines"].update(jpeg=["bm3d"]), "baselines.jpeg[0]: 'bm3d' is not one of"),
        (lambda c: c["datasets"]["samples"].update(tasks=["jpg"]), "datasets.samples.tasks[0]: 'jpg' is not one of"),
    ],
)
def test_a_bad_jpeg_or_noise_level_is_one_line_naming_the_key(change, message: str) -> None:
    assert error_of(lambda c: (with_jpeg_and_noise(c), change(c))).startswith(message)


def test_jpeg_and_noise_kinds_pass_and_es_continue_needs_no_stopping_where_the_task_has_one() -> None:
    checked(with_jpeg_and_noise)
    checked(lambda c: (with_jpeg_and_noise(c), c["fit"]["jpeg"].update(es_continue=True)))
    message = error_of(lambda c: (with_jpeg_and_noise(c), c["fit"]["denoising"].update(es_continue=True)))
    assert message.startswith("fit.denoising.es_continue: watches an early-stopping rule")  # σ=25 runs `fixed`
    only_impulse = {"levels": {"impulse-2": {"es_continue": True}}}
    checked(lambda c: (with_jpeg_and_noise(c), c["fit"]["denoising"].update(only_impulse)))
