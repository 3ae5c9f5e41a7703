"""The Python API: each use case of the `dip` command as one function, over arrays and objects as well as files.

>>> import numpy as np
>>> import dip
>>> clean = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
>>> observation = dip.degrade(clean, "denoising", "25", seed=0)
>>> result = dip.restore(observation, arch="tiny", iterations=5)
>>> result.output.shape
(64, 64, 3)
>>> scores = dip.evaluate(result.output, observation)
>>> scores["protocol"], scores["psnr"] > 0
('rgb', True)
>>> bm = dip.baseline(observation, "tv")
>>> bm.output.shape == clean.shape
True

Each function also takes paths (an image file, an observation or run directory) and, given `out`, writes what the
matching `dip` command writes, so a notebook and a workflow job produce the same files.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dip.datasets import exported_source
from dip.errors import ConfigError, DipError, OutputError
from dip.failures import check_upstream
from dip.io import read_image, write_image
from dip.layout import LAST, RECORD, RESTORED, TRACE, dip_method, last_method, mean_method, seed_run
from dip.metrics import evaluate as score
from dip.metrics import psnr
from dip.outputs import BASELINE_RUN, CHECKPOINT, COMBINED_RUN, DIP_RUN, METRICS, OBSERVATION, claim, clear
from dip.record import fingerprint, read_json, versions, write_json, write_trace
from dip.tasks import Observation, Operator, make_operator, operator_for
from dip.tasks.observation_dir import load_observation, save_observation

if TYPE_CHECKING:
    import torch

    from dip.fit import FitResult, FitSettings

log = logging.getLogger(__name__)

RECORDED_META = {"task": "task", "level": "level", "factor": "factor", "lr": "lr_convention", "sigma": "sigma"}
"""Observation meta → metrics key (`lr`, how the LR image was made, is `lr_convention`: not the learning rate)."""
COMBINED_OUTPUTS = {"restored": RESTORED, "last": LAST}
"""What `combine` takes from each run: its chosen output, or a DIP fit's last output."""
FIT_OVERRIDES = ("iterations", "lr", "reg_noise_std", "ema", "backtrack_db", "stopping")
"""The settings a task object's paper values give (`stopping` where its source stops early), which a caller may
override."""


@dataclass
class Restoration:
    """A restored image (float32 (H, W, C) in [0, 1]) and its run record; DIP runs also carry their trace."""

    output: np.ndarray
    record: dict[str, Any]
    trace: list[dict[str, float]] = field(default_factory=list)


def _read_run(run_dir: Path, image: str = RESTORED) -> tuple[dict[str, Any], np.ndarray]:
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


def _observation(observation: Observation | str | Path) -> Observation:
    return observation if isinstance(observation, Observation) else load_observation(observation)


def _path(value: object) -> str | Path | None:
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


def degrade(
    image: np.ndarray | str | Path,
    task: str,
    level: str,
    *,
    seed: int = 0,
    mask_file: str | Path | None = None,
    flash_file: str | Path | None = None,
    observed: bool = False,
    multiple: int = 32,
    labels: dict[str, str] | None = None,
    out: str | Path | None = None,
) -> Observation:
    """The observation x0 of a clean image (an array, or an image file) for a task and level; written to `out`.

    `observed`: the image is already degraded (a user's own photo) and is x0 as it is, with no ground truth: for
    super-resolution the low-resolution photo, for denoising a noisy photo of noise level `level`, for inpainting
    (level 'file') a photo whose `mask_file` marks the known pixels. `flash_file`: flash-no-flash's flash photo (the
    image is then the no-flash photo, always taken as it is)."""
    if out is not None:
        out = claim(out, OBSERVATION, inputs=[_path(image), mask_file, flash_file])
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ConfigError(f"multiple must be ≥ 1, got {multiple}")
    source = None
    for path in (image, mask_file, flash_file):
        if isinstance(path, str | Path):
            check_upstream(Path(path))
    if isinstance(image, str | Path):
        source = exported_source(Path(image))
        image = read_image(image)
    operator = make_operator(
        task,
        level,
        mask_path=None if mask_file is None else str(mask_file),
        flash_path=None if flash_file is None else str(flash_file),
    )
    observation = operator.observe(image, seed, multiple=multiple, source=source, labels=labels, observed=observed)
    if out is not None:
        clear(out, OBSERVATION)
        save_observation(observation, out)
    return observation


