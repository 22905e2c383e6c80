"""`modelfleet plan`: the planner's choice for a ModelDeployment manifest.

    modelfleet plan -f MODELDEPLOYMENT.yaml --inventory NODES.yaml [--prices PRICES.yaml]
                    [--requests-per-second R --prompt-tokens P --output-tokens O]
                    [--ttft-seconds T] [-o table|json]
    modelfleet plan -f MODELDEPLOYMENT.yaml --all-gpus     # hypothetical: one empty 8-GPU node
                                                          # of every catalog GPU

NODES.yaml is `kubectl get nodes -o yaml` (a NodeList), or `kubectl get nodes,pods -A -o yaml`
to count GPUs already in use. Without --inventory or --all-gpus it reads the Nodes and Pods of
the current kubeconfig context (--kubeconfig to choose another).
Exit codes: 0 a feasible placement, 1 none, 2 bad input.

With a load (the flags, or spec.expectedLoad; a flag wins over its field) the choice is the
cheapest fleet for it within the TTFT target (--ttft-seconds, else spec.slo.ttftSeconds, else
2 s): every option shows the requests/s one replica serves within it, the replicas the load
needs, the fleet's USD per hour and per 1M output tokens. Without a load it is the cheapest
replica, and $/1M shows each option's cost per 1M output tokens at full use.

The manifest's spec is read leniently (fields the CRD does not have yet are accepted):
model, architecture, maxContextLength, quantization, engine, gpu.product (or "auto"),
gpu.count, gpuMemoryUtilization, kvCacheDtype, expectedLoad, slo, and extraArgs --max-model-len,
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
from modelfleet.perf.capacity import option_capacity
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
from modelfleet.plan.fleet import Load
from modelfleet.plan.request import PlacementRequest, PlanInputError, request_from_manifest


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
    load = plan.add_argument_group(
        "load",
        "traffic to size the fleet for (default: spec.expectedLoad; without one, the cheapest "
        "replica is chosen)",
    )
    load.add_argument(
        "--requests-per-second",
        type=_positive(float),
        metavar="R",
        help="requests per second to serve",
    )
    load.add_argument(
        "--prompt-tokens", type=_positive(int), metavar="P", help="prompt tokens of a request"
    )
    load.add_argument(
        "--output-tokens", type=_positive(int), metavar="O", help="output tokens of a request"
    )
    load.add_argument(
        "--ttft-seconds",
        type=_positive(float),
        metavar="T",
        help="time-to-first-token target a replica must meet (default: spec.slo.ttftSeconds, "
        "else 2)",
    )
    plan.add_argument("-o", "--output", choices=("table", "json"), default="table")
    plan.set_defaults(func=run_plan)


def _positive(kind: type[float] | type[int]) -> Any:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse


def with_load_flags(request: PlacementRequest, args: argparse.Namespace) -> PlacementRequest:
    """The manifest's load and TTFT target, with the command line's flags over them."""
    flags = {
        "requests_per_second": getattr(args, "requests_per_second", None),
        "prompt_tokens": getattr(args, "prompt_tokens", None),
        "output_tokens": getattr(args, "output_tokens", None),
    }
    update: dict[str, Any] = {}
    if any(value is not None for value in flags.values()):
        given = request.load.model_dump() if request.load else {}
        values = {**given, **{k: v for k, v in flags.items() if v is not None}}
        missing = [f"--{name.replace('_', '-')}" for name in flags if values.get(name) is None]
        if missing:
            raise PlanInputError(
                [f"{', '.join(missing)}: needed for a load (or spec.expectedLoad)"]
            )
        update["load"] = Load.model_validate(values)
    ttft = getattr(args, "ttft_seconds", None)
    if ttft is not None:
        update["ttft_seconds"] = ttft
    return request.model_copy(update=update) if update else request


def run_plan(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        request = request_from_manifest(_load_yaml(args.filename, first_of_kind="ModelDeployment"))
        request = with_load_flags(request, args)
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
    placement = place(request, inventory, prices, capacity=option_capacity)
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
    sized = placement.load is not None
    if sized:
        headers += ["REQ/S EACH", "REPLICAS", "FLEET $/H", "FLEET $/1M"]
    rows = []
    for option in placement.options:
        memory = option.memory
        row = [
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
        ]
        if sized:
            fleet = option.fleet
            row += [
                _cell(option.capacity.requests_per_s if option.capacity else None, ".3g"),
                str(fleet.replicas) if fleet else "-",
                _cell(fleet.hourly_cost if fleet else None, ".2f"),
                _cell(fleet.usd_per_million_output_tokens if fleet else None, ".3f"),
            ]
        rows.append([*row, "<- chosen" if option is placement.chosen else (option.reason or "")])
    verdict = "PLACEMENT" if placement.feasible else "NO FEASIBLE PLACEMENT"
    context = placement.max_context_length
    kv = placement.kv_cache_dtype
    header = [
        f"{verdict} for {placement.model} (max context {context}, KV cache {kv}): "
        f"{placement.message}"
    ]
    header += [f"ignored node {line}" for line in inventory.ignored]
    footer = _hint(placement)
    return "\n".join([*header, "", ""]) + table([*headers, "NOTE"], rows) + footer


def _hint(placement: Placement) -> str:
    """Without a load: which option is cheapest per token at full use, if not the chosen one."""
    if placement.load is not None or placement.chosen is None:
        return ""
    priced = [
        option
        for option in placement.options
        if option.feasible and option.usd_per_million_tokens is not None
    ]
    best = min(priced, key=lambda option: option.usd_per_million_tokens or 0.0)
    chosen = placement.chosen
    if best is chosen or chosen.usd_per_million_tokens is None:
        return ""
    assert best.usd_per_million_tokens is not None
    return (
        f"\nNo load given, so the cheapest replica. At full use {best.display} costs "
        f"${best.usd_per_million_tokens:.3f} per 1M output tokens against "
        f"${chosen.usd_per_million_tokens:.3f}: give --requests-per-second, --prompt-tokens and "
        "--output-tokens (or spec.expectedLoad) for the cheapest fleet for your traffic.\n"
    )
