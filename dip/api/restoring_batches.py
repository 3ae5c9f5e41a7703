"""`dip restore --seeds`/several observations: fits of one net and one image size run as one batch, each writing the
run folder `restore` would."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dip.api.restoring import (
    check_run_paths,
    finish_run,
    prepare_device,
    record_of_device,
    record_of_fit,
    run_record,
    settings_for,
)
from dip.api.runs import Restoration, as_observation
from dip.cost import CostMeter
from dip.errors import ConfigError, DipError, OutOfMemory
from dip.failures import check_upstream
from dip.layout import seed_run
from dip.replacing import locked
from dip.tasks import Observation, Operator, operator_for

if TYPE_CHECKING:
    import torch

    from dip.fit import FitResult
    from dip.fit_settings import FitSettings


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
    from dip.device import nondeterministic_kernels

    meter = CostMeter()
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
    with _locks(ready):
        device_, gpu_slot, ran, precision_record = prepare_device(
            device, ready[0].settings, threads, deterministic, batched=True
        )
        for member in ready:
            member.settings = replace(member.settings, precision=ran.precision, channels_last=ran.channels_last)
        with nondeterministic_kernels() as nondeterministic:
            results = _fit_batches(ready, device_, use_ground_truth, stop_event, progress)
        # once for the batch: it may query the GPU
        device_record = record_of_device(device_, gpu_slot, precision_record, deterministic, nondeterministic)
        cost = _shared_cost(meter.finish(device_), len(ready))
        fits: list[BatchFit] = []
        for run_dir, identity, member in planned:
            outcome = member if isinstance(member, DipError) else results[id(member)]
            if isinstance(outcome, DipError):
                fits.append(BatchFit(run_dir, identity, outcome))
                continue
            assert isinstance(member, _BatchMember)
            result, facts = outcome
            record = run_record(
                member.observation,
                member.spec,
                member.variant,
                method,
                record_of_fit(result, member.settings, facts),
                smoke_iterations,
                device_record,
                **cost,
                batch=facts["batch"],
            )
            try:
                fits.append(BatchFit(run_dir, identity, finish_run(result, record, run_dir)))
            except DipError as error:
                fits.append(BatchFit(run_dir, identity, error))
        return fits


@contextlib.contextmanager
def _locks(members: list[_BatchMember]) -> Iterator[None]:
    """Hold the locks of the members' run directories and checkpoints (`dip.replacing.locked`)."""
    with contextlib.ExitStack() as stack:
        for member in members:
            stack.enter_context(locked(member.run_dir))
            stack.enter_context(locked(member.checkpoint, "--checkpoint"))
        yield


def _shared_cost(cost: dict[str, Any], fits: int) -> dict[str, Any]:
    """Each fit's share of what the fits of one call cost together: the wall seconds divided among them; the peak
    memory is the process's, for all of them at once (`cost_shared_by` says among how many)."""
    return {**cost, "wall_seconds": cost["wall_seconds"] / fits, "cost_shared_by": fits}


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
        return as_observation(given)
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
    fit_settings = settings_for(operator, {**settings, "seed": seed}, smoke_iterations)
    run_dir = Path(out) / run
    checkpoint_file = None if checkpoint is None else Path(checkpoint) / run.parent / f"{run.name}.ckpt"
    check_run_paths(run_dir, checkpoint_file, given)
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
    from dip.memory import MEMORY_ERRORS, out_of_memory
    from dip.models import count_parameters
    from dip.restoration import build_problem, fit_key, source_of

    outcomes: dict[int, tuple[FitResult, dict[str, Any]] | DipError] = {}
    batches: dict[tuple[str, tuple[int, ...]], list[_BatchMember]] = {}
    for member in members:
        shape = member.operator.output_shape(member.observation)
        batches.setdefault((json.dumps(member.spec, sort_keys=True), tuple(shape)), []).append(member)
    for batch in batches.values():
        problems, ready = [], []
        try:
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
                            fitting=None if problems else member.settings,  # the batch's memory, checked once
                            batch=len(batch),
                        )
                    )
                    ready.append(member)
                except OutOfMemory as error:  # refused for the whole batch (only its first net is checked)
                    outcomes.update((id(other), error) for other in batch if id(other) not in outcomes)
                    break
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
        except MEMORY_ERRORS as error:
            problems.clear()
            what = f"a batch of {len(batch)} fits of {source_of(batch[0].observation.meta)}"
            stopped = out_of_memory(error, device, what)
            outcomes.update((id(member), stopped) for member in batch if id(member) not in outcomes)
            continue
        for member, problem, key, result in zip(ready, problems, keys, results, strict=True):
            facts = {
                "parameters": count_parameters(problem.net),
                "fingerprint": key,
                "batch": len(ready),
            }
            outcomes[id(member)] = result if isinstance(result, DipError) else (result, facts)
    return outcomes
