"""Field-level messages from pydantic validation errors, in the words `kubectl` users expect."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from pydantic import ValidationError


def field_errors(error: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem, naming the field as the API server does: `spec.gpu.count: ...`.

    A cross-field rule fails on its whole model (pydantic's loc is `spec`); the CRD's CEL rule
    with the same message carries the fieldPath the API server reports, so it is appended here
    and both name the same field. List items are `extraArgs[0]`, as kubectl prints them.
    """
    lines = []
    for problem in error.errors():
        message = problem["msg"].removeprefix("Value error, ")
        path = _path((prefix, *problem["loc"]))
        rule_path = cel_rule_field_paths().get(message, "")
        if rule_path and not f".{path}".endswith(rule_path):
            path = f"{path}{rule_path}" if path else rule_path.lstrip(".")
        lines.append(f"{path}: {message}" if path else message)
    return lines


def describe(error: ValidationError, prefix: str = "") -> str:
    return "; ".join(field_errors(error, prefix))


def _path(parts: Iterable[int | str]) -> str:
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "":
            path += f".{part}" if path else part
    return path


@cache
def cel_rule_field_paths() -> dict[str, str]:
    """CEL rule message -> fieldPath, from the generated CRD (the one place rules are listed)."""
    from modelfleet.api.crd import crd

    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for rule in node.get("x-kubernetes-validations") or []:
                if rule.get("fieldPath"):
                    found[rule["message"]] = rule["fieldPath"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(crd())
    return found
