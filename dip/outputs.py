"""The one rule for where a command may write, checked before any work.

Each path a command will write (`--out`, `--checkpoint`, `--traces-out`, `--tables`, `--figures`) may be new, or
hold what the same kind of command made, known by its marker (a run's `record.json` and its `kind`, an
observation's `observation.json`, a viewer's data file, an export's `sources.json`, a metrics record's `run_dir`, a
summary's columns, a checkpoint's archive, the failure record a command left in its folder). Anything else is
refused in one line naming the path and what is there: another kind's folder or file, a file where a folder goes, a
path under a file or inside another command's folder, one of the command's own inputs, the working directory, an
empty path. A command writes its output under a lock, builds it beside the target and moves it in whole
(`dip.replacing`); replacing a folder drops only the files its kind writes; nothing a command did not write is ever
deleted.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dip.errors import OutputRefused
from dip.layout import (
    CLEAN,
    FAILURE,
    FRAMES_INDEX,
    FRAMES_SPRITE,
    GUIDE,
    LAST,
    MASK,
    OBSERVATION_META,
    OBSERVED,
    RECORD,
    RESTORED,
    TRACE,
)

PathLike = str | os.PathLike[str]
TOLERATED = re.compile(r"\.snakemake_timestamp|\..+\.[0-9a-f]{32}\.tmp|\..+\.dip-lock")
"""Names any folder of ours may hold: Snakemake's timestamp of a directory output, the temporary file of an atomic
write cut short (`dip.io`), which a new write replaces, and the lock of a file being written (`dip.replacing`)."""
RENDERED = "dip render"
"""The mark of what `dip render` writes (a comment in a table, the HTML page's generator, a PNG's Software), by which
it knows the files it may replace."""
REPORT_SUFFIXES = (".md", ".tex", ".html", "-psnr.png", "-cost.png", "-curves.png", "-rules.png", "-images.png")
"""What `dip render` writes for a task: TASK.md/.tex/.html and TASK-psnr/-cost/-curves/-rules/-images.png."""


@dataclass(frozen=True)
class Kind:
    """What one command writes at one path: a folder (its own file names) or a single file, and how to know it."""

    name: str
    command: str
    folder: bool
    owns: Callable[[Path], bool]
    """Whether an existing path holds this kind's output (a folder: its marker; a file: its content)."""
    files: Callable[[Path], set[str]] = field(default=lambda folder: set())
    """(Folders) the names this kind writes into `folder`: a new output of the kind drops these, and only these."""

    def __str__(self) -> str:
        return f"{self.name} ({self.command})"


def _record_kind(folder: Path) -> str | None:
    """The command that wrote a run folder's record.json ('restore', 'baseline', 'combine'), read from its `kind`,
    or for a record written before records had one, from what it holds; None without a readable record."""
    record = _json(folder / RECORD)
    if not isinstance(record, dict):
        return None
    if "kind" in record:
        return str(record["kind"])
    return "combine" if "combined_from" in record else "restore" if "model" in record else "baseline"


def _failed_by(folder: Path, command: str) -> bool:
    """Whether `folder` holds a failure record that `command` wrote (records from before `command` was recorded
    count as anyone's)."""
    record = _json(folder / FAILURE)
    return isinstance(record, dict) and record.get("command", command) == command


