"""How a command puts its output in place: one command at a time (a lock), built beside the target, moved in whole.

`locked(target, option)` holds an advisory lock on an output path (`fcntl.flock` on `.<name>.dip-lock` beside it) for
as long as a command works towards it; a second command on the same path is refused in one line naming the first's
pid. The system drops the lock however the holder ends, so a killed command blocks nothing. Holding it, the command
removes what an interrupted one left of its own beside the target (a folder built part-way, a temporary file), and
puts back an output that a swap cut short had moved aside.

`building(target, kind)` gives a new folder beside `target` to build `kind`'s output in (`.<name>.<hex>.tmp`); once the
build is whole, it takes the target's place by two renames (the old folder aside, the new one in) and only then is the
old folder deleted, so that a full disk or a kill leaves the old output as it was. What the old folder held besides
its kind's files (a run's metrics record) moves over as a hard link.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from dip.errors import DipError, OutputError, OutputRefused
from dip.layout import FAILURE
from dip.outputs import TOLERATED, Kind

LOCK_SUFFIX = ".dip-lock"


def lock_path(target: Path) -> Path:
    """The lock file of an output path: `.<name>.dip-lock` in its folder."""
    return target.parent / f".{target.name}{LOCK_SUFFIX}"


def _leftover(name: str) -> re.Pattern[str]:
    """The names of what a command writing `name` leaves beside it when cut short: its build folder or temporary file
    (`.tmp`), or the old output moved aside during a swap (`.old`)."""
    return re.compile(rf"\.{re.escape(name)}\.[0-9a-f]{{32}}\.(tmp|old)")


@contextlib.contextmanager
def locked(target: Path | None, option: str = "--out") -> Iterator[None]:
    """Hold the lock of `target` (nothing when it is None) while inside; `OutputRefused` if another command holds it.

    Folders made for the lock file that stay empty are removed again on the way out."""
    if target is None:
        yield
        return
    made = [parent for parent in (target.parent, *target.parent.parents) if not parent.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(lock_path(target), f"{option} {target}")
    except OSError as error:
        _remove_empty(made)
        raise OutputError(f"{option} {target}: cannot lock it ({error.strerror or error})") from None
    except DipError:
        _remove_empty(made)
        raise
    try:
        try:
            _recover(target)
        except OSError as error:
            raise OutputError(
                f"{option} {target}: cannot remove what an interrupted command left ({error.strerror or error})"
            ) from None
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_path(target).unlink()  # before the lock is dropped: a command waiting to lock sees a new file
        os.close(fd)
        _remove_empty(made)


def _acquire(path: Path, where: str) -> int:
    """An open, locked lock file at `path`, with this process's pid in it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputRefused(
                f"{where}: another dip command is writing it (pid {holder}); wait for it to end, or name another path"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file that the holder before removed as this process opened it
            with contextlib.suppress(OSError):  # a full disk: the lock holds all the same, without the pid
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()


def _recover(target: Path) -> None:
    """Remove what a command cut short left beside `target`; put back an old output it had moved aside."""
    if not target.parent.is_dir():
        return
    pattern = _leftover(target.name)
    for entry in sorted(target.parent.iterdir(), key=lambda path: not path.name.endswith(".old")):
        if not pattern.fullmatch(entry.name):
            continue
        if entry.name.endswith(".old") and not os.path.lexists(target):
            entry.rename(target)
        else:
            _remove(entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def building(target: Path, kind: Kind, *, adds: bool = False) -> Iterator[Path]:
    """A new folder to build `kind`'s output in, which takes `target`'s place once the body ends without an error;
    with an error, it is removed and `target` stays as it was. An `OSError` (a full disk) becomes one `OutputError`.

    What the old folder held and the new one does not goes over to the new one: with `adds` (an export, which adds
    images to an earlier one), all of it but a failure record; else all but its kind's files (a run's metrics
    record)."""
    real = Path(os.path.realpath(target)) if target.is_symlink() else target
    kept = f"; {target} is left as it was" if os.path.lexists(real) else ""
    staging = real.parent / f".{real.name}.{uuid.uuid4().hex}.tmp"
    try:
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
            staging.mkdir()
            yield staging
            _carry(real, staging, set() if adds else kind.files(real))
            _swap(staging, real)
        finally:
            if os.path.lexists(staging):
                _remove(staging)
    except OSError as error:
        where = error.filename or target
        message = f"cannot write {where} ({error.strerror or error}){kept}"
        raise OutputError(message.replace(str(staging), str(target))) from None
    except OutputError as error:
        raise OutputError(str(error).replace(str(staging), str(target)) + kept) from None


def _carry(old: Path, new: Path, replaced: set[str]) -> None:
    """Hard-link into `new` what `old` holds that `new` does not, but a failure record, the names in `replaced` and
    the temporary files of writes cut short (a copy where the file system has no hard links)."""
    if not old.is_dir():
        return
    for entry in old.iterdir():
        name = entry.name
        if name in replaced or name == FAILURE or TOLERATED.fullmatch(name) or os.path.lexists(new / name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, new / name, symlinks=True, copy_function=_link)
        else:
            _link(entry, new / name)


def _link(source: str | Path, destination: str | Path) -> None:
    try:
        os.link(source, destination, follow_symlinks=False)
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(source, destination, follow_symlinks=False)


def _swap(new: Path, target: Path) -> None:
    """Put the folder `new` at `target`: the old folder aside, the new one in, then the old one deleted."""
    if not os.path.lexists(target):
        new.rename(target)
        return
    aside = target.parent / f".{target.name}.{uuid.uuid4().hex}.old"
    target.rename(aside)
    try:
        new.rename(target)
    except OSError:
        aside.rename(target)
        raise
    shutil.rmtree(aside, ignore_errors=True)
