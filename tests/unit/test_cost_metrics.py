"""The cluster's cost series: node prices, the split by allocation, OpenCost's names opt-in."""

from __future__ import annotations

from typing import Any

import kopf
from prometheus_client import generate_latest

from modelfleet.handlers import costs, metrics
from modelfleet.plan.prices import PriceSheet
from modelfleet.render.children import OWNER_LABEL
from tests.unit.factories import gpu_node


def pod(name: str, node_name: str, gpus: int, owner: str | None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "modelfleet", OWNER_LABEL: owner}
    return {
        "metadata": {"namespace": "team", "name": name, "labels": labels if owner else {}},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "engine", "resources": {"limits": {"nvidia.com/gpu": gpus}}}],
        },
    }


def sample(name: str, labels: dict[str, str]) -> float | None:
    text = generate_latest(metrics.REGISTRY).decode()
    wanted = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return None


def memo(opencost: bool, engine_pods: list[dict[str, Any]]) -> kopf.Memo:
    indexes = kopf.Memo(budget_namespaces={"team": ["12.5"], "bad": ["$3"]})
    indexes.engine_pods = {("team", "md"): engine_pods}
    return kopf.Memo(prices=PriceSheet(), opencost=opencost, indexes=indexes)


def test_cluster_split_node_prices_and_namespace_budgets() -> None:
    nodes = [gpu_node("l4-0", "NVIDIA-L4", 4), gpu_node("l4-1", "NVIDIA-L4", 4, "0.25")]
    engine = pod("md-1", "l4-0", 2, "md")
    pods = [engine, pod("batch", "l4-1", 1, None)]
    metrics.stopped_leading()
    costs.publish_cluster(nodes, pods, memo(False, [engine]))
    sheet = sample("modelfleet_node_gpu_hourly_cost_usd", {"node": "l4-0", "gpu": "NVIDIA-L4"})
    assert sheet is not None and sheet > 0  # the price sheet's L4
    assert (
        sample("modelfleet_node_gpu_hourly_cost_usd", {"node": "l4-1", "gpu": "NVIDIA-L4"}) == 0.25
    )
    assert sample("modelfleet_cluster_gpus", {"allocation": "modelfleet"}) == 2
    assert sample("modelfleet_cluster_gpus", {"allocation": "other"}) == 1
    assert sample("modelfleet_cluster_gpus", {"allocation": "idle"}) == 5
    idle = sample("modelfleet_cluster_gpu_hourly_cost_usd", {"allocation": "idle"})
    assert idle is not None and abs(idle - (2 * sheet + 3 * 0.25)) < 1e-9
    assert sample("modelfleet_namespace_budget_hourly_usd", {"namespace": "team"}) == 12.5
    assert sample("modelfleet_namespace_budget_hourly_usd", {"namespace": "bad"}) is None
    # OpenCost's names stay off unless asked for
    assert sample("node_gpu_hourly_cost", {"node": "l4-1", "instance_type": "NVIDIA-L4"}) is None


def test_opencost_names_when_asked() -> None:
    nodes = [gpu_node("l4-1", "NVIDIA-L4", 4, "0.25")]
    engine = pod("md-1", "l4-1", 2, "md")
    metrics.stopped_leading()
    costs.publish_cluster(nodes, [engine], memo(True, [engine]))
    assert sample("node_gpu_hourly_cost", {"node": "l4-1", "instance_type": "NVIDIA-L4"}) == 0.25
    labels = {"namespace": "team", "pod": "md-1", "container": "engine", "node": "l4-1"}
    assert sample("container_gpu_allocation", labels) == 2
    metrics.stopped_leading()  # a standby publishes nothing
    assert sample("container_gpu_allocation", labels) is None


def test_deployment_series_follow_the_fresh_cost_block_and_go_with_the_deployment() -> None:
    from modelfleet.api.types import (
        ApiEquivalentStatus,
        CostStatus,
        ModelDeployment,
        PerMillionTokens,
        TokenCounts,
    )
    from modelfleet.cost import default_api_prices

    row = default_api_prices().find("openai/gpt-4o")
    assert row is not None
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "qwen", "namespace": "team"},
            "spec": {"model": "Qwen/Qwen2.5-7B-Instruct", "budget": {"maxHourly": 3.0}},
        }
    )
    cost = CostStatus(
        hourly=1.4,
        gpus=2,
        spend=0.5,
        tokens=TokenCounts(input=1000, output=200),
        per_million_tokens=PerMillionTokens(output=None, total=2.5),
        api_equivalent=ApiEquivalentStatus(usd=0.01, compare_to=row.key, as_of=row.as_of),
    )
    metrics.stopped_leading()
    costs.publish_deployment(md, cost, row, pods=2)
    who = {"namespace": "team", "name": "qwen"}
    assert sample("modelfleet_deployment_hourly_cost_usd", who) == 1.4
    assert sample("modelfleet_deployment_spend_usd", who) == 0.5
    assert sample("modelfleet_deployment_gpus", who) == 2
    assert sample("modelfleet_deployment_replicas", who) == 2
    assert sample("modelfleet_deployment_budget_hourly_usd", who) == 3.0
    assert sample("modelfleet_deployment_tokens", {**who, "direction": "output"}) == 200
    assert (
        sample("modelfleet_deployment_cost_per_million_tokens_usd", {**who, "kind": "total"}) == 2.5
    )
    # nothing generated: no per-output figure rather than a made-up one
    assert (
        sample("modelfleet_deployment_cost_per_million_tokens_usd", {**who, "kind": "output"})
        is None
    )
    priced = {**who, "compare_to": row.key, "direction": "output"}
    assert sample("modelfleet_deployment_api_price_per_million_tokens_usd", priced) == row.output
    assert sample("modelfleet_deployment_idle_gpu_hours", who) is None  # unknown: absent
    metrics.forget("team", "qwen")
    assert sample("modelfleet_deployment_hourly_cost_usd", who) is None
