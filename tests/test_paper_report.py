"""The paper's reference figures beside ours (dip.report.paper)."""

from __future__ import annotations

import pandas as pd
import pytest

from dip.io import write_files
from dip.report.ordering import level_label
from dip.report.paper import HEADER, paper_comparison, reference_figures
from dip.report.task_tables import render_tables


def sr_row(image: str, level: str, method: str, psnr: float, seed: int = 0, **extra) -> dict:
    return {
        "dataset": "Set5-local",
        "source": "set5",
        "task": "super-resolution",
        "level": level,
        "lr_convention": "bicubic" if level.endswith("bicubic") else "lanczos",
        "image": image,
        "method": method,
        "variant": "paper" if method.startswith("dip") else "",
        "seed": seed,
        "protocol": "y-dip",
        "psnr": psnr,
        "psnr_y_matlab": psnr - 0.1,
        "ssim": 0.9,
        "iterations": 2000 if method.startswith("dip") else 0,
        **extra,
    }


def test_reference_figures_are_complete_and_consistent() -> None:
    refs = reference_figures()
    columns = {"set", "task", "level", "image", "images", "method", "protocol", "psnr", "iterations", "origin"}
    assert set(refs.columns) == columns
    dip = refs.method.str.startswith("dip")
    stated = ~refs.origin.str.startswith("Ma et al.")  # their DIP runs' iteration counts are not given
    assert refs.iterations[dip & stated].notna().all() and refs.iterations[~dip].isna().all()
    assert (refs.images[refs.image != "mean"] == 1).all()
    assert not refs.duplicated(["set", "task", "level", "image", "method", "protocol"]).any()
    per_image = refs[(refs.set == "set5") & (refs.level == "4") & (refs.image != "mean")]
    mean = refs[(refs.set == "set5") & (refs.level == "4") & (refs.image == "mean")].psnr.item()
    assert per_image.psnr.mean() == pytest.approx(mean, abs=0.01)  # paper Table 2's DIP row: 29.90


def test_paper_comparison_rows_differences_and_lr() -> None:
    summary = pd.DataFrame(
        [
            sr_row("bird", "4", "dip-paper", 31.70, seed=0),
            sr_row("bird", "4", "dip-paper", 31.90, seed=1),
            sr_row("butterfly", "4", "dip-paper", 26.46),
            sr_row("bird", "4-bicubic", "bicubic", 30.20),
            sr_row("bird", "8", "lanczos", 25.0),  # no reference figure: not shown
        ]
    )
    table = paper_comparison(summary, "super-resolution")
    assert table is not None and table.header == HEADER
    rows = {(r[1], r[3], r[4], r[5]): r for r in table.rows}
    bird = rows[("4", "dip-paper", "bird", "y-dip")]
    assert bird[2] == "PIL Lanczos" and bird[6:12] == ["31.80", "31.80", "+0.00", "1/1", "2000", "2000"]
    mean = rows[("4", "dip-paper", "mean", "y-dip")]
    assert mean[6:10] == ["29.13", "29.90", "–", "2/5"]  # (31.80 + 26.46) / 2: no Δ with 2 of the 5 images
    assert table.rows.index(mean) > table.rows.index(bird), "a set mean comes after its images"
    matlab = rows[("4-bicubic", "bicubic", "bird", "y-matlab")]
    assert matlab[2] == "MATLAB bicubic" and matlab[6:9] == ["30.10", "30.18", "-0.08"]
    assert matlab[10:12] == ["–", "–"], "a baseline has no iterations"
    assert not any(r[3] == "lanczos" for r in table.rows)


def test_no_reference_no_table_and_tables_file_has_it(tmp_path) -> None:
    summary = pd.DataFrame([sr_row("bird", "3", "dip-paper", 30.0)])
    assert paper_comparison(summary, "super-resolution") is None
    summary = pd.DataFrame([sr_row("bird", "4", "dip-paper", 31.0), sr_row("bird", "4", "bicubic", 30.0)])
    markdown = next(p for p in write_files(tmp_path, render_tables(summary, "super-resolution")) if p.suffix == ".md")
    text = markdown.read_text()
    assert "against the paper" in text and "-0.80" in text
    assert "## super-resolution: PSNR (dB), y-dip protocol" in text, "the main table names its protocol"
    assert "## super-resolution: PSNR (dB), y-matlab protocol" in text, "both SR protocols side by side"
    assert "SSIM, y-matlab" not in text, "a metric some runs lack gets no table"


def test_a_complete_set_mean_gets_its_difference() -> None:
    images = {"baby": 31.0, "bird": 30.0, "butterfly": 22.0, "head": 31.0, "woman": 26.0}
    summary = pd.DataFrame([sr_row(name, "4-bicubic", "bicubic", psnr) for name, psnr in images.items()])
    table = paper_comparison(summary, "super-resolution")
    mean = next(r for r in table.rows if r[4] == "mean" and r[5] == "y-dip")
    assert mean[6:10] == ["28.00", "28.43", "-0.43", "5/5"]


def test_super_resolution_labels_name_the_lr_convention() -> None:
    assert level_label("super-resolution", "4") == "×4 Lanczos LR"
    assert level_label("super-resolution", "8-bicubic") == "×8 bicubic LR"
    assert level_label("denoising", "25") == "σ=25"


def test_the_papers_three_denoising_outputs_each_meet_their_figure() -> None:
    images = [f"image{index}" for index in range(9)]
    rows = [
        {
            "dataset": "cbm3d-color9",
            "task": "denoising",
            "level": "25",
            "image": image,
            "method": method,
            "variant": "paper",
            "seed": 0,
            "protocol": "rgb",
            "psnr": psnr,
            "ssim": 0.9,
            "iterations": 1800,
        }
        for image in images
        for method, psnr in (("dip-paper-last", 29.0), ("dip-paper", 30.5), ("dip-paper-mean2", 31.1))
    ]
    table = paper_comparison(pd.DataFrame(rows), "denoising")
    found = {row[3]: (row[6], row[7], row[8], row[10], row[11]) for row in table.rows}
    assert found == {
        "dip-paper-last": ("29.00", "29.22", "-0.22", "1800", "1800"),
        "dip-paper": ("30.50", "30.43", "+0.07", "1800", "1800"),
        "dip-paper-mean2": ("31.10", "31.00", "+0.10", "1800", "1800"),
    }
