"""The `dip` command: one sub-command per pipeline step, each reading and writing files."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dip import __version__
from dip.errors import DipError

# sub-command name -> module in dip.cli that defines `add_arguments(parser)` and `run(args) -> int`
COMMANDS: dict[str, str] = {
    "degrade": "degrade",
    "restore": "restore",
    "baseline": "baseline",
    "evaluate": "evaluate",
    "archs": "archs",
    "datasets": "datasets",
    "aggregate": "aggregate",
    "render": "render",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="dip",
        description="Deep Image Prior benchmark: degrade images, restore them with DIP or baselines, evaluate, report.",
    )
    parser.add_argument("--version", action="version", version=f"dip-bench {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"dip.cli.{module_name}")
        doc = (module.__doc__ or "").strip()
        sub = subparsers.add_parser(
            name,
            help=doc.splitlines()[0] if doc else None,
            description=doc,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dip` console script; user errors print one line and exit with a non-zero status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except DipError as error:
        print(f"dip {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"dip {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