def _json(path: Path) -> object:
    """The JSON in `path`, or None if it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _run_kind(command: str, name: str, extra: Callable[[], set[str]]) -> Kind:
    def owns(folder: Path) -> bool:
        if (folder / RECORD).exists():
            return _record_kind(folder) == command
        return _failed_by(folder, command)

    def files(folder: Path) -> set[str]:
        return {RESTORED, RECORD, FAILURE, *extra()}

    return Kind(name, f"dip {command}", True, owns, files)


def _dip_run_files() -> set[str]:
    return {LAST, TRACE, FRAMES_SPRITE, FRAMES_INDEX}


def _observation_owns(folder: Path) -> bool:
    return (folder / OBSERVATION_META).is_file() or (
        not (folder / OBSERVATION_META).exists() and _failed_by(folder, "degrade")
    )


def _observation_files(folder: Path) -> set[str]:
    return {OBSERVED, CLEAN, MASK, GUIDE, OBSERVATION_META, FAILURE}


def _export_owns(folder: Path) -> bool:
    from dip.datasets import SOURCES_FILE

    return isinstance(_json(folder / SOURCES_FILE), dict) or _failed_by(folder, "datasets")


def _export_files(folder: Path) -> set[str]:
    from dip.datasets import SOURCES_FILE

    sources = _json(folder / SOURCES_FILE)
    return {SOURCES_FILE, FAILURE, *(sources if isinstance(sources, dict) else {})}


def _viewer_owns(folder: Path) -> bool:
    from dip.report.viewer.caps import DATA_FILE

    return (folder / DATA_FILE).is_file()


def _viewer_files(folder: Path) -> set[str]:
    from dip.report.viewer.caps import ASSETS, DATA_FILE, PAGE_FILES

    return {*PAGE_FILES, DATA_FILE, ASSETS}


def _report_names() -> set[str]:
    from dip.tasks import TASKS

    return {task + suffix for task in TASKS for suffix in REPORT_SUFFIXES}


def _report_owns(folder: Path) -> bool:
    return not _not_rendered(folder)


def _not_rendered(folder: Path) -> list[str]:
    """The names in a report folder that `dip render` did not write (nor left as a temporary file)."""
    names = _report_names()
    return sorted(
        path.name
        for path in folder.iterdir()
        if not ((path.name in names and _rendered(path)) or TOLERATED.fullmatch(path.name))
    )


def _rendered(path: Path) -> bool:
    """Whether a file bears the mark of `dip render`."""
    try:
        if path.suffix == ".png":
            from PIL import Image

            with Image.open(path) as image:
                return image.info.get("Software") == RENDERED
        with path.open("rb") as handle:
            return RENDERED.encode() in handle.read(1024)
    except OSError:  # PIL's UnidentifiedImageError too
        return False


def _report_files(folder: Path) -> set[str]:
    return _report_names() & {path.name for path in folder.iterdir()}


def _metrics_owns(path: Path) -> bool:
    record = _json(path)
    return isinstance(record, dict) and "run_dir" in record


def _table_owns(column: str) -> Callable[[Path], bool]:
    """Whether a file is a CSV of `dip aggregate` with `column` (a summary has `run_dir`, traces `iteration`)."""

    def owns(path: Path) -> bool:
        from dip.report.aggregate import ID_COLUMNS

        try:
            with path.open(encoding="utf-8") as handle:
                header = handle.readline().rstrip("\r\n").split(",")
        except (OSError, UnicodeDecodeError):
            return False
        return header[: len(ID_COLUMNS)] == list(ID_COLUMNS) and column in header

    return owns


def _checkpoint_owns(path: Path) -> bool:
    """A file `torch.save` wrote: a zip archive holding a pickle (read without importing torch)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


OBSERVATION = Kind("an observation", "dip degrade", True, _observation_owns, _observation_files)
DIP_RUN = _run_kind("restore", "a DIP run", _dip_run_files)
BASELINE_RUN = _run_kind("baseline", "a baseline run", set)
COMBINED_RUN = _run_kind("combine", "a combined run", set)
IMAGES = Kind("exported images", "dip datasets export", True, _export_owns, _export_files)
VIEWER = Kind("a viewer", "dip viewer", True, _viewer_owns, _viewer_files)
REPORT = Kind("tables and figures", "dip render", True, _report_owns, _report_files)
METRICS = Kind("a metrics record", "dip evaluate", False, _metrics_owns)
SUMMARY = Kind("a summary table", "dip aggregate", False, _table_owns("run_dir"))
TRACES = Kind("a traces table", "dip aggregate --traces-out", False, _table_owns("iteration"))
CHECKPOINT = Kind("a checkpoint", "dip restore --checkpoint", False, _checkpoint_owns)
RUNS = (DIP_RUN, BASELINE_RUN, COMBINED_RUN)
FOLDERS = (OBSERVATION, *RUNS, IMAGES, VIEWER)
"""The folders a command fills on its own: nothing else may be written into one (a report folder is shared), but a
run's metrics record (`dip evaluate RUN … --out RUN/metrics.json`), which stays when the run is replaced."""


