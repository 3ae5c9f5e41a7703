"""The `dip` command: one sub-command per pipeline step, each reading and writing files."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dip import __version__
from dip.errors import DipError, OutputRefused
from dip.failures import failure_record

# sub-command name -> one-line help; each lives in dip.cli.<name> with `add_arguments(parser)` and `run(args) -> int`
COMMANDS: dict[str, str] = {
    "degrade": "make the observation x0 of a clean image for a task and level",
    "restore": "restore an observation with Deep Image Prior",
    "baseline": "restore an observation with a method other than DIP (classical, zero-shot, learned)",
    "combine": "combine runs of one observation (the mean over seeds, a fit's last output)",
    "evaluate": "score a run against the clean image (PSNR, SSIM)",
    "archs": "list the model presets",
    "datasets": "list, download and export datasets",
    "aggregate": "gather metrics.json files into one summary CSV",
    "render": "render tables and figures from a summary CSV",
    "viewer": "write a static viewer of the results (comparison, restoration process)",
}


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that states each flag's default, except where there is none to state (None, an off switch)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only the module of `command` is imported (a job pays for no other command's imports)."""
    parser = argparse.ArgumentParser(
        prog="dip",
        description="Deep Image Prior benchmark: degrade images, restore them with DIP or baselines, evaluate, report.",
    )
    parser.add_argument("--version", action="version", version=f"dip-bench {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        if name != command:
            subparsers.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(f"dip.cli.{name}")
        sub = subparsers.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or "").strip(),
            formatter_class=DefaultsHelpFormatter,
        )
        module.add_arguments(sub)
        if hasattr(module, "record_failure"):
            sub.add_argument(
                "--record-failure",
                metavar="LOG",
                help="on a user error (bad input or settings), write a failure record naming LOG in place of the "
                "results and exit 0, so that a workflow reports the failure and goes on (errors are not retried)",
            )
        sub.set_defaults(handler=module.run, module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dip` console script; user errors print one line and exit with a non-zero status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except DipError as error:
        message = " ".join(str(error).strip().splitlines())  # one line, whatever a library's message holds
        if (
            getattr(args, "record_failure", None) is None
            or error.exit_code != DipError.exit_code
            or isinstance(error, OutputRefused)  # its record would go where the command may not write
        ):
            print(f"dip {args.command}: error: {message}", file=sys.stderr)
            return error.exit_code
        record = failure_record(args.command, error, args.record_failure, identity(args))
        try:
            recorded = args.module.record_failure(args, record)
        except DipError as unwritten:  # refused (another command writes there meanwhile), or a full disk
            print(f"dip {args.command}: error: {message} (failure record not written: {unwritten})", file=sys.stderr)
            return error.exit_code
        print(f"dip {args.command}: error: {message}", file=sys.stderr)
        return 0 if recorded else error.exit_code
    except KeyboardInterrupt:
        print(f"dip {args.command}: interrupted", file=sys.stderr)
        return 130


def identity(args: argparse.Namespace) -> dict[str, object]:
    """What a command was working on, for its failure record (its module's `identity`, if the arguments allow)."""
    try:
        return args.module.identity(args)
    except DipError:
        return {}


if __name__ == "__main__":
    sys.exit(main())
