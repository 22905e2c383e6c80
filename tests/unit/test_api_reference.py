"""docs/api.md is generated from the pydantic types (`make api-docs`) and kept in sync."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from modelfleet.api.reference import KUBERNETES_TYPES, api_reference
from modelfleet.api.types import ModelDeploymentSpec, ModelDeploymentStatus

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_docs_api_md_is_in_sync_with_the_types() -> None:
    assert API_MD.read_text() == api_reference(), "docs/api.md is stale: run `make api-docs`"


def _field_paths(model: type[BaseModel], prefix: str) -> list[str]:
    """Every field path of a pydantic model, by alias, into nested modelfleet models."""
    paths = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}"
        paths.append(path)
        if path in KUBERNETES_TYPES:
            continue
        for inner in _models(field.annotation):
            suffix = "[]" if "list" in str(field.annotation) else ""
            paths.extend(_field_paths(inner, path + suffix))
    return paths


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models(arg)]


def test_every_field_of_the_types_has_a_row_under_its_object() -> None:
    text = api_reference()
    sections = dict(re.findall(r"^## `([^`]+)`\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL))
    paths = _field_paths(ModelDeploymentSpec, "spec") + _field_paths(
        ModelDeploymentStatus, "status"
    )
    assert len(paths) > 80  # the walk itself reaches the nested types
    for path in paths:
        parent, _, name = path.rpartition(".")
        assert parent in sections, f"no section for {parent} (holding {name})"
        assert f"| `{name}` |" in sections[parent], f"{path} has no row in docs/api.md"


def test_every_link_to_a_section_resolves() -> None:
    text = api_reference()
    headings = re.findall(r"^## `([^`]+)`", text, re.MULTILINE)
    anchors = {"".join(c for c in h.lower() if c.isalnum() or c in "-_") for h in headings}
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links
    assert set(links) <= anchors, set(links) - anchors