def claim(path: PathLike | None, kind: Kind, *, option: str = "--out", inputs: Iterable[PathLike | None] = ()) -> Path:
    """`path` as a Path once it is known to be free for `kind` (new, or `kind`'s own); else `OutputRefused`, one line
    naming `option`, the path and what is there. Nothing is written."""
    text = "" if path is None else os.fspath(path)
    where = f"{option} {text}"
    if not text.strip():
        raise OutputRefused(f"{option}: an empty path (an unset variable?); name where {kind.name} should go")
    target = Path(text)
    absolute = resolved(target, where)
    if absolute == Path.cwd().resolve():
        raise OutputRefused(f"{where}: the working directory itself; name a new path for {kind.name}")
    for given in inputs:
        if given is not None and os.path.lexists(given) and absolute == resolved(Path(given), os.fspath(given)):
            raise OutputRefused(f"{where}: one of the command's own inputs; name another path")
    _check_ancestors(absolute, kind, where)
    if os.path.lexists(target) and not target.exists():
        raise OutputRefused(f"{where}: a broken symbolic link")
    if target.exists():
        _check_existing(target, kind, where)
    # where the output is written: in the target's folder (built beside it, `dip.replacing`) and in the target itself
    parent = next(parent for parent in absolute.parents if parent.exists())
    for folder in (target, parent) if target.is_dir() else (parent,):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputRefused(f"{where}: cannot write in {folder} (permission denied)")
    return target


def resolved(path: Path, where: str) -> Path:
    """`path` made absolute with its links followed; a link that leads back to itself (a loop) is refused in one line
    naming `where` (Python raises RuntimeError for it before 3.13, OSError ELOOP since)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        raise OutputRefused(f"{where}: a symbolic link loop (a link that leads back to itself)") from None


def _check_ancestors(absolute: Path, kind: Kind, where: str) -> None:
    """Refuse a path under a file, or inside a folder that another command fills on its own."""
    for parent in absolute.parents:
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise OutputRefused(f"{where}: lies under {_shown(parent)}, a file")
        owner = next((folder for folder in FOLDERS if folder.owns(parent)), None)
        if owner is not None and not (kind is METRICS and owner in RUNS and parent == absolute.parent):
            raise OutputRefused(f"{where}: lies inside {_shown(parent)}, {owner}; name a path outside it")


def _shown(path: Path) -> str:
    """An absolute path as a message shows it: relative to the working directory where it lies below it."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _check_existing(target: Path, kind: Kind, where: str) -> None:
    if kind.folder and not target.is_dir():
        raise OutputRefused(f"{where}: {describe(target)}, not a folder for {kind.name}")
    if not kind.folder and target.is_dir():
        raise OutputRefused(f"{where}: a folder, not {kind.name}")
    if not kind.folder:
        if not kind.owns(target):
            raise OutputRefused(f"{where}: {describe(target)}, not {kind}; name another path")
        return
    entries = sorted(path.name for path in target.iterdir() if not TOLERATED.fullmatch(path.name))
    if not entries:
        return
    if not kind.owns(target):
        held = describe(target)
        if kind is REPORT and held.startswith("other files"):  # a shared folder: name only the files in the way
            held = f"files that dip render did not write ({_listed(_not_rendered(target))})"
        else:
            held = f"{held}, not {kind}"
        raise OutputRefused(f"{where}: holds {held}; name a new or empty folder")
    ours = kind.files(target)
    foreign = [name for name in entries if name not in ours and not (kind in RUNS and _metrics_owns(target / name))]
    if foreign:
        raise OutputRefused(
            f"{where}: holds files that are not {kind.name}'s ({_listed(foreign)}); name a new or empty folder"
        )


def _listed(names: list[str]) -> str:
    """At most four names, as a message lists them."""
    return ", ".join(names[:4]) + (", …" if len(names) > 4 else "")


def describe(path: Path) -> str:
    """What is at an existing path, as a message says it: a kind of output, or a plain file or folder."""
    for kind in (*FOLDERS, METRICS, SUMMARY, TRACES, CHECKPOINT) if path.exists() else ():
        if path.is_dir() == kind.folder and kind.owns(path):
            return str(kind)
    if path.is_dir():
        return f"other files ({_listed(sorted(child.name for child in path.iterdir()))})"
    return "a file" if path.stat().st_size else "an empty file"


def write_failure(folder: PathLike, kind: Kind, record: dict) -> Path:
    """Put a command's failure record (`dip.failures`) into its output folder, in place of what its kind wrote there
    before, marked with the command that wrote it."""
    from dip.failures import write_failure as write
    from dip.replacing import building, locked

    folder = claim(folder, kind)
    with locked(folder), building(folder, kind) as staging:
        name = write(staging, {**record, "command": _command(kind)}).name
    return folder / name


def _command(kind: Kind) -> str:
    """The `dip` sub-command of a kind ('restore', 'datasets')."""
    return kind.command.split()[1]
