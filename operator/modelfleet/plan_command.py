"""`modelfleet plan`: the planner's choice for a ModelDeployment manifest, offline.

    modelfleet plan -f MODELDEPLOYMENT.yaml --inventory NODES.yaml [--prices PRICES.yaml]
                    [-o table|json]
    modelfleet plan -f MODELDEPLOYMENT.yaml --all-gpus     # hypothetical: one empty 8-GPU node
                                                          # of every catalog GPU

NODES.yaml is `kubectl get nodes -o yaml` (a NodeList), or `kubectl get nodes,pods -A -o yaml`
to count GPUs already in use. Without --inventory or --all-gpus the command would read the
current cluster; that is not implemented yet and exits 2.
Exit codes: 0 a feasible placement, 1 none, 2 bad input.

The manifest's spec is read leniently (fields the CRD does not have yet are accepted):
model, architecture, maxContextLength, quantization, engine, gpu.product (or "auto"),
gpu.count, gpuMemoryUtilization, kvCacheDtype, and extraArgs --max-model-len,
--gpu-memory-utilization, --quantization, --kv-cache-dtype when the fields are absent.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from modelfleet.catalog.gpus import default_gpus
from modelfleet.plan import (
    Inventory,
    Placement,
    PlacementRequest,
    PriceSheet,
    PriceSheetError,
    hypothetical_inventory,
    parse_inventory,
    parse_price_overrides,
    place,
)


class PlanInputError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def add_plan_command(commands: Any) -> None:
    """Register `plan` on the top-level subparsers object."""
    plan = commands.add_parser(
        "plan",
        help="show the cheapest GPU placement for a ModelDeployment (offline)",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
        epilog="NODES.yaml: `kubectl get nodes,pods -A -o yaml`. PRICES.yaml: a mapping from "
        "nvidia.com/gpu.product value to USD per GPU-hour, e.g. {NVIDIA-L4: 0.55} or "
        "{NVIDIA-L4: {onDemand: 0.55, spot: 0.25}}. Exit 0: feasible, 1: not, 2: bad input.",
    )
    plan.add_argument("-f", "--filename", required=True, type=Path, help="ModelDeployment YAML")
    source = plan.add_mutually_exclusive_group()
    source.add_argument("--inventory", type=Path, help="NodeList YAML (offline mode)")
    source.add_argument(
        "--all-gpus",
        action="store_true",
        help="plan against one empty 8-GPU node of every catalog GPU",
    )
    plan.add_argument("--prices", type=Path, help="price overrides YAML")
    plan.add_argument("-o", "--output", choices=("table", "json"), default="table")
    plan.set_defaults(func=run_plan)


def run_plan(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if args.inventory is None and not args.all_gpus:
        err.write(
            "modelfleet plan: reading the current cluster is not implemented yet; pass "
            "--inventory NODES.yaml (kubectl get nodes,pods -A -o yaml) or --all-gpus\n"
        )
        return 2
    try:
        request = request_from_manifest(_load_yaml(args.filename, first_of_kind="ModelDeployment"))
        if args.inventory is not None:
            inventory = inventory_from_yaml(_load_yaml(args.inventory))
        else:
            inventory = hypothetical_inventory(default_gpus())
        prices = (
            parse_price_overrides(_load_yaml(args.prices), prefix=str(args.prices))
            if args.prices
            else PriceSheet()
        )
    except (PlanInputError, PriceSheetError) as error:
        for line in error.errors:
            err.write(f"modelfleet plan: {line}\n")
        return 2
    placement = place(request, inventory, prices)
    if args.output == "json":
        out.write(json.dumps(placement.as_dict(), indent=2) + "\n")
    else:
        out.write(format_table(placement, inventory))
    return 0 if placement.feasible else 1


def _load_yaml(path: Path, first_of_kind: str | None = None) -> Any:
    try:
        docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    except OSError as error:
        raise PlanInputError([f"{path}: {error.strerror or error}"]) from error
    except yaml.YAMLError as error:
        raise PlanInputError([f"{path}: not valid YAML: {error}"]) from error
    if first_of_kind:
        docs = [d for d in docs if isinstance(d, Mapping) and d.get("kind") == first_of_kind]
        if not docs:
            raise PlanInputError([f"{path}: no {first_of_kind} found"])
    if len(docs) == 1:
        return docs[0]
    return {"kind": "List", "items": docs} if docs else None


def inventory_from_yaml(data: Any) -> Inventory:
    """A NodeList, a List of Nodes and Pods, or a single Node."""
    if not isinstance(data, Mapping):
        raise PlanInputError(["inventory: expected a NodeList (kubectl get nodes -o yaml)"])
    items = data.get("items") if "items" in data else [data]
    if not isinstance(items, list):
        raise PlanInputError(["inventory.items: must be a list"])
    objects = [item for item in items if isinstance(item, Mapping)]
    default_kind = "Node" if data.get("kind") == "NodeList" else None
    nodes = [o for o in objects if o.get("kind", default_kind) == "Node"]
    pods = [o for o in objects if o.get("kind") == "Pod"]
    return parse_inventory(nodes, pods)


def _engine_arg(args: Sequence[Any], flag: str) -> str | None:
    for index, arg in enumerate(args):
        arg = str(arg)
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and index + 1 < len(args):
            return str(args[index + 1])
    return None


def request_from_manifest(manifest: Any) -> PlacementRequest:
    """Map a ModelDeployment (dict) onto a PlacementRequest; field-level errors on bad values."""
    spec = manifest.get("spec") if isinstance(manifest, Mapping) else None
    if not isinstance(spec, Mapping):
        raise PlanInputError(["spec: required"])
    gpu = spec.get("gpu") or {}
    if not isinstance(gpu, Mapping):
        raise PlanInputError(["spec.gpu: must be an object"])
    extra = spec.get("extraArgs") or []
    if not isinstance(extra, list):
        raise PlanInputError(["spec.extraArgs: must be a list"])
    fields: dict[str, tuple[str, Any]] = {
        "model": ("spec.model", spec.get("model")),
        "architecture": ("spec.architecture", spec.get("architecture")),
        "max_context_length": (
            "spec.maxContextLength",
            spec.get("maxContextLength", _engine_arg(extra, "--max-model-len")),
        ),
        "quantization": (
            "spec.quantization",
            spec.get("quantization", _engine_arg(extra, "--quantization")),
        ),
        "engine": ("spec.engine", spec.get("engine", "vllm")),
        "gpu_product": ("spec.gpu.product", gpu.get("product")),
        "gpu_count": ("spec.gpu.count", gpu.get("count")),
        "gpu_memory_utilization": (
            "spec.gpuMemoryUtilization",
            spec.get("gpuMemoryUtilization", _engine_arg(extra, "--gpu-memory-utilization")),
        ),
        "kv_cache_dtype": (
            "spec.kvCacheDtype",
            spec.get("kvCacheDtype", _engine_arg(extra, "--kv-cache-dtype")),
        ),
    }
    values = {name: value for name, (_, value) in fields.items() if value is not None}
    if values.get("architecture") is not None and isinstance(values["architecture"], Mapping):
        values["architecture"] = {"id": values.get("model", "custom"), **values["architecture"]}
    try:
        return PlacementRequest.model_validate(values)
    except ValidationError as error:
        paths = {name: path for name, (path, _) in fields.items()}
        lines = []
        for problem in error.errors():
            loc = [str(part) for part in problem["loc"]]
            head = paths.get(loc[0], loc[0]) if loc else "spec"
            path = ".".join([head, *loc[1:]])
            lines.append(f"{path}: {problem['msg'].removeprefix('Value error, ')}")
        raise PlanInputError(lines) from error


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(placement: Placement, inventory: Inventory) -> str:
    rows = [
        ["GPU", "PRODUCT", "QUANT", "NEEDS", "GIVES", "FIT", "FREE", "TOK/S", "$/H", "$/1M", "NOTE"]
    ]
    for option in placement.options:
        memory = option.memory
        rows.append(
            [
                option.display + (" spot" if option.spot else ""),
                option.gpu_product,
                option.quantization,
                _cell(memory.needed_gib if memory else None, ".0f") + " GiB",
                _cell(memory.capacity_gib if memory else None, ".0f") + " GiB",
                "yes" if option.feasible else "no",
                str(option.free_replicas),
                _cell(option.throughput.decode_tokens_per_s if option.throughput else None, ".0f"),
                _cell(option.hourly_cost, ".2f"),
                _cell(option.usd_per_million_tokens, ".3f"),
                "<- chosen" if option is placement.chosen else (option.reason or ""),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    verdict = "PLACEMENT" if placement.feasible else "NO FEASIBLE PLACEMENT"
    context = placement.max_context_length
    header = [f"{verdict} for {placement.model} (max context {context}): {placement.message}"]
    header += [f"ignored node {line}" for line in inventory.ignored]
    return "\n".join([*header, "", *lines]) + "\n"
