"""Checkpoints written by earlier versions of the fit loop still resume, to the result of an uninterrupted fit.

`tests/data/fit-v1.ckpt` was written by the fit loop of commit 1ebfa86 (before the loop became named steps): the fit
below interrupted at iteration 25; `tests/data/fit-v1-reference.pt` holds that code's uninterrupted result. Both were
made with `python -m tests.test_fit_checkpoint_format` on that commit, on another CPU: their numbers carry its rounding,
so this CPU's fit is compared with them within a tolerance, and byte for byte only with a checkpoint of the first
format made here (this checkout's, cut down to the parts the stored one has).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from dip.fit import FitInterrupted, FitProblem, FitSettings, fit
from dip.models import build_model, make_input
from tests.test_fit import StopAfter

DATA = Path(__file__).parent / "data"
CHECKPOINT, REFERENCE = DATA / "fit-v1.ckpt", DATA / "fit-v1-reference.pt"
SPEC = {"preset": "tiny", "channels_down": [4, 8], "channels_up": [4, 8], "channels_skip": [2, 2], "input_depth": 4}
SIDE = 32
INTERRUPTED_AT = 25
SETTINGS = FitSettings(
    iterations=40,
    lr=0.01,
    ema=0.9,
    stopping="es-wmv",
    es_window=5,
    es_patience=8,
    es_continue=True,
    backtrack_every=10,
    trace_every=5,
    checkpoint_every=10,
    frames=4,
    frame_side=16,
    seed=3,
)
"""Every part of a checkpoint in use: output averaging, a stopping rule that fires (and goes on), frames, snapshots."""


def legacy_problem() -> FitProblem:
    """A tiny skip net fitted to a noisy 32×32 ramp."""
    torch.manual_seed(SETTINGS.seed)
    net = build_model(SPEC, 3)
    net_input = make_input(SPEC, SIDE, SIDE, torch.Generator().manual_seed(SETTINGS.seed))
    ramp = torch.linspace(0, 1, SIDE)
    clean = (ramp[None, None, :, None] * ramp[None, None, None, :]).expand(1, 3, SIDE, SIDE).contiguous()
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(7))
    return FitProblem(net, net_input, nn.Identity(), (clean + 0.1 * noise).clamp(0, 1), clean)


def _summary(result) -> dict:
    return {
        "output": result.output,
        "last_output": result.last_output,
        "losses": [row["loss"] for row in result.trace],
        "iterations": result.iterations,
        "selected_iteration": result.selected_iteration,
        "early_stop": result.early_stop,
        "frames": [frame.iteration for frame in result.frames],
    }


def in_format_of(state: Any, template: Any) -> Any:
    """`state` cut down to the keys that `template` has, in its dicts at every depth."""
    if isinstance(state, dict) and isinstance(template, dict):
        return {key: in_format_of(value, template[key]) for key, value in state.items() if key in template}
    return state


def test_a_checkpoint_of_the_first_format_resumes_to_the_uninterrupted_result(tmp_path):
    first_format = torch.load(CHECKPOINT, weights_only=False)
    checkpoint = tmp_path / "fit.ckpt"
    with pytest.raises(FitInterrupted, match=f"iteration {INTERRUPTED_AT}"):
        fit(
            legacy_problem(),
            SETTINGS,
            fingerprint="legacy",
            checkpoint=checkpoint,
            stop_event=StopAfter(INTERRUPTED_AT),
        )
    state = in_format_of(torch.load(checkpoint, weights_only=False), first_format)
    assert {"watchers", "langevin"}.isdisjoint(state) and set(state) == set(first_format)
    torch.save(state, checkpoint)
    resumed = fit(legacy_problem(), SETTINGS, fingerprint="legacy", checkpoint=checkpoint)
    uninterrupted = fit(legacy_problem(), SETTINGS, fingerprint="legacy")
    assert resumed.resumed_from == INTERRUPTED_AT
    got, want = _summary(resumed), _summary(uninterrupted)
    assert torch.equal(got.pop("output"), want.pop("output"))
    assert torch.equal(got.pop("last_output"), want.pop("last_output"))
    assert got == want
    assert [frame.pixels.shape for frame in resumed.frames] == [(3, 16, 16)] * len(resumed.frames)


def test_the_stored_checkpoint_resumes_to_the_result_of_the_code_that_wrote_it(tmp_path):
    """The same fit as the code that wrote the checkpoint, up to this CPU's rounding over the 15 iterations after it:
    measured ≤ 2e-7 on the outputs and ≤ 3e-7 relative on the losses with AVX-512, AVX2 and SSE4.1 kernels (the
    tolerances, 1e-5 and 1e-4, are 50× and 300× that); the rule's pick (a variance 17 % below any other before it
    fires) and where it fires do not move."""
    checkpoint = tmp_path / "fit.ckpt"
    checkpoint.write_bytes(CHECKPOINT.read_bytes())
    resumed = fit(legacy_problem(), SETTINGS, fingerprint="legacy", checkpoint=checkpoint)
    assert resumed.resumed_from == INTERRUPTED_AT
    got, reference = _summary(resumed), torch.load(REFERENCE, weights_only=False)
    assert torch.allclose(got.pop("output"), reference.pop("output"), rtol=0, atol=1e-5)
    assert torch.allclose(got.pop("last_output"), reference.pop("last_output"), rtol=0, atol=1e-5)
    assert got.pop("losses") == pytest.approx(reference.pop("losses"), rel=1e-4)
    assert got["early_stop"].pop("psnr_gt") == pytest.approx(reference["early_stop"].pop("psnr_gt"), abs=1e-4)
    assert got == reference


def _write_fixture() -> None:
    """Write the checkpoint and the reference result with the fit loop of this checkout."""
    CHECKPOINT.unlink(missing_ok=True)
    with contextlib.suppress(FitInterrupted):
        fit(
            legacy_problem(),
            SETTINGS,
            fingerprint="legacy",
            checkpoint=CHECKPOINT,
            stop_event=StopAfter(INTERRUPTED_AT),
        )
    torch.save(_summary(fit(legacy_problem(), SETTINGS, fingerprint="legacy")), REFERENCE)


if __name__ == "__main__":
    _write_fixture()
    sys.exit(0)
