"""The table every renderer takes: a title, column headers, cell texts and which cells are the best."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """A renderer-agnostic table: a title, column headers, cell texts and which cells are the best."""

    title: str
    header: list[str]
    rows: list[list[str]]
    best: list[list[bool]]
