"""Hourly cost now per deployment, and every GPU node's cost split by who holds its GPUs."""

from __future__ import annotations

import pytest

from modelfleet.cost.allocation import GpuPod, Hourly, cluster_cost, hourly_cost
from modelfleet.cost.node_prices import NodePrice

PRICES = {
    "l4-a": NodePrice("l4-a", "NVIDIA-L4", 4, 0.70, "price sheet"),
    "l4-b": NodePrice("l4-b", "NVIDIA-L4", 4, 0.50, "annotation"),  # negotiated
    "h100": NodePrice("h100", "NVIDIA-H100-80GB-HBM3", 8, 2.50, "price sheet"),
    "odd": NodePrice("odd", None, 2, None, "unknown"),
}
QWEN = ("team-a", "qwen")
LLAMA = ("team-a", "llama")
R1 = ("team-b", "r1")


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        pytest.param(
            [GpuPod("l4-a", 1, QWEN), GpuPod("l4-a", 1, QWEN)],
            Hourly(1.40, 2),
            id="two-replicas-same-node",
        ),
        pytest.param(
            [GpuPod("l4-a", 1, QWEN), GpuPod("l4-b", 1, QWEN)],
            Hourly(1.20, 2),
            id="per-node-price-where-each-pod-runs",
        ),
        pytest.param(
            # 2 ready + 1 loading + 1 surge of a rollout: every pod bound to a node costs
            [GpuPod("h100", 2, R1)] * 4,
            Hourly(20.0, 8),
            id="loading-and-surge-replicas-count",
        ),
        pytest.param(
            [GpuPod("l4-a", 1, QWEN), GpuPod("odd", 2, QWEN), GpuPod("gone", 1, QWEN)],
            Hourly(0.70, 4, 3),
            id="unpriced-and-unknown-nodes-reported",
        ),
        pytest.param([], Hourly(0.0, 0), id="scaled-to-zero"),
    ],
)
def test_hourly_cost(pods: list[GpuPod], expected: Hourly) -> None:
    got = hourly_cost(pods, PRICES)
    assert (got.usd, got.gpus, got.unpriced_gpus) == (
        pytest.approx(expected.usd),
        expected.gpus,
        expected.unpriced_gpus,
    )


def test_cluster_split_per_node_deployment_and_namespace() -> None:
    pods = [
        GpuPod("l4-a", 1, QWEN),
        GpuPod("l4-a", 1, QWEN),
        GpuPod("l4-a", 1),  # someone else's notebook
        GpuPod("l4-b", 2, LLAMA),
        GpuPod("h100", 8, R1),
        GpuPod("deleted-node", 1, QWEN),  # its node is gone: not cluster cost
        GpuPod("l4-b", 0),  # holds no GPU
    ]
    cost = cluster_cost(PRICES, pods)
    by_node = {node.price.node: node for node in cost.nodes}
    a = by_node["l4-a"]
    assert (a.modelfleet_gpus, a.other_gpus, a.free_gpus) == (2, 1, 1)
    assert (a.hourly, a.modelfleet_hourly, a.other_hourly, a.free_hourly) == pytest.approx(
        (2.8, 1.4, 0.7, 0.7)
    )
    assert by_node["l4-b"].free_hourly == pytest.approx(1.0)  # the annotation's price
    assert by_node["h100"].free_gpus == 0
    assert cost.by_deployment == pytest.approx({QWEN: 1.4, LLAMA: 1.0, R1: 20.0})
    assert cost.by_namespace == pytest.approx({"team-a": 2.4, "team-b": 20.0})
    assert cost.modelfleet_hourly == pytest.approx(22.4)
    assert cost.other_hourly == pytest.approx(0.7)
    assert cost.allocated_hourly == pytest.approx(23.1)
    assert cost.free_hourly == pytest.approx(0.7 + 1.0)
    assert cost.hourly == pytest.approx(2.8 + 2.0 + 20.0)
    assert cost.hourly == pytest.approx(cost.allocated_hourly + cost.free_hourly)
    assert cost.unpriced == ("odd",)
    # the cluster's share of each deployment equals its own hourly cost on known nodes
    assert hourly_cost([p for p in pods if p.owner == R1], PRICES).usd == pytest.approx(20.0)


def test_a_node_that_lost_gpus_under_running_pods_has_none_free() -> None:
    shrunk = {"n": NodePrice("n", "NVIDIA-L4", 2, 1.0, "price sheet")}
    cost = cluster_cost(shrunk, [GpuPod("n", 2, QWEN), GpuPod("n", 1)])
    assert (cost.nodes[0].free_gpus, cost.free_hourly, cost.allocated_hourly) == (0, 0.0, 3.0)


def test_an_empty_cluster() -> None:
    cost = cluster_cost({}, [GpuPod("x", 1, QWEN)])
    assert (cost.hourly, cost.by_deployment, cost.unpriced) == (0.0, {}, ())
