"""Reading the YAML files the CLI commands take (manifests, inventories, price sheets).

The one reader for every such file, so hostile input is refused in one place with one line
naming the file, in bounded time and memory: a size cap before parsing, then one streaming pass
over the parser's events (no recursion) that caps nesting depth, node count and what aliases
expand to (a "billion laughs" document is a few hundred bytes that expand to 10^9 nodes for any
code that walks it), and only then the objects are built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelfleet.plan.request import PlanInputError

MAX_BYTES = 16 * 2**20  # a NodeList of a few thousand nodes; far above any manifest
MAX_DEPTH = 100  # Kubernetes objects nest ~20 deep; deeper input would overflow recursive code
MAX_NODES = 2_000_000  # about what 16 MiB of Kubernetes YAML holds
ALIAS_NODE_BUDGET = 10_000  # nodes aliases may add beyond the document's own (or its size)

# libyaml when present: several times faster than the pure-Python parser on large inventories.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YAMLLimitError(yaml.MarkedYAMLError):
    """A document that parses but is too big, too deep or expands too far to be real input."""


def read_documents(path: Path) -> list[Any]:
    """The non-empty YAML documents of `path`; PlanInputError naming the file otherwise."""
    text = _read_text(path)
    try:
        check_limits(text)
        return [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc]
    except yaml.YAMLError as error:
        raise PlanInputError([_one_line(path, error)]) from error
    except (ValueError, RecursionError) as error:
        # Scalars the constructor refuses: an integer of 5000 digits, a date 2023-13-01.
        raise PlanInputError([f"{path}: not valid YAML: {error}"]) from error


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise PlanInputError([f"{path}: {error.strerror or error}"]) from error
    if len(data) > MAX_BYTES:
        raise PlanInputError(
            [f"{path}: larger than {MAX_BYTES // 2**20} MiB, too large for a manifest or inventory"]
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PlanInputError([f"{path}: not a text file ({error.reason})"]) from error


def check_limits(text: str) -> None:
    """Raise YAMLLimitError if any document nests too deep, has too many nodes, or its aliases
    expand too far; YAMLError if it does not parse. Streams events, so it never recurses."""
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, height) once closed
    open_anchors: set[str] = set()
    stack: list[list[Any]] = []  # per open collection: [anchor, expanded nodes, height]
    nodes = 0
    expanded = 0
    for event in yaml.parse(text, Loader=_LOADER):
        size, height = 0, 0
        if isinstance(event, yaml.DocumentStartEvent):
            sizes.clear()
            open_anchors.clear()
            continue
        if isinstance(event, yaml.CollectionStartEvent):
            nodes += 1
            if len(stack) >= MAX_DEPTH:
                raise _limit(f"nested deeper than {MAX_DEPTH}", event)
            if event.anchor:
                open_anchors.add(event.anchor)
            stack.append([event.anchor, 1, 1])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size, height = stack.pop()
            if anchor:
                open_anchors.discard(anchor)
                sizes[anchor] = (size, height)
        elif isinstance(event, yaml.ScalarEvent):
            nodes, size, height = nodes + 1, 1, 1
            if event.anchor:
                sizes[event.anchor] = (1, 1)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in open_anchors:
                raise _limit(f"alias *{event.anchor} refers to itself", event)
            size, height = sizes.get(event.anchor or "", (1, 1))
            expanded += size
            if len(stack) + height > MAX_DEPTH:
                raise _limit(f"aliases nest deeper than {MAX_DEPTH}", event)
            if expanded > max(ALIAS_NODE_BUDGET, nodes):
                budget = max(ALIAS_NODE_BUDGET, nodes)
                raise _limit(f"aliases expand to more than {budget} nodes (a YAML bomb?)", event)
        else:
            continue
        if nodes > MAX_NODES:
            raise _limit(f"more than {MAX_NODES} nodes", event)
        if stack:
            stack[-1][1] += size
            stack[-1][2] = max(stack[-1][2], height + 1)


def _limit(problem: str, event: yaml.Event) -> YAMLLimitError:
    mark: Any = event.start_mark  # libyaml's Mark has the same fields as PyYAML's
    return YAMLLimitError(problem=problem, problem_mark=mark)


def _one_line(path: Path, error: yaml.YAMLError) -> str:
    """PyYAML's messages span lines (with a snippet); ours is `FILE:LINE:COLUMN: problem`."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        context = f"{error.context}: " if error.context else ""
        verdict = "refused" if isinstance(error, YAMLLimitError) else "not valid YAML"
        return f"{where}: {verdict}: {context}{error.problem}"
    if isinstance(error, yaml.reader.ReaderError):
        return (
            f"{path}: not valid YAML: character {error.position + 1} is "
            f"#x{error.character:04x}, {error.reason}"
        )
    return f"{path}: not valid YAML: " + " ".join(str(error).split())
