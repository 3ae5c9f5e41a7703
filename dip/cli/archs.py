"""List the model presets with their architecture, input, parameter count (3 output channels) and size multiple."""

from __future__ import annotations

import argparse
import json

from tabulate import tabulate

from dip.models import describe_presets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    rows = describe_presets()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [
        [r["name"], r["arch"], r["input"], f"{r['parameters']:,}", r["required_multiple"], r["description"]]
        for r in rows
    ]
    print(tabulate(table, headers=["preset", "arch", "input", "parameters", "multiple", "description"]))
    return 0