def restore(
    observation: Observation | str | Path,
    *,
    arch: str | dict[str, Any] | None = None,
    method: str | None = None,
    variant: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    deterministic: bool = False,
    checkpoint: str | Path | None = None,
    out: str | Path | None = None,
    use_ground_truth: bool = True,
    progress: bool | None = False,
    smoke_iterations: int | None = None,
    stop_event: threading.Event | None = None,
    **settings: Any,
) -> Restoration:
    """Restore an observation with Deep Image Prior.

    `arch`: a preset name or a model spec (default: the authors' net for the task and level). `settings`: fields of
    `dip.fit.FitSettings` (None: its default); those the task's paper values cover (`FIT_OVERRIDES`) default to them.
    `smoke_iterations` caps the iterations and marks the record. With `checkpoint`, the fit saves and resumes its
    state there; with `out`, restored.png, trace.csv, the frames and record.json are written, and the checkpoint is
    deleted once they are.
    """
    from dip.models import resolve_spec
    from dip.restoration import restore as fit_observation

    out, checkpoint = _check_run_paths(out, checkpoint, observation)
    observation = _observation(observation)
    operator = operator_for(observation)
    spec = resolve_spec(arch if arch is not None else operator.paper_preset)
    fit_settings = _fit_settings(operator, settings, smoke_iterations)
    device_, gpu_slot, precision, precision_record = _prepare_device(device, fit_settings, threads, deterministic)
    fit_settings = replace(fit_settings, precision=precision)
    result, facts = fit_observation(
        observation,
        operator,
        spec,
        fit_settings,
        device=device_,
        checkpoint=checkpoint,
        stop_event=stop_event,
        use_ground_truth=use_ground_truth,
        progress=progress,
    )
    variant = variant or spec.get("preset") or spec["arch"]
    fit_record = _fit_record(result, fit_settings, facts)
    device_record = _device_record(device_, gpu_slot, precision_record)
    record = _run_record(observation, spec, variant, method, fit_record, smoke_iterations, device_record)
    return _finish_run(result, record, out)


