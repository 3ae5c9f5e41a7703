"""The paper's per-task settings (the authors' notebooks, summarised in PROTOCOL.md): the default of every CLI flag."""

from __future__ import annotations

from typing import Any

from dip.errors import ConfigError


def paper_fit_settings(task: str, level: str) -> dict[str, Any]:
    """Iterations, reg-noise, output averaging and backtracking of the authors' notebook for this task and level."""
    if task == "denoising":
        sigma = float(level)
        return {
            "iterations": 3000,
            "reg_noise_std": 1 / 20 if sigma >= 50 else 1 / 30,
            "ema": 0.99,
            "backtrack_db": 5.0,
        }
    if task == "super-resolution":
        factor = int(level)
        return {
            "iterations": 4000 if factor >= 8 else 2000,
            "reg_noise_std": 0.05 if factor >= 8 else 0.03,
            "ema": 0.0,
            "backtrack_db": None,
        }
    if task == "inpainting":
        return {
            "iterations": 5001 if level.startswith("box") else 6001,
            "reg_noise_std": 0.03,
            "ema": 0.0,
            "backtrack_db": None,
        }
    raise ConfigError(f"unknown task {task!r}")


def paper_preset(task: str, level: str) -> str:
    """The net the authors use for this task: `paper` for denoising and SR, the inpainting nets otherwise."""
    if task == "inpainting":
        return "inpaint-region" if level.startswith("box") else "inpaint-text"
    return "paper"
