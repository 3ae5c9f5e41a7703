"""dip.report and `dip aggregate` / `dip render` on synthetic run records: tidy tables, best in bold, figures."""

from __future__ import annotations

import json
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dip.cli import main
from dip.errors import DipError
from dip.io import write_files, write_image
from dip.report.aggregate import read_metrics, read_table, read_traces
from dip.report.figures import psnr_points, render_figures
from dip.report.ordering import level_order, method_order
from dip.report.task_tables import comparison, early_stopping, latex_escape, render_tables

# PSNR of (method, variant, seed, level, image): DIP wins at σ=25, bm3d at σ=50.
PSNR = {
    ("bm3d", "", 0, "25", "a"): 30.0,
    ("bm3d", "", 0, "25", "b"): 32.0,
    ("bm3d", "", 0, "50", "a"): 28.0,
    ("bm3d", "", 0, "50", "b"): 28.0,
    ("dip-tiny", "tiny", 0, "25", "a"): 31.0,
    ("dip-tiny", "tiny", 1, "25", "a"): 33.0,
    ("dip-tiny", "tiny", 0, "25", "b"): 33.0,
    ("dip-tiny", "tiny", 1, "25", "b"): 35.0,
    ("dip-tiny", "tiny", 0, "50", "a"): 26.0,
    ("dip-tiny", "tiny", 1, "50", "a"): 27.0,
}


def write_run(root: Path, method: str, variant: str, seed: int, level: str, image: str, psnr: float) -> Path:
    """A run directory as the workflow lays it out (observation, restored.png, trace, metrics.json)."""
    observation = root / level / image / "observation"
    if not observation.exists():
        rng = np.random.default_rng(len(str(observation)))
        clean = rng.random((32, 32, 3), dtype=np.float32)
        write_image(observation / "clean.png", clean)
        write_image(observation / "observed.png", np.clip(clean + 0.1, 0, 1))
    run_dir = root / level / image / (f"{method}/seed{seed}" if variant else method)
    write_image(run_dir / "restored.png", np.full((32, 32, 3), psnr / 40, dtype=np.float32))
    if variant:
        iterations = np.arange(0, 50, 10)
        pd.DataFrame(
            {
                "iteration": iterations,
                "loss": 1 / (iterations + 1),
                "psnr_obs": 20 + iterations / 5,
                "psnr_gt": 20 + iterations / 10,
                "psnr_gt_avg": np.nan,
                "seconds": iterations / 100,
            }
        ).to_csv(run_dir / "trace.csv", index=False)
    metrics = {
        "dataset": "toy",
        "image": image,
        "observation_dir": str(observation),
        "task": "denoising",
        "level": level,
        "sigma": int(level),
        "method": method,
        "variant": variant,
        "seed": seed,
        "psnr": psnr,
        "ssim": psnr / 40,
        "psnr_observed": 20.0,
        "run_dir": str(run_dir),
    }
    path = run_dir / "metrics.json"
    path.write_text(json.dumps(metrics))
    return path


@pytest.fixture
def metrics_files(tmp_path: Path) -> list[Path]:
    return [write_run(tmp_path / "runs", *key, psnr) for key, psnr in PSNR.items()]


@pytest.fixture
def summary(metrics_files: list[Path]) -> pd.DataFrame:
    return read_metrics(reversed(metrics_files))


def test_read_metrics_is_tidy_and_sorted(summary: pd.DataFrame) -> None:
    assert len(summary) == len(PSNR)
    assert list(summary.columns[:7]) == ["dataset", "task", "level", "image", "method", "variant", "seed"]
    assert summary.level.tolist()[:4] == ["25"] * 4 and summary.level.map(type).eq(str).all()
    assert summary[summary.method == "bm3d"].variant.eq("").all()
    first = summary.iloc[0]
    assert (first.method, first.image, first.seed) == ("bm3d", "a", 0)


def test_read_metrics_names_a_bad_file(tmp_path: Path, metrics_files: list[Path]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"task": "denoising"}')
    with pytest.raises(DipError, match=r"broken\.json.*level"):
        read_metrics([*metrics_files, broken])


def test_read_traces_labels_every_row(summary: pd.DataFrame) -> None:
    traces = read_traces(summary)
    assert len(traces) == 6 * 5  # six DIP runs, five rows each
    assert set(traces.method) == {"dip-tiny"}
    assert {"seed", "iteration", "psnr_gt", "psnr_obs"} <= set(traces.columns)


def test_orders_are_natural_and_baselines_come_first(summary: pd.DataFrame) -> None:
    assert level_order(["8", "2", "10", "box25"]) == ["2", "8", "10", "box25"]
    assert method_order(summary) == ["bm3d", "dip-tiny"]


