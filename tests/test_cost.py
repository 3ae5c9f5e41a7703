"""What runs cost: the records' wall seconds and peak memory, the cost tables and the quality-against-cost figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

import dip
from dip.cost import CPU_MEMORY, CostMeter, peak_rss_mb
from dip.report.cost import ES_SUFFIX, cost_tables, quality_against_cost


def test_the_meter_charges_a_run_with_its_own_peak_not_an_earlier_one() -> None:
    """A run started after a bigger one is charged with its own peak RSS (the peak is reset at its start)."""
    big = CostMeter()
    block = np.ones(40 * 2**20 // 8)  # 40 MiB touched
    first = big.finish()
    del block
    second = CostMeter().finish()
    assert first["memory_measure"] == second["memory_measure"] == CPU_MEMORY
    assert first["peak_memory_mb"] >= 40
    if first["peak_memory_mb"] > peak_rss_mb() + 20:  # the kernel reset the peak (Linux ≥ 4.0)
        assert second["peak_memory_mb"] < first["peak_memory_mb"] - 20
    assert 0 <= second["wall_seconds"] < first["wall_seconds"] + 1


def test_every_run_records_its_cost_and_evaluate_carries_it(textured_rgb: np.ndarray) -> None:
    observation = dip.degrade(textured_rgb, "denoising", "25", seed=0)
    runs = [
        dip.restore(observation, arch="tiny", iterations=3, device="cpu"),
        dip.baseline(observation, "tv"),
    ]
    for run in runs:
        assert run.record["wall_seconds"] > 0 and run.record["peak_memory_mb"] > 0
        assert run.record["memory_measure"] == CPU_MEMORY
        metrics = dip.evaluate(run, observation)
        assert metrics["wall_seconds"] == run.record["wall_seconds"]
        assert metrics["peak_memory_mb"] == run.record["peak_memory_mb"]
    assert dip.evaluate(runs[0], observation)["precision"] == "fp32"
    assert dip.evaluate(runs[0], observation)["seconds_per_iteration"] > 0
    assert runs[0].record["wall_seconds"] >= runs[0].record["seconds"]


def _summary() -> pd.DataFrame:
    """Two images of one level: BM3D, and a DIP fit of 100 iterations whose ES pick stopped at iteration 39 on one
    image and never fired on the other."""
    rows = []
    for image, stop in (("a", 39.0), ("b", np.nan)):
        rows.append(
            {"method": "bm3d", "image": image, "psnr": 30.0, "ssim": 0.8, "wall_seconds": 2.0, "peak_memory_mb": 100}
        )
        rows.append(
            {
                "method": "dip-tiny",
                "image": image,
                "psnr": 28.0,
                "ssim": 0.7,
                "wall_seconds": 12.0,
                "seconds": 10.0,
                "seconds_per_iteration": 0.1,
                "iterations": 100,
                "peak_memory_mb": 300,
                "es_stop_iteration": stop,
                "es_psnr_gt": 31.0,
                "precision": "bf16",
                "device": "cpu: 2 threads",
            }
        )
    frame = pd.DataFrame(rows)
    frame["dataset"], frame["task"], frame["level"], frame["seed"] = "toy", "denoising", "25", 0
    frame["variant"] = np.where(frame.method == "bm3d", "", "tiny")
    frame["memory_measure"] = CPU_MEMORY
    return frame


def test_the_cost_table_prices_the_es_pick_at_the_iterations_up_to_its_stop() -> None:
    (table,) = cost_tables(_summary(), "denoising")
    rows = {row[0]: row for row in table.rows}
    assert rows["bm3d"][1:6] == ["30.00", "0.800", "2.0", "100", "2"]
    assert rows["dip-tiny"][1:6] == ["28.00", "0.700", "12.0", "300", "2"]
    # image a: 2 s of set-up and writing + 40 iterations × 0.1 s; image b: the rule never fired, the whole 12 s
    assert rows[f"dip-tiny{ES_SUFFIX}"][1:6] == ["31.00", "–", "9.0", "300", "2"]
    assert rows["dip-tiny"][6] == "cpu, bf16"
    best = dict(zip([row[0] for row in table.rows], table.best, strict=True))
    assert best[f"dip-tiny{ES_SUFFIX}"][1] and best["bm3d"][3]
    assert CPU_MEMORY in table.title


def test_the_quality_against_cost_figure_has_a_log_seconds_axis_and_a_marker_per_method() -> None:
    figure = quality_against_cost(_summary(), "denoising", {"bm3d": (0, 0, 1), "dip-tiny": (1, 0, 0)})
    assert figure is not None
    ax = figure.axes[0]
    assert ax.get_xscale() == "log"
    points = sorted((line.get_xdata()[0], line.get_ydata()[0]) for line in ax.get_lines())
    assert points == [(2.0, 30.0), (9.0, 31.0), (12.0, 28.0)]
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["bm3d", "dip-tiny", f"dip-tiny{ES_SUFFIX}"]


def test_no_figure_without_recorded_seconds_or_scores() -> None:
    """Runs that recorded no seconds, and runs without ground truth (no PSNR column at all), make no figure."""
    assert quality_against_cost(_summary().drop(columns=["wall_seconds", "seconds"]), "denoising", {}) is None
    assert quality_against_cost(_summary().drop(columns=["psnr", "ssim"]), "denoising", {}) is None
    assert quality_against_cost(_summary().iloc[0:0], "denoising", {}) is None


def test_the_comparison_table_says_which_arithmetic_made_the_dip_numbers() -> None:
    from dip.report.task_tables import comparison

    summary = _summary()
    assert comparison(summary, "denoising", "psnr").title.endswith("; DIP fits: bf16 on cpu")
    summary.loc[(summary.image == "b") & (summary.method == "dip-tiny"), "precision"] = "fp32"
    assert comparison(summary, "denoising", "psnr").title.endswith("; DIP fits: bf16 on cpu/fp32 on cpu")
    assert "DIP fits" not in comparison(summary.drop(columns="precision"), "denoising", "psnr").title
