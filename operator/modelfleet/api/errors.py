"""Field-level messages from pydantic validation errors, in the words `kubectl` users expect."""

from __future__ import annotations

from pydantic import ValidationError


def field_errors(error: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem: `spec.gpu.count: Input should be less than or equal to 8`."""
    lines = []
    for problem in error.errors():
        path = ".".join(str(part) for part in (prefix, *problem["loc"]) if part != "")
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {message}" if path else message)
    return lines


def describe(error: ValidationError, prefix: str = "") -> str:
    return "; ".join(field_errors(error, prefix))