def test_comparison_gives_means_over_images_the_spread_over_seeds_n_and_bold_best(summary: pd.DataFrame) -> None:
    table = comparison(summary, "denoising", "psnr")
    assert table.header == ["method", "σ=25", "σ=50"]
    # dip-tiny σ=25: images a (31, 33) and b (33, 35): mean 33, each image's seeds 1.41 apart; not ± across images
    assert table.rows == [
        ["bm3d", "31.00 (n=2)", "28.00 (n=2)"],
        ["dip-tiny", "33.00 ± 1.41 (n=2×2)", "26.50 ± 0.71 (n=1×2)"],
        ["observed input", "20.00 (n=2)", "20.00 (n=2)"],
    ]
    assert table.best == [[False, False, True], [False, True, False], [False, False, False]]
    assert "n = images × seeds" in table.title


def test_comparison_marks_a_missing_cell_and_a_single_run(summary: pd.DataFrame) -> None:
    partial = summary[~((summary.method == "bm3d") & (summary.level == "50"))]
    partial = partial[~((partial.method == "dip-tiny") & (partial.level == "25") & (partial.seed == 1))]
    table = comparison(partial[partial.image == "a"], "denoising", "psnr")
    assert table.rows[:2] == [["bm3d", "30.00 (n=1)", "–"], ["dip-tiny", "31.00 (n=1)", "26.50 ± 0.71 (n=1×2)"]]
    assert table.best[:2] == [[False, False, False], [False, True, True]]


def test_written_tables_carry_the_bold_best(summary: pd.DataFrame, tmp_path: Path) -> None:
    paths = write_files(tmp_path / "tables", render_tables(summary, "denoising"))
    assert [p.name for p in paths] == ["denoising.md", "denoising.tex", "denoising.html"]
    markdown, latex, page = (p.read_text(encoding="utf-8") for p in paths)
    dip_row = next(line for line in markdown.splitlines() if "dip-tiny" in line)
    cells = [cell.strip() for cell in dip_row.strip("|").split("|")]
    assert cells == ["dip-tiny", "**33.00 ± 1.41 (n=2×2)**", "26.50 ± 0.71 (n=1×2)"]
    assert r"dip-tiny & \textbf{33.00 $\pm$ 1.41 (n=2$\times$2)} & 26.50 $\pm$ 0.71 (n=1$\times$2) \\" in latex
    assert r"method & $\sigma$=25 & $\sigma$=50 \\" in latex
    root = ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))
    tables = root.findall(".//table")
    suffix = "; mean over images, ± the spread over seeds, n = images × seeds"
    captions = [t.findtext("caption") for t in tables]
    assert captions[:2] == [f"denoising: PSNR (dB){suffix}", f"denoising: SSIM{suffix}"]
    assert [c.split(":")[0] for c in captions[2:]] == ["denoising, toy σ=25", "denoising, toy σ=50"]  # cost tables
    rows = tables[0].findall("./tbody/tr")
    assert [[cell.findtext("strong") for cell in row.findall("td")] for row in rows] == [
        [None, "28.00 (n=2)"],
        ["33.00 ± 1.41 (n=2×2)", None],
        [None, None],
    ]


def test_latex_escape() -> None:
    assert latex_escape("a_b & 50% ×4 σ –") == r"a\_b \& 50\% $\times$4 $\sigma$ --"


def test_unknown_task_is_refused(summary: pd.DataFrame) -> None:
    with pytest.raises(DipError, match="inpainting"):
        comparison(summary, "inpainting", "psnr")


def test_figures_are_written(summary: pd.DataFrame, tmp_path: Path) -> None:
    paths = write_files(tmp_path / "figures", render_figures(summary, read_traces(summary), "denoising"))
    names = ["denoising-psnr.png", "denoising-cost.png", "denoising-images.png", "denoising-curves.png"]
    assert [p.name for p in paths] == [*names, "denoising-rules.png"]
    for path in [paths[0], *paths[2:4]]:  # the cost and rules figures are notes: no seconds recorded, no fit watched
        with Image.open(path) as picture:
            assert picture.width > 200 and picture.height > 200


