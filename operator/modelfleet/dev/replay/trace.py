"""Request traces in the Azure LLM trace CSV format: TIMESTAMP,ContextTokens,GeneratedTokens.

TIMESTAMP is a wall-clock time (`2023-11-16 18:17:03.9799600`, any number of fraction digits,
optionally with a `T` or a trailing `Z`) or a plain number of seconds (handy for synthetic
traces). Arrival times are seconds since the earliest row, divided by the time scale (2.0 replays
the trace twice as fast). Rows are sorted by arrival; blank lines are skipped. A request that
generates 0 tokens is kept with 1 (an engine always produces the first token).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MAX_LINE_CHARS = 64 * 1024  # a trace line is ~50 characters; longer is not a trace


class TraceError(ValueError):
    """A trace that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class TraceRequest:
    arrival: float  # seconds since the first request (after time scaling)
    prompt_tokens: int
    output_tokens: int


def read_trace(path: Path, *, time_scale: float = 1.0) -> list[TraceRequest]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return parse_trace(_lines(handle, str(path)), source=str(path), time_scale=time_scale)
    except OSError as error:
        raise TraceError(f"{path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise TraceError(f"{path}: not a text file ({error.reason})") from error


def _lines(handle: TextIO, source: str) -> Iterator[str]:
    """The file's lines, refusing one longer than MAX_LINE_CHARS: a file without newlines
    (binary data, /dev/zero) would otherwise be read whole into memory first."""
    number = 0
    while line := handle.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
            raise TraceError(f"{source}:{number}: longer than {MAX_LINE_CHARS} characters")
        yield line


def _clip(text: str, limit: int = 80) -> str:
    """Quoted input in an error message, cut so the message stays one readable line."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "..."


def _rows(reader: Any, source: str) -> Iterator[list[str]]:
    try:
        yield from reader
    except csv.Error as error:
        raise TraceError(f"{source}:{reader.line_num}: not CSV: {error}") from error


def parse_trace(
    lines: Iterable[str], *, source: str = "trace", time_scale: float = 1.0
) -> list[TraceRequest]:
    if not time_scale > 0:
        raise TraceError(f"time scale must be positive, got {time_scale}")
    reader = csv.reader(lines)
    header: list[str] | None = None
    rows: list[tuple[float, int, int]] = []
    for row in _rows(reader, source):
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            missing = [name for name in COLUMNS if name not in header]
            if missing:
                raise TraceError(
                    f"{source}:{line}: expected a header {','.join(COLUMNS)}, "
                    f"missing {', '.join(missing)}"
                )
            index = [header.index(name) for name in COLUMNS]
            continue
        if len(row) != len(header):
            raise TraceError(
                f"{source}:{line}: expected {len(header)} fields, got {len(row)}: "
                f"{_clip(','.join(row))}"
            )
        stamp, prompt, output = (row[i].strip() for i in index)
        rows.append(
            (
                _seconds(stamp, f"{source}:{line}"),
                _count(prompt, "ContextTokens", f"{source}:{line}"),
                max(1, _count(output, "GeneratedTokens", f"{source}:{line}")),
            )
        )
    if not rows:
        raise TraceError(f"{source}: no requests")
    rows.sort(key=lambda r: r[0])
    start = rows[0][0]
    return [TraceRequest((t - start) / time_scale, p, o) for t, p, o in rows]


def _count(value: str, column: str, where: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise TraceError(f"{where}: {column} {_clip(repr(value))} is not a non-negative integer")
    return number


def _seconds(value: str, where: str) -> float:
    """Seconds since the epoch (naive times are taken as UTC), or a plain number of seconds."""
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if number != number or number in (float("inf"), float("-inf")):
            raise TraceError(f"{where}: TIMESTAMP {_clip(repr(value))} is not a time")
        return number
    text = value.removesuffix("Z").replace("T", " ")
    whole, _, fraction = text.partition(".")
    try:
        moment = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        if fraction and not fraction.isdigit():
            raise ValueError(fraction)
    except ValueError:
        raise TraceError(
            f"{where}: TIMESTAMP {_clip(repr(value))} is not a time "
            "(YYYY-MM-DD HH:MM:SS[.fraction] or seconds)"
        ) from None
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)