def _run_record(
    observation: Observation,
    spec: dict[str, Any],
    variant: str,
    method: str | None,
    fit_record: dict[str, Any],
    smoke_iterations: int | None,
    device_record: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """record.json of a DIP run (`extra`, e.g. a batch's size, before the observation it restores)."""
    return {
        "kind": "restore",
        "method": method or dip_method(variant),
        "variant": variant,
        "model": spec,
        **fit_record,
        "smoke_iterations": smoke_iterations,
        **device_record,
        **extra,
        "observation": observation.meta,
        "observation_digest": observation_digest(observation),
    }


@dataclass
class _BatchMember:
    """One fit of a batch: an observation and a seed, and where its run directory and checkpoint go."""

    observation: Observation
    operator: Operator
    spec: dict[str, Any]
    settings: FitSettings
    variant: str
    run_dir: Path
    checkpoint: Path | None


def run_name(identity: dict[str, Any], name: str, variant: str, seed: int) -> Path:
    """A fit's run directory under a batch's `--out`, as the workflow names it:
    `<dataset>/<task>/<level>/<image>/dip-<variant>/seed<seed>`, from an observation's identity (`meta_identity`: task,
    level and labels); `name`, the observation directory's own name, where it has no image label; no dataset part
    without one."""
    parts = [identity["dataset"]] if "dataset" in identity else []
    parts += [identity.get("task", "unknown"), str(identity.get("level", "unknown")), identity.get("image", name)]
    return Path(*parts, seed_run(variant, seed))


@dataclass
class BatchFit:
    """One fit of `restore_batch`: its run directory and its restoration, or the error that ended it (alone)."""

    run_dir: Path
    identity: dict[str, Any]
    outcome: Restoration | DipError


def restore_batch(
    observations: list[Observation | str | Path],
    seeds: list[int],
    *,
    out: str | Path,
    arch: str | dict[str, Any] | None = None,
    method: str | None = None,
    variant: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    deterministic: bool = False,
    checkpoint: str | Path | None = None,
    use_ground_truth: bool = True,
    progress: bool | None = False,
    smoke_iterations: int | None = None,
    stop_event: threading.Event | None = None,
    **settings: Any,
) -> list[BatchFit]:
    """Restore each observation with each seed, the fits of one net and one image size as one batch (`fit_batch`);
    each fit writes its run directory under `out` (`run_name`; its checkpoint likewise under the directory
    `checkpoint`), as `restore` would. Returns each fit (observations × seeds, in that order) with its restoration,
    or the error that ended it alone."""
    _check_seeds(seeds, settings)
    planned: list[tuple[Path, dict[str, Any], _BatchMember | DipError]] = []
    for index, given in enumerate(observations):
        identity = _identity_of(given)
        name = Path(given).name if isinstance(given, str | Path) else str(index)
        loaded = _load_once(given)
        variant_name = _variant_name(loaded, arch, variant)
        for seed in seeds:
            run = run_name(identity, name, variant_name, seed)
            run_dir = Path(out) / run
            member: _BatchMember | DipError = loaded
            if not isinstance(loaded, DipError):
                try:
                    member = _batch_member(
                        given, loaded, seed, arch, variant_name, settings, smoke_iterations, out, run, checkpoint
                    )
                except DipError as error:
                    member = error
            planned.append((run_dir, {**identity, "seed": seed}, member))
    _refuse_shared_run_dirs(observations, [run_dir for run_dir, _, _ in planned], len(seeds))
    members = [member for _, _, member in planned]
    ready = [member for member in members if isinstance(member, _BatchMember)]
    if not ready:
        return [BatchFit(run_dir, identity, member) for run_dir, identity, member in planned]  # type: ignore[arg-type]
    device_, gpu_slot, precision, precision_record = _prepare_device(device, ready[0].settings, threads, deterministic)
    for member in ready:
        member.settings = replace(member.settings, precision=precision)
    results = _fit_batches(ready, device_, use_ground_truth, stop_event, progress)
    device_record = _device_record(device_, gpu_slot, precision_record)  # once: it may query the GPU
    fits: list[BatchFit] = []
    for run_dir, identity, member in planned:
        outcome = member if isinstance(member, DipError) else results[id(member)]
        if isinstance(outcome, DipError):
            fits.append(BatchFit(run_dir, identity, outcome))
            continue
        assert isinstance(member, _BatchMember)
        result, facts = outcome
        record = _run_record(
            member.observation,
            member.spec,
            member.variant,
            method,
            _fit_record(result, member.settings, facts),
            smoke_iterations,
            device_record,
            batch=facts["batch"],
        )
        try:
            fits.append(BatchFit(run_dir, identity, _finish_run(result, record, run_dir)))
        except DipError as error:
            fits.append(BatchFit(run_dir, identity, error))
    return fits


def _check_seeds(seeds: list[int], settings: dict[str, Any]) -> None:
    """A batch's seeds, each once, and none in its fit settings (taken out of them)."""
    if settings.pop("seed", None) is not None:
        raise ConfigError("a batch takes its seeds from `seeds` (--seeds), not `seed`")
    if repeated := sorted({seed for seed in seeds if seeds.count(seed) > 1}):
        raise ConfigError(
            f"--seeds: {', '.join(map(str, repeated))} given twice (each seed is one fit of each observation)"
        )


def _refuse_shared_run_dirs(observations: list[Observation | str | Path], run_dirs: list[Path], seeds: int) -> None:
    """Refuse, before any fit, two observations whose fits would write one run directory (one given twice, or two
    of the same task, level and image name)."""
    first: dict[Path, int] = {}
    for index, run_dir in enumerate(run_dirs):
        given = index // seeds
        if (other := first.setdefault(run_dir, given)) != given:
            names = [
                str(observations[i]) if isinstance(observations[i], str | Path) else f"#{i}" for i in (other, given)
            ]
            if Path(names[0]).resolve() == Path(names[1]).resolve():
                raise ConfigError(f"{names[1]}: given twice")
            raise ConfigError(
                f"{names[0]} and {names[1]} would both write {run_dir}: give each observation once (observations of "
                "one task, level and image need --out folders of their own)"
            )


def _identity_of(given: Observation | str | Path) -> dict[str, Any]:
    """Task, level and labels of an observation (of its failure record, where a step before failed)."""
    from dip.failures import meta_identity, observation_identity

    return observation_identity(Path(given)) if isinstance(given, str | Path) else meta_identity(given.meta)


def _load_once(given: Observation | str | Path) -> Observation | DipError:
    """A batch's observation, read once for all its seeds; the error of a failed step before, or of a bad file."""
    try:
        if isinstance(given, str | Path):
            check_upstream(Path(given))
        return _observation(given)
    except DipError as error:
        return error


def _variant_name(loaded: Observation | DipError, arch: str | dict[str, Any] | None, variant: str | None) -> str:
    """The variant's name in run directories and records: the one given, else the preset's (or arch's) name."""
    from dip.models import resolve_spec

    if variant:
        return variant
    if arch is None and isinstance(loaded, DipError):
        return "paper"  # an observation that cannot be read: its fits fail, under the name of the paper's net
    if arch is None:
        try:
            arch = operator_for(loaded).paper_preset
        except DipError:
            return "paper"  # nor one whose operator cannot be rebuilt
    spec = resolve_spec(arch)
    return spec.get("preset") or spec["arch"]


def _batch_member(
    given: Observation | str | Path,
    observation: Observation,
    seed: int,
    arch: str | dict[str, Any] | None,
    variant: str,
    settings: dict[str, Any],
    smoke_iterations: int | None,
    out: str | Path,
    run: Path,
    checkpoint: str | Path | None,
) -> _BatchMember:
    """One fit of a batch, checked before any fit runs (its settings, its run directory and checkpoint writable)."""
    from dip.models import resolve_spec

    operator = operator_for(observation)
    spec = resolve_spec(arch if arch is not None else operator.paper_preset)
    fit_settings = _fit_settings(operator, {**settings, "seed": seed}, smoke_iterations)
    run_dir = Path(out) / run
    checkpoint_file = None if checkpoint is None else Path(checkpoint) / run.parent / f"{run.name}.ckpt"
    _check_run_paths(run_dir, checkpoint_file, given)
    return _BatchMember(observation, operator, spec, fit_settings, variant, run_dir, checkpoint_file)


def _fit_batches(
    members: list[_BatchMember],
    device: torch.device,
    use_ground_truth: bool,
    stop_event: threading.Event | None,
    progress: bool | None,
) -> dict[int, tuple[FitResult, dict[str, Any]] | DipError]:
    """Fit the members in batches of one net and one image size; each member's (result, facts), or its error."""
    import json

    from dip.fit import fit_batch
    from dip.models import count_parameters
    from dip.restoration import build_problem, fit_key

    outcomes: dict[int, tuple[FitResult, dict[str, Any]] | DipError] = {}
    batches: dict[tuple[str, tuple[int, ...]], list[_BatchMember]] = {}
    for member in members:
        shape = member.operator.output_shape(member.observation)
        batches.setdefault((json.dumps(member.spec, sort_keys=True), tuple(shape)), []).append(member)
    for batch in batches.values():
        problems, ready = [], []
        for member in batch:
            try:
                problems.append(
                    build_problem(
                        member.observation,
                        member.operator,
                        member.spec,
                        seed=member.settings.seed,
                        device=device,
                        use_ground_truth=use_ground_truth,
                    )
                )
                ready.append(member)
            except DipError as error:
                outcomes[id(member)] = error
        if not ready:
            continue
        keys = [fit_key(m.observation, m.spec, m.settings) for m in ready]
        results = fit_batch(
            problems,
            [m.settings for m in ready],
            fingerprints=keys,
            checkpoints=[m.checkpoint for m in ready],
            stop_event=stop_event,
            progress=progress,
        )
        for member, problem, key, result in zip(ready, problems, keys, results, strict=True):
            facts = {
                "parameters": count_parameters(problem.net),
                "fingerprint": key,
                "batch": len(ready),
            }
            outcomes[id(member)] = result if isinstance(result, DipError) else (result, facts)
    return outcomes


def _fit_settings(operator: Operator, given: dict[str, Any], smoke_iterations: int | None) -> FitSettings:
    """The fit's settings: those given, over the task's paper values and its known noise σ; `smoke_iterations` caps
    the iterations."""
    from dip.fit import FitSettings

    given = {key: value for key, value in given.items() if value is not None}
    merged = {**operator.paper_fit(), "noise_sigma": operator.noise_sigma, **given}
    if smoke_iterations:
        merged["iterations"] = smoke_iterations
    try:
        return FitSettings(**merged)
    except TypeError as error:
        raise ConfigError(f"unknown fit setting: {error}") from None


def _prepare_device(
    device: str, settings: FitSettings, threads: int | None, deterministic: bool
) -> tuple[torch.device, int | None, str, dict[str, str]]:
    """The device of the fit (with several GPUs, a free one of its own: its slot), set up for it, and the precision
    it runs (`auto` resolved) with the record of how it was chosen."""
    import torch

    from dip.device import (
        check_precision,
        configure_cuda,
        configure_threads,
        resolve_precision,
        select_device,
        set_deterministic,
        tune_cpu_allocator,
    )
    from dip.gpu_slots import claim as claim_gpu

    device_, gpu_slot = claim_gpu(select_device(device))
    precision, why = resolve_precision(settings.precision, device_, settings.channels_last)
    check_precision(precision, device_)
    configure_threads(threads)
    set_deterministic(deterministic)
    configure_cuda(device_, precision, autotune=not deterministic)
    if device_.type == "cpu":
        tune_cpu_allocator()
    if device_.type == "cuda":
        if device_.index is not None:
            torch.cuda.set_device(device_)  # no CUDA context on GPU 0 for a fit of another GPU
        torch.cuda.reset_peak_memory_stats(device_)
    return device_, gpu_slot, precision, {"asked": settings.precision, "ran": precision, "why": why}


def _device_record(device: torch.device, gpu_slot: int | None, precision: dict[str, str]) -> dict[str, Any]:
    """The part of a run record that tells where and how the fit ran (after it: its peak GPU memory)."""
    import torch

    from dip.device import describe_device

    return {
        "precision": precision,
        "device": describe_device(device),
        "gpu_slot": gpu_slot,
        "gpu_memory_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


def _check_run_paths(
    out: str | Path | None, checkpoint: str | Path | None, observation: object = None
) -> tuple[Path | None, Path | None]:
    """The run directory and the checkpoint, claimed before the fit (`dip.outputs`: writable, not an input, not
    another step's output); the checkpoint lies outside `out`."""
    if out is not None:
        out = claim(out, DIP_RUN, inputs=[_path(observation)])
    if checkpoint is not None:
        checkpoint = claim(checkpoint, CHECKPOINT, option="--checkpoint", inputs=[_path(observation), out])
    if checkpoint and out and checkpoint.resolve().is_relative_to(out.resolve()):
        raise ConfigError("--checkpoint must lie outside --out (a workflow deletes a job's outputs before it starts)")
    return out, checkpoint


def _fit_record(result: FitResult, settings: FitSettings, facts: dict[str, Any]) -> dict[str, Any]:
    """The part of a run record that tells how the fit went."""
    return {
        "parameters": facts["parameters"],
        "fit": asdict(settings),
        "seed": settings.seed,
        "iterations": result.iterations,
        "selected_iteration": result.selected_iteration,
        "output": result.output_kind,
        "stop_reason": result.stop_reason,
        "early_stop": result.early_stop,
        "watched": result.watched,
        "backtracks": result.backtracks,
        "resumed_from": result.resumed_from,
        "seconds": result.seconds,
        "seconds_per_iteration": result.seconds / max(1, result.iterations),
        "versions": versions(),
        "fingerprint": facts["fingerprint"],
        "warnings": result.notes,
    }


def _finish_run(result: FitResult, record: dict[str, Any], out: Path | None) -> Restoration:
    """Write the run directory (restored.png, last.png, trace.csv, the frames, record.json) where `out` is given,
    then delete the checkpoint: the fit is kept until all its outputs are."""
    from dip.fit import LAST_OUTPUT
    from dip.frames import write_frames
    from dip.io import to_numpy

    restored = to_numpy(result.output)
    if out is not None:
        try:
            clear(out, DIP_RUN)
            write_image(out / RESTORED, restored)
            if record["output"] != LAST_OUTPUT:
                write_image(out / LAST, to_numpy(result.last_output))
            write_trace(out / TRACE, result.trace)
            write_frames(out, result.frames, restored.shape[:2])
            write_json(out / RECORD, record)
        except (OSError, DipError) as error:
            with contextlib.suppress(OSError):  # what this attempt wrote: a second one finds the folder its own
                clear(out, DIP_RUN)
            if isinstance(error, DipError):
                raise
            kept = result.checkpoint
            after = f"the fit is kept in {kept}: run the same command again" if kept else "no checkpoint kept the fit"
            raise OutputError(f"cannot write {error.filename or out} ({error.strerror or error}); {after}") from None
        log.info("wrote %s (%d iterations, %.1f s)", out, result.iterations, result.seconds)
    if result.checkpoint:
        result.checkpoint.unlink(missing_ok=True)
    return Restoration(restored, record, result.trace)


def baseline(observation: Observation | str | Path, method: str, *, out: str | Path | None = None) -> Restoration:
    """Restore an observation with a classical baseline of its task; written to `out` (restored.png, record.json)."""
    from dip.baselines import run_baseline

    if out is not None:
        out = claim(out, BASELINE_RUN, inputs=[_path(observation)])
    observation = _observation(observation)
    operator = operator_for(observation)
    if method not in operator.baselines:
        raise ConfigError(f"no baseline {method!r} for {operator.task}; choose one of: {', '.join(operator.baselines)}")
    start = time.perf_counter()
    restored = run_baseline(method, observation.observed, **operator.baseline_arguments(observation))
    meta = observation.meta
    record = {
        "kind": "baseline",
        "method": method,
        "variant": "",
        "seed": meta.get("seed", 0),
        "iterations": 0,
        "seconds": time.perf_counter() - start,
        "device": "cpu",
        "observation": meta,
        "observation_digest": observation_digest(observation),
        "versions": versions(),
    }
    if out is not None:
        clear(out, BASELINE_RUN)
        write_image(out / RESTORED, restored)
        write_json(out / RECORD, record)
    return Restoration(restored, record)


def combine(
    runs: list[str | Path],
    *,
    output: str = "restored",
    method: str | None = None,
    out: str | Path | None = None,
) -> Restoration:
    """The pixel mean of some runs of one observation: e.g. the averaged outputs of two DIP fits with different seeds
    (the paper's denoising "averaged over two optimization runs"), or, with `output="last"` and one run, a DIP fit's
    last output where it chose another (the paper's "after 1800 optimization steps"). Written to `out` as a run
    directory (restored.png, record.json) that `evaluate` scores like any other; `method` names its table row."""
    if output not in COMBINED_OUTPUTS:
        raise ConfigError(f"output must be one of {', '.join(COMBINED_OUTPUTS)}, got {output!r}")
    if not runs:
        raise ConfigError("combine needs at least one run directory")
    if out is not None:
        out = claim(out, COMBINED_RUN, inputs=runs)
    given = [Path(run).resolve() for run in runs]
    twice = next((run for run, path in zip(runs, given, strict=True) if given.count(path) > 1), None)
    if twice is not None:
        raise ConfigError(f"{twice}: given twice; a mean over runs takes each once")
    read = [_read_run(Path(run), COMBINED_OUTPUTS[output]) for run in runs]
    records, images = [record for record, _ in read], [image for _, image in read]
    first = records[0]
    for run, record, image in zip(runs[1:], records[1:], images[1:], strict=True):
        if not _same_observation(record, first) or image.shape != images[0].shape:
            raise ConfigError(f"{run}: restores another observation than {runs[0]}; only runs of one can be combined")
        if record.get("method") != first.get("method") and method is None:
            raise ConfigError(
                f"{run} is a run of {record.get('method')}, {runs[0]} of {first.get('method')}: a mean over runs of "
                "different methods needs a name of its own (--method)"
            )
    what = "last output" if output == "last" else "chosen output"
    seeds = [record.get("seed", 0) for record in records]
    restored = np.mean(np.stack(images), axis=0, dtype=np.float64).astype(np.float32)
    combined = last_method(first["method"]) if output == "last" else mean_method(first["method"], len(runs))
    record = {
        "kind": "combine",
        "method": method or combined,
        "variant": first.get("variant", "") if all(r.get("variant") == first.get("variant") for r in records) else "",
        "seed": seeds[0],
        "seeds": seeds,
        "iterations": max(record.get("iterations", 0) for record in records),
        "smoke_iterations": first.get("smoke_iterations"),
        "selected_iteration": first.get("iterations", 1) - 1 if output == "last" else None,
        "output": f"{what} of {runs[0]}" if len(runs) == 1 else f"mean of the {what}s of {len(runs)} runs",
        "combined_from": [str(run) for run in runs],
        "seconds": sum(record.get("seconds") or 0 for record in records),
        "device": first.get("device", ""),
        "observation": first.get("observation", {}),
        "observation_digest": first.get("observation_digest"),
        "versions": versions(),
    }
    if out is not None:
        clear(out, COMBINED_RUN)
        write_image(out / RESTORED, restored)
        write_json(out / RECORD, record)
    return Restoration(restored, record)


def _same_observation(record: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two run records restore one observation: by their digests, or by the meta where one has none."""
    if record.get("observation_digest") and other.get("observation_digest"):
        return record["observation_digest"] == other["observation_digest"]
    return record.get("observation") == other.get("observation")


def _early_stop_metrics(record: dict[str, Any], restored: np.ndarray, observation: Observation) -> dict[str, Any]:
    """Where a fit's stopping rule stopped (`es_stop_iteration`, None: it never fired), what it picked
    (`es_selected_iteration`) and that output's RGB PSNR over the whole image, the trace's protocol (`es_psnr_gt`):
    from `early_stop` when the fit went on (`es_continue`), else from the fit's own selection; {} without a rule."""
    early_stop = record.get("early_stop")
    if early_stop:
        return {
            f"es_{key}": early_stop[key]
            for key in ("stop_iteration", "selected_iteration", "psnr_gt")
            if key in early_stop
        }
    stopping = (record.get("fit") or {}).get("stopping", "fixed")
    if stopping == "fixed" or not str(record.get("output", "")).startswith(f"{stopping} selection"):
        return {}
    stopped = str(record.get("stop_reason", "")).startswith(stopping)
    return {
        "es_stop_iteration": record.get("iterations") if stopped else None,
        "es_selected_iteration": record.get("selected_iteration"),
        "es_psnr_gt": psnr(restored, observation.clean, protocol="rgb") if observation.has_ground_truth else None,
    }


WATCHED_KEYS = ("stop_iteration", "selected_iteration", "psnr_gt")
"""What each watching rule records (`dip.watching.Watcher.record`)."""


def watched_column(rule: str, key: str) -> str:
    """The metrics column of a watching rule's record, e.g. `watch_es_emv_psnr_gt`."""
    return f"watch_{rule.replace('-', '_')}_{key}"


def _watched_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """Each watching rule's stop, pick and pick PSNR (`record["watched"]`) as flat metrics columns."""
    return {
        watched_column(rule, key): values.get(key)
        for rule, values in (record.get("watched") or {}).items()
        for key in WATCHED_KEYS
    }


def evaluate(
    restored: np.ndarray | Restoration | str | Path,
    observation: Observation | str | Path,
    *,
    protocol: str = "auto",
    record: dict[str, Any] | None = None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """PSNR and SSIM of a restored image (an array, a `Restoration`, or a run directory) against the observation's
    clean image, under the task's protocol (`auto`) or the one named, with the task's other protocols too; the flat
    metrics record of `dip evaluate`, written to `out`, with the observation directory where one is given (for the
    figures' image grids). An observation without ground truth gets a record without scores (`ground_truth: false`)."""
    if out is not None:
        out = claim(out, METRICS, inputs=[_path(restored), _path(observation)])
    run_dir = None
    if isinstance(restored, str | Path):
        run_dir = Path(restored)
        record, restored = _read_run(run_dir)
    elif isinstance(restored, Restoration):
        record, restored = restored.record, restored.output
    observation_dir = str(observation) if isinstance(observation, str | Path) else None
    observation = _observation(observation)
    record = record or {}
    check_same_observation(run_dir or "the run", record, observation, observation_dir or "the observation given")
    meta = observation.meta
    operator = operator_for(observation)
    protocol = operator.metric_protocol if protocol == "auto" else protocol
    metrics = {column: meta[key] for key, column in RECORDED_META.items() if key in meta}
    if observation_dir is not None:  # where the figures and the viewer find its images (a label may say otherwise)
        metrics["observation_dir"] = observation_dir
    metrics.update(meta.get("labels", {}))
    metrics.update(
        method=record.get("method", ""),
        variant=record.get("variant", ""),
        seed=record.get("seed", 0),
        ground_truth=observation.has_ground_truth,
        iterations=record.get("iterations", 0),
        smoke_iterations=record.get("smoke_iterations"),
        selected_iteration=record.get("selected_iteration"),
        seconds=record.get("seconds"),
        device=record.get("device", ""),
        run_dir=None if run_dir is None else str(run_dir),
        observation_digest=observation_digest(observation),
    )
    metrics.update(_early_stop_metrics(record, restored, observation))
    metrics.update(_watched_metrics(record))
    if observation.has_ground_truth:
        metrics.update(_scores(restored, observation, operator, protocol))
    if out is not None:
        write_json(out, metrics)
    return metrics


def _scores(restored: np.ndarray, observation: Observation, operator: Operator, protocol: str) -> dict[str, Any]:
    """The metrics record's scores: PSNR and SSIM under `protocol`, under the task's other protocols, and the observed
    input's PSNR where it has the clean image's size."""
    arguments = operator.metric_arguments()
    scores = score(restored, observation.clean, protocol=protocol, **arguments)
    metrics = {
        "protocol": protocol,
        "psnr": scores["psnr"],
        "ssim": scores["ssim"],
        "ssim_window": scores["ssim_window"],
    }
    for other in operator.protocols[1:]:
        extra = score(restored, observation.clean, protocol=other, **arguments)
        suffix = other.replace("-", "_")
        metrics.update({f"psnr_{suffix}": extra["psnr"], f"ssim_{suffix}": extra["ssim"]})
    if observation.observed.shape == observation.clean.shape:
        metrics["psnr_observed"] = score(observation.observed, observation.clean, protocol=protocol, **arguments)[
            "psnr"
        ]
    return metrics
