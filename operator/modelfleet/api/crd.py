"""Generate the ModelDeployment CustomResourceDefinition from the pydantic types.

Kubernetes wants a structural OpenAPI v3 schema: no $ref, no anyOf-with-null, no titles, no
`const`. This module turns pydantic's JSON Schema into that shape, so `crds/` never drifts from
the code (a test regenerates it and compares).
"""

from __future__ import annotations

from typing import Any

import yaml

from modelfleet.api.types import (
    GROUP,
    KIND,
    PLURAL,
    ROOT_RULES,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)

_DROPPED_KEYS = {"title", "$defs"}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
    {"name": "Engine", "type": "string", "jsonPath": ".spec.engine"},
    {"name": "GPU", "type": "string", "jsonPath": ".status.placement.gpuProduct"},
    {"name": "GPUs", "type": "integer", "jsonPath": ".status.placement.gpusPerReplica"},
    {
        "name": "$/HR/REPLICA",
        "type": "number",
        "jsonPath": ".status.placement.hourlyCostPerReplica",
        "priority": 1,
    },
    {"name": "$/HR", "type": "number", "jsonPath": ".status.cost.hourly"},
    {"name": "SPEND", "type": "number", "jsonPath": ".status.cost.spend"},
    {"name": "$/1M-OUT", "type": "number", "jsonPath": ".status.cost.perMillionTokens.output"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.desiredReplicas"},
    {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
    {
        "name": "Status",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {"name": "TTFT-OK", "type": "number", "jsonPath": ".status.slo.ttft.attainment", "priority": 1},
    {"name": "Held-By", "type": "string", "jsonPath": ".status.autoscaling.heldBy", "priority": 1},
    {"name": "Min", "type": "integer", "jsonPath": ".spec.minReplicas", "priority": 1},
    {"name": "Max", "type": "integer", "jsonPath": ".spec.maxReplicas", "priority": 1},
    {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def structural_schema(model: type[Any]) -> dict[str, Any]:
    """The OpenAPI v3 structural schema of a pydantic model, with $refs inlined."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions = schema.get("$defs", {})
    result: dict[str, Any] = _convert(schema, definitions)
    return result


def _convert(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "anyOf" in node:
        node = _without_null_branch(node)
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, definitions)
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {k: v for k, v in node.items() if k != "allOf"}
        node = {**node["allOf"][0], **rest}
    if "const" in node:
        node = {**{k: v for k, v in node.items() if k != "const"}, "enum": [node["const"]]}
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        # JSON Schema 2020 (pydantic gt/lt) gives the bound; OpenAPI v3.0 wants a flag beside it.
        value = node.get(exclusive)
        if isinstance(value, int | float) and not isinstance(value, bool):
            node = {**node, bound: value, exclusive: True}
    if isinstance(node.get("additionalProperties"), bool):
        # extra="forbid" says false; the API server takes only a schema here (maps' values).
        node = {k: v for k, v in node.items() if k != "additionalProperties"}
    if "enum" in node and "type" not in node:
        node = {**node, "type": "string"}
    if node.get("default", object()) is None:
        node = {k: v for k, v in node.items() if k != "default"}
    if node.get("type") == "object" and "properties" in node and "required" in node:
        node = {**node, "required": sorted(node["required"])}
    return {
        key: (value if key in ("default", "enum", "required") else _convert(value, definitions))
        for key, value in node.items()
        if key not in _DROPPED_KEYS
    }


def _without_null_branch(node: dict[str, Any]) -> dict[str, Any]:
    """Optional fields: absent means unset, so the null branch adds nothing to the schema."""
    branches = [b for b in node["anyOf"] if b != {"type": "null"}]
    if len(branches) != 1:
        raise ValueError(f"cannot express anyOf {node['anyOf']} in a structural schema")
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**branches[0], **rest}


def crd() -> dict[str, Any]:
    """The ModelDeployment CustomResourceDefinition as a dict."""
    spec_schema = structural_schema(ModelDeploymentSpec)
    status_schema = structural_schema(ModelDeploymentStatus)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "modelfleet"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["modelfleet"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (
                                "ModelDeployment serves one open model on GPU-scheduled "
                                "inference engine pods."
                            ),
                            "required": ["spec"],
                            # Only the root sees metadata.name (CEL gets name, generateName).
                            "x-kubernetes-validations": ROOT_RULES,
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                # Declared so the name rule's fieldPath is a valid path.
                                "metadata": {
                                    "type": "object",
                                    "properties": {"name": {"type": "string"}},
                                },
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated by `make crds` from operator/modelfleet/api/types.py; do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=100)