def test_a_task_of_many_levels_wraps_its_panels_each_with_the_methods_that_ran_it() -> None:
    """Eleven denoising levels (σ and the noise kinds), each with its own baselines: four panels a row, one axis."""
    levels = ["25", "50", *(f"{kind}-{s}" for kind in ("impulse", "shot", "speckle") for s in (2, 3, 4))]
    baseline = {"impulse": "median", "shot": "bm3d-vst", "speckle": "nlm"}
    rows = [
        {"dataset": "toy", "task": "denoising", "level": level, "image": "a", "seed": 0, "status": "ok"}
        | {"method": method, "variant": variant, "psnr": psnr, "protocol": "rgb"}
        for n, level in enumerate(levels)
        for method, variant, psnr in (("dip-tiny", "tiny", 20.0 + n), (baseline.get(level[:-2], "bm3d"), "", 30.0))
    ]
    figure = psnr_points(
        pd.DataFrame(rows), "denoising", {"dip-tiny": "C0", "bm3d": "C1", "median": "C2", "bm3d-vst": "C3", "nlm": "C4"}
    )
    panels = [ax for ax in figure.axes if ax.axison]
    assert len(figure.axes) == 12 and len(panels) == 11 and figure.get_size_inches()[0] < 16
    assert {ax.get_ylim() for ax in panels} == {(19.0, 31.0)}
    impulse = next(ax for ax in panels if ax.get_title() == "impulse noise, severity 2")
    assert [label.get_text() for label in impulse.get_xticklabels()] == ["median", "dip-tiny"]


