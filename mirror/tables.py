# SPDX-License-Identifier: GPL-3.0-or-later
"""Plain-text tables for the terminal: left-aligned columns, optionally one coloured column.

Columns are aligned by the width a terminal gives each character, so that
translated headers (Chinese characters take two columns) line up too.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence


def display_width(text: str) -> int:
    """The number of terminal columns *text* takes: wide and full-width characters take two,
    combining marks none."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def format_table(rows: Sequence[Sequence[str]], colour_column: int | None = None,
                 colours: Mapping[str, str] | None = None) -> str:
    """Render *rows* (the first one is the header) as aligned text.

    Args:
        rows: cells as strings; every row has the same number of cells.
        colour_column: the column whose cells are coloured by their value.
        colours: value → ANSI colour code for that column; None means no colour.

    Returns:
        The lines joined with newlines, without trailing spaces.
    """
    cell_widths = [[display_width(cell) for cell in row] for row in rows]
    widths = [max(column) for column in zip(*cell_widths)]
    lines = []
    for number, (row, row_widths) in enumerate(zip(rows, cell_widths)):
        cells = []
        for column, (cell, cell_width, width) in enumerate(zip(row, row_widths, widths)):
            padded = cell + " " * (width - cell_width)
            code = colours.get(cell) if colours and number and column == colour_column else None
            cells.append(f"\033[{code}m{padded}\033[0m" if code else padded)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
