"""What the scale benchmark runs: the node inventory, the ModelDeployments, and the API floor.

Pure except `floor_children`, which needs the cluster's Nodes. Every deployment pins its GPU
product and count, so its placement does not depend on how full the pools are: the floor renders
exactly the children the operator renders (`modelfleet.render.children`, the planner's placement
for the same spec), and the benchmark checks afterwards that the operator placed the same.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import yaml

from modelfleet.api.types import API_VERSION, KIND, ModelDeployment, PlacementStatus
from modelfleet.plan.deployment import plan_deployment
from modelfleet.plan.inventory import parse_inventory
from modelfleet.plan.prices import PriceSheet
from modelfleet.render.children import children

GPUS_PER_NODE = 8
MAX_POOL_NODES = 100  # nodes.NodePool allows at most 100 nodes per pool


@dataclass(frozen=True)
class Product:
    """One GPU node pool of the benchmark's cluster and the deployment that runs on it."""

    pool: str
    gpu_product: str
    gpu_memory_mib: int
    cpu: str
    memory: str
    share: float  # of the nodes and of the plain deployments
    spec: dict[str, Any]


PRODUCTS = (
    Product(
        "l4",
        "NVIDIA-L4",
        23034,
        "96",
        "384Gi",
        0.5,
        {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": "NVIDIA-L4", "count": 1}},
    ),
    Product(
        "a100",
        "NVIDIA-A100-SXM4-80GB",
        81920,
        "96",
        "1152Gi",
        0.3,
        {
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "gpu": {"product": "NVIDIA-A100-SXM4-80GB", "count": 1},
        },
    ),
    Product(
        "h100",
        "NVIDIA-H100-80GB-HBM3",
        81559,
        "192",
        "2048Gi",
        0.2,
        {
            "model": "mistralai/Mistral-7B-Instruct-v0.3",
            "engine": "sglang",
            "gpu": {"product": "NVIDIA-H100-80GB-HBM3", "count": 1},
        },
    ),
)
# Autoscaled deployments run on the first product; their load comes from the emulator.
AUTOSCALED_MAX_REPLICAS = 2
CHURN_UPDATE_SHARE = 0.2  # of the deployments, per churn round: a spec update (a rollout)
CHURN_REPLACE_SHARE = 0.1  # of the deployments, per churn round: deleted, and as many created


def split(total: int, shares: list[float]) -> list[int]:
    """`total` split by `shares` (largest remainder), summing exactly to `total`."""
    exact = [total * share for share in shares]
    counts = [math.floor(value) for value in exact]
    order = sorted(range(len(shares)), key=lambda i: exact[i] - counts[i], reverse=True)
    for index in order[: total - sum(counts)]:
        counts[index] += 1
    return counts


def node_counts(nodes: int) -> dict[str, int]:
    return dict(
        zip((p.pool for p in PRODUCTS), split(nodes, [p.share for p in PRODUCTS]), strict=True)
    )


def inventory_yaml(nodes: int) -> str:
    """A node inventory (see operator/modelfleet/dev/cluster/default-nodes.yaml) of `nodes` GPU
    nodes of GPUS_PER_NODE GPUs, split over the products; pools of at most 100 nodes."""
    pools: list[dict[str, Any]] = []
    for product in PRODUCTS:
        count = node_counts(nodes)[product.pool]
        for part in range(math.ceil(count / MAX_POOL_NODES)):
            pools.append(
                {
                    "name": f"{product.pool}-{chr(ord('a') + part)}",
                    "gpuProduct": product.gpu_product,
                    "gpuMemoryMiB": product.gpu_memory_mib,
                    "gpusPerNode": GPUS_PER_NODE,
                    "count": min(MAX_POOL_NODES, count - part * MAX_POOL_NODES),
                    "cpu": product.cpu,
                    "memory": product.memory,
                }
            )
    return yaml.safe_dump({"pools": [pool for pool in pools if pool["count"] > 0]}, sort_keys=False)


def product_of(index: int) -> Product:
    """Deployment `index` runs on this product: 5 in 10 on the first, 3 on the second, 2 on the
    third, interleaved so every namespace and every prefix of the list has the same mix."""
    slot = index % 10
    bounds = [round(sum(p.share for p in PRODUCTS[: i + 1]) * 10) for i in range(len(PRODUCTS))]
    return next(p for p, bound in zip(PRODUCTS, bounds, strict=True) if slot < bound)


def plain_spec(index: int) -> dict[str, Any]:
    return copy.deepcopy(product_of(index).spec)


def autoscaled_spec() -> dict[str, Any]:
    return {
        **copy.deepcopy(PRODUCTS[0].spec),
        "replicas": 1,
        "minReplicas": 1,
        "maxReplicas": AUTOSCALED_MAX_REPLICAS,
    }


def capacity_problems(nodes: int, deployments: int, autoscaled: int) -> list[str]:
    """GPU shortfalls per product for the busiest phase (churn's surge, or the autoscaled
    deployments at their maximum beside the plain ones); empty when everything fits."""
    per_product = {p.pool: 0 for p in PRODUCTS}
    for index in range(deployments):
        per_product[product_of(index).pool] += 1
    problems = []
    for product in PRODUCTS:
        have = node_counts(nodes)[product.pool] * GPUS_PER_NODE
        plain = per_product[product.pool]
        churn = math.ceil(plain * (1 + CHURN_UPDATE_SHARE + CHURN_REPLACE_SHARE))
        scaled = plain + (autoscaled * AUTOSCALED_MAX_REPLICAS if product is PRODUCTS[0] else 0)
        need = max(churn, scaled)
        if need > have:
            problems.append(f"{product.gpu_product}: need {need} GPUs, {have} on the nodes")
    return problems


def body(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def placement_for(spec: dict[str, Any], nodes: list[dict[str, Any]]) -> PlacementStatus:
    """The planner's placement for `spec` on empty `nodes` (what the operator plans for the
    first deployment of the kind; pinned product and count keep it for every later one)."""
    md = ModelDeployment.from_body(body("floor", "probe", spec))
    decision = plan_deployment(md, parse_inventory(nodes), PriceSheet())
    if isinstance(decision, str):
        raise SystemExit(f"benchmark spec {spec} fits nowhere on the benchmark's nodes: {decision}")
    return decision


def floor_children(
    namespace: str, name: str, spec: dict[str, Any], placement: PlacementStatus
) -> list[dict[str, Any]]:
    """The Deployment and Service the operator would apply for this ModelDeployment, without
    the owner reference (there is no owner: the garbage collector would delete them)."""
    md = ModelDeployment.from_body(
        {
            **body(namespace, name, spec),
            "metadata": {"name": name, "namespace": namespace, "uid": "none"},
        }
    )
    rendered = children(md, placement)
    for child in rendered:
        child["metadata"].pop("ownerReferences", None)
    return rendered
