"""Failure records: a step that fails on bad input or settings (with --record-failure) writes what failed, why and
where its log is in place of its results, and every later step passes the first failure on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from skimage import data

from dip.cli import main
from dip.io import write_files, write_image
from dip.report.aggregate import read_metrics
from dip.report.notes import run_notes
from dip.report.task_tables import render_tables
from dip.tasks.denoising import Denoising
from tests.test_fit import NanAt


def run_dip(*args: object) -> int:
    return main([str(a) for a in args])


@pytest.fixture
def observation(tmp_path: Path) -> Path:
    image = tmp_path / "a.png"
    write_image(image, data.astronaut()[100:132, 100:132].astype(np.float32) / 255)
    assert run_dip("degrade", image, "--task", "denoising", "--level", "25", "--out", tmp_path / "obs") == 0
    return tmp_path / "obs"


def test_a_diverged_fit_is_recorded_not_raised(observation: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    # a data term that is NaN at every iteration: the NaN guard gives up after --max-backtracks, whatever the rounding
    monkeypatch.setattr(Denoising, "forward_model", lambda self, observation, device="cpu": NanAt())
    diverging = ["--arch", "tiny", "--iterations", 80, "--trace-every", 1, "--quiet"]
    assert run_dip("restore", observation, *diverging, "--out", tmp_path / "plain") == 2
    assert "diverged" in capsys.readouterr().err
    log = tmp_path / "restore.log"
    assert run_dip("restore", observation, *diverging, "--out", tmp_path / "run", "--record-failure", log) == 0
    record = json.loads((tmp_path / "run" / "failure.json").read_text())
    assert record["status"] == "failed" and record["stage"] == "restore" and "diverged" in record["error"]
    assert record["log"] == str(log) and record["identity"]["method"] == "dip-tiny"
    assert not (tmp_path / "run" / "restored.png").exists()


def test_a_corrupt_image_fails_once_and_every_later_step_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    obs, log = tmp_path / "obs", "logs/degrade.log"
    labels = ["--label", "dataset=photos", "--label", "image=bad"]
    degrade = ["degrade", bad, "--task", "denoising", "--level", "25", *labels, "--out", obs]
    assert run_dip(*degrade, "--record-failure", log) == 0
    assert (
        run_dip(
            "restore",
            obs,
            "--arch",
            "tiny",
            "--variant",
            "tiny",
            "--seed",
            1,
            "--out",
            tmp_path / "dip",
            "--record-failure",
            "logs/restore.log",
        )
        == 0
    )
    assert run_dip("baseline", obs, "--method", "nlm", "--out", tmp_path / "nlm", "--record-failure", "x.log") == 0
    for run in ("dip", "nlm"):
        metrics = tmp_path / f"{run}.json"
        assert run_dip("evaluate", tmp_path / run, "--observation", obs, "--out", metrics, "--record-failure", "e") == 0
    dip_metrics = json.loads((tmp_path / "dip.json").read_text())
    assert dip_metrics["status"] == "failed" and dip_metrics["stage"] == "degrade" and dip_metrics["log"] == log
    assert str(bad) in dip_metrics["error"]
    expected = {"dataset": "photos", "image": "bad", "task": "denoising", "level": "25", "method": "dip-tiny"}
    assert expected.items() <= dip_metrics.items() and dip_metrics["seed"] == 1

    summary = read_metrics([tmp_path / "dip.json", tmp_path / "nlm.json"])
    assert list(summary.status) == ["failed", "failed"]
    notes = run_notes(summary.fillna(""), "denoising")
    assert len(notes) == 2 and all(f"log: {log}" in note and "photos/denoising/25/bad" in note for note in notes)
    markdown = write_files(tmp_path / "tables", render_tables(summary.fillna(""), "denoising"))[0].read_text()
    assert "no run of denoising finished" in markdown and "missing photos/denoising/25/bad/dip-tiny seed 1" in markdown


def test_a_failed_run_beside_finished_ones_is_a_note_of_the_table(observation: Path, tmp_path: Path) -> None:
    assert run_dip("baseline", observation, "--method", "tv", "--out", tmp_path / "tv") == 0
    assert run_dip("evaluate", tmp_path / "tv", "--observation", observation, "--out", tmp_path / "tv.json") == 0
    failed = {
        "status": "failed",
        "stage": "restore",
        "error": "the fit diverged",
        "log": "r.log",
        "task": "denoising",
        "level": "25",
        "method": "dip-tiny",
        "variant": "tiny",
        "run_dir": "x",
    }
    (tmp_path / "dip.json").write_text(json.dumps(failed))
    summary = read_metrics([tmp_path / "tv.json", tmp_path / "dip.json"])
    table = write_files(
        tmp_path / "t", render_tables(pd.DataFrame(summary).fillna({"dataset": "", "image": ""}), "denoising")
    )
    markdown = table[0].read_text()
    assert "missing denoising/25/dip-tiny seed 0: restore failed: the fit diverged (log: r.log)" in markdown
    assert "| tv " in markdown and "dip-tiny |" not in markdown


def test_an_interrupted_fit_is_not_a_failure(observation: Path, tmp_path: Path, monkeypatch) -> None:
    from dip import fit as fit_module

    def interrupted(*args, **kwargs):
        raise fit_module.FitInterrupted(3, None)

    monkeypatch.setattr("dip.restoration.fit", interrupted)
    args = ["restore", observation, "--arch", "tiny", "--quiet", "--out", tmp_path / "run", "--record-failure", "l"]
    assert run_dip(*args) == 130
    assert not (tmp_path / "run" / "failure.json").exists()
