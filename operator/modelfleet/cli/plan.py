"""`modelfleet plan`: the planner's choice for a ModelDeployment manifest.

    modelfleet plan -f MODELDEPLOYMENT.yaml --inventory NODES.yaml [--prices PRICES.yaml]
                    [-o table|json]
    modelfleet plan -f MODELDEPLOYMENT.yaml --all-gpus     # hypothetical: one empty 8-GPU node
                                                          # of every catalog GPU

NODES.yaml is `kubectl get nodes -o yaml` (a NodeList), or `kubectl get nodes,pods -A -o yaml`
to count GPUs already in use. Without --inventory or --all-gpus it reads the Nodes and Pods of
the current kubeconfig context (--kubeconfig to choose another).
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from modelfleet.catalog.gpus import default_gpus
from modelfleet.cli.tables import table
from modelfleet.cli.yaml_files import read_documents
from modelfleet.plan import (
    Inventory,
    Placement,
    PriceSheet,
    PriceSheetError,
    hypothetical_inventory,
    parse_inventory,
    parse_price_overrides,
    place,
)
from modelfleet.plan.request import PlanInputError, request_from_manifest


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
    plan.add_argument(
        "--kubeconfig",
        help="cluster to read when neither --inventory nor --all-gpus is given "
        "(default: $KUBECONFIG or ~/.kube/config)",
    )
    plan.add_argument("--prices", type=Path, help="price overrides YAML")
    plan.add_argument("-o", "--output", choices=("table", "json"), default="table")
    plan.set_defaults(func=run_plan)


def run_plan(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        request = request_from_manifest(_load_yaml(args.filename, first_of_kind="ModelDeployment"))
        if args.inventory is not None:
            inventory = inventory_from_yaml(_load_yaml(args.inventory))
        elif args.all_gpus:
            inventory = hypothetical_inventory(default_gpus())
        else:
            inventory = _live_inventory(args.kubeconfig)
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


def _live_inventory(kubeconfig: str | None) -> Inventory:
    """Nodes and Pods of a running cluster, read once (the same view the operator plans on)."""
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError

    from modelfleet.kube.client import Kube, load_api_client

    try:
        kube = Kube(load_api_client(kubeconfig))
        return parse_inventory(kube.list("v1", "Node"), kube.list("v1", "Pod"))
    except (ConfigException, OSError, HTTPError) as error:
        raise PlanInputError(
            [f"cannot read the cluster ({error}); pass --inventory NODES.yaml or --all-gpus"]
        ) from error


def _load_yaml(path: Path, first_of_kind: str | None = None) -> Any:
    docs = read_documents(path)
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


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(placement: Placement, inventory: Inventory) -> str:
    headers = ["GPU", "PRODUCT", "QUANT", "NEEDS", "GIVES", "FIT", "FREE", "TOK/S", "$/H", "$/1M"]
    rows = []
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
    verdict = "PLACEMENT" if placement.feasible else "NO FEASIBLE PLACEMENT"
    context = placement.max_context_length
    kv = placement.kv_cache_dtype
    header = [
        f"{verdict} for {placement.model} (max context {context}, KV cache {kv}): "
        f"{placement.message}"
    ]
    header += [f"ignored node {line}" for line in inventory.ignored]
    return "\n".join([*header, "", ""]) + table([*headers, "NOTE"], rows)
