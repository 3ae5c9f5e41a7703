"""Errors a user can cause: each message names the file or key and the problem."""


class DipError(Exception):
    """Base class of every error the `dip` CLI reports as a one-line message (exit status `exit_code`)."""

    exit_code = 2


class ImageError(DipError):
    """An image file that cannot be read or used (unreadable, truncated, wrong channels, too small)."""


class ConfigError(DipError):
    """A bad option or configuration value."""


class DivergenceError(DipError):
    """A fit whose loss or output became NaN/Inf and could not be recovered by backtracking."""


class OutputError(DipError):
    """An output or checkpoint that could not be written (a folder removed meanwhile, a full disk)."""


class OutputRefused(DipError):
    """An output path a command may not write (see `dip.outputs`): refused before any work, and never answered with a
    failure record, which would be written there."""


class TimeBudgetSpent(DipError):
    """A fit not started because the time budget of the run it belongs to ($DIP_DEADLINE) was spent."""


class OutOfMemory(DipError):
    """A fit that does not fit into its device's memory: refused by its estimate (`dip.memory`), or stopped when it
    ran out."""
