"""The CRD is generated from the pydantic types; checked-in copies must match the generator."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.api.crd import crd, crd_yaml

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = [
    ROOT / "crds" / "modeldeployments.modelfleet.dev.yaml",
    ROOT / "charts" / "modelfleet" / "crds" / "modeldeployments.modelfleet.dev.yaml",
]


@pytest.mark.parametrize("path", CHECKED_IN, ids=lambda p: str(p.relative_to(ROOT)))
def test_checked_in_crd_matches_the_types(path: Path) -> None:
    assert path.read_text() == crd_yaml(), f"{path} drifted from the types: run `make crds`"


def _keys(node: Any, trail: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((f"{trail}.{key}", key))
            found.extend(_keys(value, f"{trail}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_keys(value, f"{trail}[{i}]"))
    return found


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_schema_is_structural() -> None:
    forbidden = {"$ref", "$defs", "anyOf", "allOf", "const", "title"}
    assert [path for path, key in _keys(_schema()) if key in forbidden] == []


def _parents_of(node: Any, key: str, trail: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if key in node:
            found.append((trail, node))
        for name, value in node.items():
            found.extend(_parents_of(value, key, f"{trail}.{name}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_parents_of(value, key, f"{trail}[{i}]"))
    return found


def test_maps_are_typed_and_objects_closed() -> None:
    """additionalProperties only as a map's value schema (pydantic's `false` for closed
    objects is not structural), and never beside properties."""
    maps = _parents_of(_schema(), "additionalProperties")
    assert maps, "nodeSelector and matchLabels are maps"
    for path, node in maps:
        assert isinstance(node["additionalProperties"], dict), path
        assert "properties" not in node, path
        assert node["type"] == "object", path


def test_every_spec_field_is_described() -> None:
    def undescribed(node: dict[str, Any], path: str) -> list[str]:
        missing = [] if "description" in node else [path]
        for name, child in (node.get("properties") or {}).items():
            missing += undescribed(child, f"{path}.{name}")
        return missing

    assert undescribed(_schema()["properties"]["spec"], "spec") == []


def test_scale_subresource_and_printer_columns() -> None:
    version = crd()["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Model", "Engine", "GPU", "Replicas", "Ready", "Age"} <= columns


def test_exclusive_bounds_are_openapi_v3_flags() -> None:
    # pydantic gt=0 is JSON Schema's `exclusiveMinimum: 0`; the API server wants a boolean.
    def bounds(node: Any) -> list[Any]:
        if isinstance(node, list):
            return [b for item in node for b in bounds(item)]
        if not isinstance(node, dict):
            return []
        own = [
            (node[key], node.get(bound))
            for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum"))
            if key in node
        ]
        return own + [b for value in node.values() for b in bounds(value)]

    found = bounds(_schema())
    assert found and all(flag is True and isinstance(at, int | float) for flag, at in found)
    params = _schema()["properties"]["spec"]["properties"]["architecture"]["properties"]["paramsB"]
    assert (params["minimum"], params["exclusiveMinimum"]) == (0, True)


def test_cel_rules_carry_field_paths() -> None:
    rules = _schema()["properties"]["spec"]["x-kubernetes-validations"]
    assert {r["fieldPath"] for r in rules} == {
        ".gpu.count",
        ".extraArgs",
        ".minReplicas",
        ".maxReplicas",
        ".maxContextLength",
        ".env",
        ".source",
        ".cache",
        ".engine",
    }
    resources = _schema()["properties"]["spec"]["properties"]["resources"]
    assert {r["fieldPath"] for r in resources["x-kubernetes-validations"]} == {
        ".requests.cpu",
        ".requests.memory",
    }
    architecture = _schema()["properties"]["spec"]["properties"]["architecture"]
    assert {r["fieldPath"] for r in architecture["x-kubernetes-validations"]} == {
        ".activeB",
        ".kvHeads",
    }
    # Only the root can see metadata.name: the name becomes the Service's name.
    assert [r["fieldPath"] for r in _schema()["x-kubernetes-validations"]] == [".metadata.name"]


def test_yaml_round_trips() -> None:
    assert yaml.safe_load(crd_yaml()) == crd()