def test_image_grid_needs_observation_dirs(summary: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(DipError, match="observation_dir"):
        write_files(tmp_path, render_figures(summary.drop(columns="observation_dir"), None, "denoising"))


def test_cli_aggregate_then_render(metrics_files: list[Path], tmp_path: Path, capsys) -> None:
    summary_csv, traces_csv = tmp_path / "summary.csv", tmp_path / "traces.csv"
    args = ["aggregate", *map(str, metrics_files), "--out", str(summary_csv), "--traces-out", str(traces_csv)]
    assert main(args) == 0
    summary = read_table(summary_csv)
    assert len(summary) == len(PSNR) and summary.level.tolist()[0] == "25" and summary.variant[0] == ""
    assert len(read_table(traces_csv)) == 30
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    render = [
        "render",
        str(summary_csv),
        "--traces",
        str(traces_csv),
        "--tables",
        str(tables),
        "--figures",
        str(figures),
    ]
    assert main([*render, "--task", "denoising"]) == 0
    assert sorted(p.name for p in tables.iterdir()) == ["denoising.html", "denoising.md", "denoising.tex"]
    assert sorted(p.name for p in figures.iterdir()) == [
        "denoising-cost.png",
        "denoising-curves.png",
        "denoising-images.png",
        "denoising-psnr.png",
        "denoising-rules.png",
    ]
    assert main([*render, "--task", "inpainting"]) == 2
    assert "inpainting" in capsys.readouterr().err


def test_runs_without_ground_truth_beside_scored_ones(tmp_path: Path, metrics_files: list[Path]) -> None:
    """A dataset of one's own photos (no clean.png, records without scores) among scored runs of the same task:
    the scored tables and figures are those of the scored runs alone; the others get a table without scores, a note,
    and their images in the grid."""
    photos = []
    for method, variant in (("bm3d", ""), ("dip-tiny", "tiny")):
        path = write_run(tmp_path / "photos", method, variant, 0, "25", "mine", 20.0)
        record = json.loads(path.read_text())
        for key in ("psnr", "ssim", "psnr_observed"):
            del record[key]
        path.write_text(json.dumps({**record, "dataset": "photos", "ground_truth": False}))
        photos.append(path)
    (tmp_path / "photos/25/mine/observation/clean.png").unlink()
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({**json.loads(photos[0].read_text()), "ground_truth": True}))
    with pytest.raises(DipError, match=r"incomplete\.json: metrics record lacks psnr, ssim"):
        read_metrics([incomplete])
    summary = read_metrics([*metrics_files, *photos])
    scored = read_metrics(metrics_files)
    assert comparison(summary, "denoising", "psnr").rows == comparison(scored, "denoising", "psnr").rows
    markdown = write_files(tmp_path / "tables", render_tables(summary, "denoising"))[0].read_text()
    assert "NO GROUND TRUTH: the denoising runs of photos have no clean image" in markdown
    assert "## denoising: runs without ground truth" in markdown
    assert re.search(r"^\| dip-tiny +\| +n=1×1 \|$", markdown, re.M) and "photos σ=25" not in markdown.split("## ")[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. seaborn's on an empty panel: photos ran σ=25 only
        paths = write_files(tmp_path / "figures", render_figures(summary, read_traces(summary), "denoising"))
    assert all(path.stat().st_size > 0 for path in paths)


# --- ES-WMV's pick against the oracle -------------------------------------------------------------------------------
def es_summary_and_traces() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two impulse-noise fits that recorded an ES-WMV pick (one plain, one averaging), a fit without one, a baseline."""
    ids = {"dataset": "toy", "task": "denoising", "variant": "tiny", "method": "dip-tiny", "seed": 0, "status": "ok"}
    summary = pd.DataFrame(
        [
            {**ids, "level": "impulse-2", "image": "a", "psnr": 25.0, "es_selected_iteration": 20, "es_psnr_gt": 25.0},
            {**ids, "level": "impulse-2", "image": "b", "psnr": 27.0, "es_selected_iteration": 40, "es_psnr_gt": 27.0},
            {**ids, "level": "shot-3", "image": "a", "psnr": 24.0, "es_selected_iteration": np.nan},
            {**ids, "level": "impulse-2", "image": "a", "method": "median", "variant": "", "psnr": 22.0},
        ]
    )
    iterations = [0, 10, 20, 30, 40, 50]
    plain = {"psnr_gt": [20, 22, 25, 26, 24, 23], "psnr_gt_avg": [np.nan] * 6}
    averaged = {"psnr_gt": [20, 30, 35, 36, 33, 31], "psnr_gt_avg": [20, 21, 23, 27.5, 28.5, 28]}
    traces = pd.concat(
        [
            pd.DataFrame({**ids, "level": "impulse-2", "image": "a", "iteration": iterations, **plain}),
            pd.DataFrame({**ids, "level": "impulse-2", "image": "b", "iteration": iterations, **averaged}),
            pd.DataFrame({**ids, "level": "shot-3", "image": "a", "iteration": iterations, **plain}),
        ]
    ).drop(columns="status")
    return summary, traces


def test_es_wmv_against_the_oracle_table_has_the_picks_the_oracles_and_their_gap(tmp_path: Path) -> None:
    summary, traces = es_summary_and_traces()
    table = early_stopping(summary, traces, "denoising")
    assert table is not None and table.header[:3] == ["method", "dataset, level", "n"]
    # a: pick 20 (25.0), last 23, oracle 30 (26.0 on psnr_gt); b averages: pick 40 (27.0), last 28, oracle 40 (28.5
    # on psnr_gt_avg)
    assert table.rows == [
        ["dip-tiny", "toy impulse noise, severity 2", "2", "30", "26.00", "25.50", "35", "27.25", "1.25"]
    ]
    write_files(tmp_path, render_tables(summary, "denoising", traces))
    assert "ES-WMV's pick against the oracle" in (tmp_path / "denoising.md").read_text()


def test_no_es_wmv_table_without_picks_or_traces(tmp_path: Path) -> None:
    summary, traces = es_summary_and_traces()
    assert early_stopping(summary, None, "denoising") is None
    assert early_stopping(summary.drop(columns=["es_selected_iteration", "es_psnr_gt"]), traces, "denoising") is None
    write_files(tmp_path, render_tables(summary, "denoising"))
    assert "oracle" not in (tmp_path / "denoising.md").read_text()


def test_every_rule_against_the_oracle_table_and_figure(tmp_path: Path) -> None:
    """Fits a and b watched by es-wmv and es-emv: per rule the pick's PSNR, the oracle, the gap, the iterations saved
    and the share of fits within 0.5 dB of the oracle."""
    from dip.report.rules import rule_curves, rules_table

    summary, traces = es_summary_and_traces()
    traces = traces.assign(psnr_gt_avg=np.nan)  # both fits plain: oracles 26.0 (a, at 30) and 36.0 (b, at 30)
    watched = {
        "watch_es_wmv_stop_iteration": [40, None, None, None],
        "watch_es_wmv_selected_iteration": [20, 30, np.nan, np.nan],
        "watch_es_wmv_psnr_gt": [25.0, 36.0, np.nan, np.nan],
        "watch_es_emv_stop_iteration": [None, 25, None, None],
        "watch_es_emv_selected_iteration": [30, 10, np.nan, np.nan],
        "watch_es_emv_psnr_gt": [26.0, 30.0, np.nan, np.nan],
    }
    summary = summary.assign(iterations=50, **watched)
    table = rules_table(summary, traces, "denoising")
    assert table is not None and table.header[:4] == ["dataset, level", "method", "rule", "n"]
    # es-wmv: gaps 1.0 and 0.0 → 0.50; saved 20 % and 0 % → 10 %; within 0.5 dB: b only → 50 %
    # es-emv: gaps 0.0 and 6.0 → 3.00; saved 0 % and 50 % → 25 %; within 0.5 dB: a only → 50 %
    assert table.rows == [
        ["toy impulse noise, severity 2", "dip-tiny", "es-wmv", "2", "30.50", "31.00", "0.50", "10", "50"],
        ["toy impulse noise, severity 2", "dip-tiny", "es-emv", "2", "28.00", "31.00", "3.00", "25", "50"],
    ]
    figure = rule_curves(summary, traces, "denoising")
    assert figure is not None and len([ax for ax in figure.axes if ax.axison]) == 1
    assert rules_table(summary.drop(columns=list(watched)), traces, "denoising") is None
    write_files(tmp_path, render_tables(summary, "denoising", traces))
    assert "every stopping rule against the oracle" in (tmp_path / "denoising.md").read_text()
