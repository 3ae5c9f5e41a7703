"""Figures of one task: PSNR per method and level, PSNR against iteration, image grids with a zoomed crop."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from dip.errors import DipError
from dip.io import read_image
from dip.layout import CLEAN, GUIDE, OBSERVED, RESTORED
from dip.outputs import RENDERED
from dip.report.cost import quality_against_cost
from dip.report.notes import finished, run_notes
from dip.report.ordering import level_label, level_order, method_order
from dip.report.rules import rule_curves
from dip.report.task_tables import scored_runs, task_runs
from dip.resampling import pil_resize

CURVES = {
    "psnr_gt": "to ground truth, current output",
    "psnr_gt_avg": "to ground truth, averaged output",
    "psnr_obs": "to observation (data term)",
}
TRACE_PROTOCOL = "rgb"
"""The protocol of the traces' PSNR (dip.fit: all channels, the whole image)."""
PANEL_INCHES = 1.8
INPUT_TITLES = {CLEAN: "ground truth", OBSERVED: "observed", GUIDE: "flash (input z)"}
"""The images of an observation directory an image grid shows, in order, where one of its examples has them."""


def method_palette(summary: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
    """One colour per method of the whole summary (every task), so that a method has the same colour in every
    figure of a run: the baselines, then the DIP variants, from seaborn's colour-blind palette."""
    methods = method_order(summary)
    return dict(zip(methods, sns.color_palette("colorblind", len(methods)), strict=True))


LEVELS_PER_ROW = 4
"""A figure's panels per row: a task of many levels (e.g. denoising with the noise kinds) wraps onto more rows."""


def _level_panels(
    datasets: list[str], levels: list[str], ran: set[tuple[str, str]], task: str, size: tuple[float, float]
) -> tuple[Figure, dict[tuple[str, str], object]]:
    """A grid of one panel per dataset and level (each dataset's levels wrapped at LEVELS_PER_ROW), the panels of
    pairs that did not run saying so; returns the figure and the axes of the pairs that ran."""
    columns = min(len(levels), LEVELS_PER_ROW)
    rows_per_dataset = -(-len(levels) // columns)
    width, height = size
    figure = Figure(
        figsize=(1.5 + width * columns, 0.5 + height * rows_per_dataset * len(datasets)), layout="constrained"
    )
    axes = figure.subplots(rows_per_dataset * len(datasets), columns, squeeze=False)
    panels = {}
    for d, dataset in enumerate(datasets):
        for index in range(rows_per_dataset * columns):
            ax = axes[d * rows_per_dataset + index // columns][index % columns]
            level = levels[index] if index < len(levels) else None
            if (dataset, level) in ran:
                panels[(dataset, level)] = ax
                continue
            ax.set_axis_off()
            if level is not None:
                ax.text(0.5, 0.5, f"{dataset} {level_label(task, level)}: not run", ha="center", transform=ax.transAxes)
    return figure, panels


def _panel_title(datasets: list[str], dataset: str, task: str, level: str) -> str:
    """A panel's title: its level, after its dataset where the figure has several, on short lines."""
    title = level_label(task, level) if len(datasets) == 1 else f"{dataset} {level_label(task, level)}"
    return textwrap.fill(title, 30)


def psnr_points(summary: pd.DataFrame, task: str, palette: dict) -> Figure:
    """The mean PSNR per method (a marker, with the runs as dots), one panel per dataset and level with the methods
    that ran it. No bars: every panel has the same axis, starting near the lowest run (its label says so), so that
    no length suggests a ratio."""
    runs = scored_runs(summary, task)
    if runs.empty:
        return _notes_page([f"no {task} run has a ground truth, so there is no PSNR to plot: see {task}-images.png."])
    datasets = sorted(runs.dataset.unique())
    levels = level_order(runs.level)
    methods = method_order(runs)
    widest = int(runs.groupby(["dataset", "level"]).method.nunique().max())
    protocol = runs.protocol.iloc[0] if "protocol" in runs and runs.protocol.nunique() == 1 else "per run"
    bottom = max(0.0, float(np.floor(runs.psnr.min())) - 1)
    ran = set(zip(runs.dataset, runs.level, strict=True))
    top = float(np.ceil(runs.psnr.max())) + 1
    figure, panels = _level_panels(datasets, levels, ran, task, (1.2 + 0.45 * widest, 3.0))
    for (dataset, level), ax in panels.items():
        data = runs[(runs.dataset == dataset) & (runs.level == level)]
        order = [m for m in methods if m in set(data.method)]
        common = {"data": data, "x": "method", "y": "psnr", "hue": "method", "order": order, "hue_order": order}
        sns.stripplot(**common, palette=palette, size=3, alpha=0.5, legend=False, ax=ax)
        sns.pointplot(**common, palette=palette, errorbar=None, markers="D", linestyle="none", legend=False, ax=ax)
        ax.set(title=_panel_title(datasets, dataset, task, level), xlabel="", ylabel="", ylim=(bottom, top))
        ax.tick_params(axis="x", labelrotation=60)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
    first = next(iter(panels.values()))
    first.set_ylabel(f"PSNR (dB), {protocol} protocol\n(axis from {bottom:g} dB; ◆ mean, · runs)")
    return figure


def psnr_curves(traces: pd.DataFrame, task: str, palette: dict, summary: pd.DataFrame | None = None) -> Figure:
    """PSNR against iteration of each DIP variant (mean over images and seeds), to the ground truth (the current
    and, where the fit averages, the averaged output) and to the observation, per dataset and level; where a run's
    record says so, ▼ marks the iteration its output was selected at (e.g. ES-WMV's pick). The traces' PSNR is RGB
    over the whole image: the label says so, and which protocol the tables use."""
    data = traces[traces.task == task]
    if data.empty:
        raise DipError(f"no DIP traces of task {task!r}")
    curves = [c for c in CURVES if c in data and data[c].notna().any()]
    long = data.melt(
        id_vars=["dataset", "level", "method", "image", "seed", "iteration"],
        value_vars=curves,
        var_name="curve",
        value_name="psnr",
    ).assign(curve=lambda f: f.curve.map(CURVES))
    long = long.dropna(subset=["psnr"])
    datasets = sorted(long.dataset.unique())
    levels = level_order(long.level)
    runs = None if summary is None else finished(summary)[lambda f: (f.task == task) & (f.variant != "")]
    tables = runs.protocol.iloc[0] if runs is not None and "protocol" in runs and len(runs) else TRACE_PROTOCOL
    ran = set(zip(long.dataset, long.level, strict=True))
    figure, panels = _level_panels(datasets, levels, ran, task, (4.0, 3.0))  # levels may run different iterations
    ylabel = f"PSNR (dB), {TRACE_PROTOCOL}" + ("" if tables == TRACE_PROTOCOL else f"\n(tables: {tables})")
    marked: set[str] = set()
    for (dataset, level), ax in panels.items():
        panel = long[(long.dataset == dataset) & (long.level == level)]
        sns.lineplot(
            panel,
            x="iteration",
            y="psnr",
            hue="method",
            hue_order=[m for m in palette if m in set(data.method)],
            palette=palette,
            style="curve",
            style_order=[CURVES[c] for c in curves],
            errorbar=None,
            legend="full",
            ax=ax,
        )
        if runs is not None and "selected_iteration" in runs:
            marked |= _mark_selections(ax, runs[(runs.dataset == dataset) & (runs.level == level)], palette)
        first_column = levels.index(level) % LEVELS_PER_ROW == 0
        ax.set(title=_panel_title(datasets, dataset, task, level), ylabel=ylabel if first_column else "")
    _legend_below(figure, list(panels.values()), marked)
    return figure


SELECTION_MARKS = {
    "selected_iteration": ("v", True, "output selected (early stop)"),
    "es_selected_iteration": ("v", False, "ES-WMV's pick (watching)"),
    "es_stop_iteration": ("|", True, "where ES-WMV fired"),
}
"""How `_mark_selections` marks each iteration a run's record names: marker, filled, legend entry."""


LEGEND_TITLES = {"method", "curve"}
"""The entries seaborn adds as titles of its hue and style groups: the one legend below needs none."""


def _legend_below(figure: Figure, axes: list, marked: set[str]) -> None:
    """One legend for all panels, below them (the panels keep the figure's width): each method and curve style once,
    and the selection marks that some panel shows."""
    entries: dict[str, object] = {}
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        for handle, label in zip(handles, labels, strict=True):
            if label not in LEGEND_TITLES:
                entries.setdefault(label, handle)
        ax.get_legend().remove()
    for column in SELECTION_MARKS:
        if column in marked:
            marker, filled, label = SELECTION_MARKS[column]
            face = "black" if filled else "none"
            entries[label] = Line2D([], [], color="black", marker=marker, markerfacecolor=face, linestyle="none")
    columns = max(1, min(len(entries), round(figure.get_figwidth() / 2.2)))
    figure.legend(entries.values(), entries.keys(), loc="outside lower center", ncols=columns, frameon=False)


def _mark_selections(ax, runs: pd.DataFrame, palette: dict) -> set[str]:
    """At the top of the panel, per run: ▼ where its output was selected (an early stop's pick) when not its last
    iteration; with a watched early stop (`es_continue`), ▽ where the rule would have picked and | where it fired.
    Returns the columns of `SELECTION_MARKS` it marked."""
    top = ax.get_ylim()[1]
    marked = set()
    for column, (marker, filled, _) in SELECTION_MARKS.items():
        if column not in runs:
            continue
        for run in runs[runs[column].notna()].itertuples(index=False):
            at = getattr(run, column)
            if column == "selected_iteration" and at >= run.iterations - 1:
                continue
            colour = palette.get(run.method, "black")
            face = colour if filled else "none"
            ax.plot(at, top, marker=marker, color=colour, markerfacecolor=face, clip_on=False, markersize=7)
            marked.add(column)
    return marked


def _resized(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`image` resized (nearest neighbour) to the height and width of `shape`, for display only."""
    if image.shape[:2] == shape[:2]:
        return image
    return pil_resize(image, (shape[0], shape[1]), "nearest")


def _show(ax, image: np.ndarray, title: str = "", colour: object = "black") -> None:
    ax.imshow(image.squeeze(-1) if image.shape[2] == 1 else image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=8, color=colour)


def image_grid(summary: pd.DataFrame, task: str, palette: dict, max_examples: int = 3, zoom: int = 4) -> Figure:
    """Clean (where there is one), observed, the guide (flash-no-flash's flash photo, the net's input) and each
    method's output (first seed; left out where the method did not run that level) for a few images, each above a
    zoomed centre crop; the titles give PSNRs where there is a ground truth.

    Needs the column `observation_dir` (which `dip evaluate RUN --observation DIR` records).
    """
    runs = task_runs(summary, task)
    if "observation_dir" not in runs:
        raise DipError(
            "the summary has no observation_dir column (score the runs with `dip evaluate RUN --observation DIR`)"
        )
    keys = ["dataset", "level", "image"]
    examples = runs.drop_duplicates(keys).head(max_examples)
    methods = method_order(runs.merge(examples[keys], on=keys))  # those of the examples shown
    folders = [Path(folder) for folder in examples.observation_dir]
    inputs = [name for name in INPUT_TITLES if any((folder / name).is_file() for folder in folders)]
    columns = [*inputs, *methods]
    figure = Figure(figsize=(PANEL_INCHES * len(columns), 2 * PANEL_INCHES * len(examples)), layout="constrained")
    axes = figure.subplots(2 * len(examples), len(columns), squeeze=False)
    for index, example in enumerate(examples.itertuples(index=False)):
        folder = Path(example.observation_dir)
        same = runs[(runs.dataset == example.dataset) & (runs.level == example.level) & (runs.image == example.image)]
        name = textwrap.fill(f"{example.image} {level_label(task, example.level)}", 24)
        panels = _input_panels(folder, inputs, name, example)
        shape = panels[0][1].shape if (folder / CLEAN).is_file() else _output_shape(same, panels[0][1].shape)
        panels = [(title, _resized(image, shape)) for title, image in panels]
        height, width = shape[:2]
        for method in methods:
            run = same[same.method == method].sort_values("seed").head(1)
            if run.empty:  # the method does not solve this level (e.g. the median filter and Gaussian noise)
                panels.append((method, None))
                continue
            restored = read_image(Path(run.run_dir.iloc[0]) / RESTORED)
            if restored.shape[:2] != shape[:2]:  # metrics of one image beside another
                raise DipError(
                    f"{Path(run.run_dir.iloc[0]) / RESTORED}: {restored.shape[0]}×{restored.shape[1]}, but the image "
                    f"it restores is {height}×{width}: replaced since the run was scored? Restore and score it again"
                )
            psnr = run.psnr.iloc[0] if "psnr" in run else np.nan
            panels.append((f"{method} {psnr:.2f} dB" if pd.notna(psnr) else method, restored))
        size_h, size_w = max(8, height // zoom), max(8, width // zoom)
        top, left = (height - size_h) // 2, (width - size_w) // 2
        for column, (title, image) in enumerate(panels):
            if image is None:
                axes[2 * index][column].set_axis_off()
                axes[2 * index + 1][column].set_axis_off()
                continue
            _show(axes[2 * index][column], image, title, palette.get(columns[column], "black"))
            _show(axes[2 * index + 1][column], image[top : top + size_h, left : left + size_w])
        box = Rectangle((left - 0.5, top - 0.5), size_w, size_h, fill=False, edgecolor="red", linewidth=1)
        axes[2 * index][0].add_patch(box)
    return figure


def missing_folders(summary: pd.DataFrame, task: str) -> list[str]:
    """The run and observation folders of the task's finished runs that are not here (the image grid reads them)."""
    runs = finished(summary)[lambda frame: frame.task == task]
    columns = [column for column in ("run_dir", "observation_dir") if column in runs]
    folders = {value for column in columns for value in runs[column] if isinstance(value, str) and value}
    return sorted(folder for folder in folders if not Path(folder).is_dir())


def _input_panels(folder: Path, inputs: list[str], name: str, example: object) -> list[tuple[str, np.ndarray]]:
    """The panels before the methods': the clean image, the observation and the guide, each where there is one (a
    blank panel where another example has one and this one not); the first is titled with the image and level."""
    panels = []
    for kind in inputs:
        path = folder / kind
        image = read_image(path) if path.is_file() else None
        panels.append((INPUT_TITLES[kind], image))
    shape = next(image.shape for _, image in panels if image is not None)
    panels = [(title, np.ones(shape, np.float32) if image is None else image) for title, image in panels]
    observed_psnr = getattr(example, "psnr_observed", np.nan)
    if pd.notna(observed_psnr):
        panels = [
            (f"{title} {observed_psnr:.2f} dB" if title == INPUT_TITLES[OBSERVED] else title, image)
            for title, image in panels
        ]
    title, image = panels[0]
    missing = "" if (folder / CLEAN).is_file() or CLEAN not in inputs else " (no ground truth)"
    panels[0] = (f"{name}{missing}" if CLEAN in inputs else f"{name}\n{title}", image)
    return panels


def _output_shape(runs: pd.DataFrame, fallback: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of the first restored image of `runs` (the size to show every panel at without a clean image)."""
    for folder in runs.run_dir:
        path = Path(folder) / RESTORED
        if path.is_file():
            return read_image(path).shape
    return fallback


def render_figures(summary: pd.DataFrame, traces: pd.DataFrame | None, task: str) -> dict[str, bytes]:
    """TASK-psnr.png, TASK-cost.png (PSNR against wall seconds, `dip.report.cost`), TASK-images.png and (with
    traces) TASK-curves.png and TASK-rules.png (one fit's PSNR curve with
    every watching rule's stop and pick, `dip.report.rules`) as PNG bytes, by file name.

    Each figure is titled with the task's notes (a smoke run, the runs that failed); without a finished run, each is a
    page of those notes.
    """
    notes = run_notes(summary, task)
    palette = method_palette(summary)
    makers = {
        "psnr": lambda: psnr_points(summary, task, palette),
        "cost": lambda: _cost_or_note(summary, task, palette),
        "images": lambda: image_grid(summary, task, palette),
    }
    if traces is not None:
        has_traces = (traces.task == task).any()
        makers["curves"] = lambda: (
            psnr_curves(traces, task, palette, summary) if has_traces else _notes_page(["no DIP run finished."])
        )
        makers["rules"] = lambda: _rules_or_note(summary, traces, task)
    has_runs = not finished(summary)[lambda f: f.task == task].empty
    files = {}
    for name, make in makers.items():
        figure = make() if has_runs else _notes_page([*notes, f"no run of {task} finished."])
        if notes and has_runs:
            figure.suptitle(_wrapped(notes), color="#a00", fontsize=8, horizontalalignment="left", x=0.01)
        image = io.BytesIO()
        figure.savefig(image, format="png", dpi=150, metadata={"Software": RENDERED})  # the mark `dip.outputs` knows
        files[f"{task}-{name}.png"] = image.getvalue()
    return files


def _cost_or_note(summary: pd.DataFrame, task: str, palette: dict) -> Figure:
    figure = quality_against_cost(scored_runs(summary, task), task, palette)
    if figure is None:
        return _notes_page([f"no scored {task} run recorded its seconds."])
    return figure


def _rules_or_note(summary: pd.DataFrame, traces: pd.DataFrame, task: str) -> Figure:
    figure = rule_curves(summary, traces, task)
    if figure is None:
        return _notes_page([f"no {task} fit with a ground truth and a trace was watched by a stopping rule."])
    return figure


def _wrapped(notes: list[str], width: int = 110, most: int = 6) -> str:
    """The notes as text lines of at most `width` characters, the first `most` of them."""
    shown = [textwrap.shorten(note, width, placeholder=" …") for note in notes[:most]]
    if len(notes) > most:
        shown.append(f"and {len(notes) - most} more (see the tables)")
    return "\n".join(shown)


def _notes_page(notes: list[str]) -> Figure:
    figure = Figure(figsize=(8, 0.6 + 0.25 * min(len(notes), 7)))
    figure.text(0.01, 0.95, _wrapped(notes), color="#a00", fontsize=8, verticalalignment="top")
    return figure
