"""Aligned text tables for every command, printed with rich.

Plain text on purpose (no box, no colour): the output is read in terminals, pasted into issues
and parsed by scripts alike.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """The rows under their headers, columns left-aligned and two spaces apart, never wrapped."""
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="", padding=(0, 1))
    for header in headers:
        grid.add_column(header, no_wrap=True, overflow="ignore")
    for row in rows:
        grid.add_row(*row)
    out = io.StringIO()
    Console(file=out, width=100_000, color_system=None, highlight=False, emoji=False).print(grid)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"
