"""`modelfleet cost -A -o json` on a real cluster, run as a user runs it (a subprocess): its totals
are the sums of the ModelDeployments' status.cost, and its cluster section is the inventory's
price (every GPU node's GPUs at its price, a node annotation winning over the price sheet),
with another team's GPU pod counted as allocated.

Expected numbers are worked out here from the Nodes and Pods as the API server returns them
and from a price table of this test's own (passed with --prices), not with the cost core.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from modelfleet.api.types import GROUP, PLURAL, VERSION
from tests.integration.node_fixtures import A10G, a10g_pool, extra_nodes
from tests.integration.operator_fixtures import ModelDeployments, OperatorProcess, wait_until

pytestmark = pytest.mark.integration

PRICE_ANNOTATION = "modelfleet.dev/gpu-hourly-usd"
ANNOTATED_PRICE = 0.37  # the negotiated price of one A10G node
# USD per GPU-hour of every product the local cluster has (default inventory plus this test's
# A10G nodes): numbers of this test, so the report's prices are known without the catalog.
PRICES = {
    "NVIDIA-L4": 0.61,
    "NVIDIA-A100-SXM4-80GB": 1.71,
    "NVIDIA-H100-80GB-HBM3": 2.93,
    "NVIDIA-H200": 3.47,
    A10G: 0.83,
}
QWEN = {
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "maxContextLength": 8192,
    "gpu": {"product": A10G, "count": 1},
    "replicas": 2,
}
LLAMA = {
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "maxContextLength": 8192,
    "gpu": {"product": "NVIDIA-L4", "count": 1},
    "replicas": 1,
}
OTHER_POD_GPUS = 2


def modelfleet_cost(kubeconfig: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "modelfleet.cli", "cost", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def plain(api: Any, objects: list[Any]) -> list[dict[str, Any]]:
    return [api.sanitize_for_serialization(obj) for obj in objects]


def gpu_count(resources: dict[str, Any] | None) -> int:
    return int(((resources or {}).get("nvidia.com/gpu")) or 0)


def node_price(node: dict[str, Any]) -> float:
    """The price this test expects for a GPU node: its annotation, else the test's table."""
    meta = node["metadata"]
    annotation = (meta.get("annotations") or {}).get(PRICE_ANNOTATION)
    if annotation is not None:
        return float(annotation)
    product = meta["labels"]["nvidia.com/gpu.product"]
    assert product in PRICES, f"node {meta['name']} has a GPU product this test does not price"
    return PRICES[product]


def inventory(api: Any) -> tuple[dict[str, tuple[int, float]], list[dict[str, Any]]]:
    """GPU nodes (GPUs, price) and the pods holding GPUs on them now."""
    core: Any = client.CoreV1Api(api)
    nodes = {
        node["metadata"]["name"]: (gpu_count(node["status"].get("capacity")), node_price(node))
        for node in plain(api, core.list_node().items)
        if gpu_count(node["status"].get("capacity")) > 0
    }
    pods = [
        pod
        for pod in plain(api, core.list_pod_for_all_namespaces().items)
        if pod["spec"].get("nodeName")
        and pod["status"].get("phase") not in ("Succeeded", "Failed")
        and sum(gpu_count(c["resources"].get("limits")) for c in pod["spec"]["containers"])
    ]
    return nodes, pods


def pod_hourly(pod: dict[str, Any], nodes: dict[str, tuple[int, float]]) -> float:
    gpus = sum(gpu_count(c["resources"].get("limits")) for c in pod["spec"]["containers"])
    return gpus * nodes[pod["spec"]["nodeName"]][1]


def statuses(mds: ModelDeployments, namespace: str) -> dict[str, dict[str, Any]]:
    return {
        name: dict(mds.get(namespace, name).get("status", {}).get("cost") or {})
        for name in ("qwen", "llama")
    }


@pytest.fixture
def cost_writes_every_10s(operator_process: OperatorProcess) -> Iterator[None]:
    """Spend written every 10 s instead of 5 minutes; the session's operator is restored after.

    Long enough that a report (about 2 s) usually falls between two writes."""
    operator_process.restart(MODELFLEET_COST_WRITE_SECONDS="10")
    try:
        yield
    finally:
        operator_process.restart()


@pytest.mark.usefixtures("cost_writes_every_10s")
def test_cost_report_totals_are_the_statuses_and_the_cluster_is_the_inventory_price(
    api: Any, kubeconfig: Path, namespace: str, mds: ModelDeployments, tmp_path: Path
) -> None:
    core: Any = client.CoreV1Api(api)
    prices_file = tmp_path / "prices.yaml"
    prices_file.write_text(
        yaml.safe_dump({product: {"onDemand": p, "spot": p} for product, p in PRICES.items()})
    )
    pool = a10g_pool(f"cost-{namespace[-8:]}", nodes=2, gpus_per_node=4)
    with extra_nodes(core, pool) as names:
        core.patch_node(
            names[0], {"metadata": {"annotations": {PRICE_ANNOTATION: str(ANNOTATED_PRICE)}}}
        )
        # another team's GPU pod on the annotated node: allocated, not modelfleet's
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": "training-job"},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": names[0]},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                    "containers": [
                        {
                            "name": "train",
                            "image": "example.com/train:1",
                            "resources": {"limits": {"nvidia.com/gpu": str(OTHER_POD_GPUS)}},
                        }
                    ],
                },
            },
        )
        wait_until(
            lambda: core.read_namespaced_pod("training-job", namespace).status.phase == "Running",
            60,
            "the other team's GPU pod Running",
        )
        mds.create(namespace, "qwen", QWEN)
        mds.create(namespace, "llama", LLAMA)

        def costed() -> bool:
            cost = statuses(mds, namespace)
            gpus = {name: c.get("gpus") for name, c in cost.items()}
            return gpus == {"qwen": 2, "llama": 1} and all(c.get("spend") for c in cost.values())

        wait_until(costed, 120, "status.cost of both deployments with their GPUs and some spend")

        # Spend grows every resync: compare a report with statuses read just before and after it.
        deadline = time.monotonic() + 90
        while True:
            before = statuses(mds, namespace)
            report = modelfleet_cost(kubeconfig, "-A", "-o", "json", "--prices", str(prices_file))
            if before == statuses(mds, namespace) or time.monotonic() > deadline:
                break
        ours = [d for d in report["deployments"] if d["namespace"] == namespace]
        assert {d["name"]: d["spend"] for d in ours} == {
            name: cost.get("spend", 0.0) for name, cost in before.items()
        }, "the statuses changed during every report for 90 s"
        assert {d["name"]: d["hourly"] for d in ours} == {
            name: cost["hourly"] for name, cost in before.items()
        }

        # totals: the sums of every deployment's status.cost (only this test's exist now)
        everything = mds.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        all_costs = [(md.get("status") or {}).get("cost") or {} for md in everything["items"]]
        assert report["totals"]["hourly"] == pytest.approx(
            sum(c.get("hourly", 0.0) for c in all_costs)
        )
        assert report["totals"]["spend"] == pytest.approx(
            sum(c.get("spend", 0.0) for c in all_costs)
        )
        assert report["totals"]["spend"] > 0
        namespace_totals = report["namespaces"][namespace]
        assert namespace_totals["hourly"] == pytest.approx(
            sum(c["hourly"] for c in before.values())
        )
        qwen = next(d for d in ours if d["name"] == "qwen")
        assert (qwen["model"], qwen["gpuProduct"], qwen["gpus"], qwen["replicas"]) == (
            QWEN["model"],
            A10G,
            2,
            2,
        )

        # the cluster section: the inventory's price, split by who holds the GPUs
        nodes, pods = inventory(api)
        cluster = report["cluster"]
        inventory_price = sum(gpus * price for gpus, price in nodes.values())
        assert cluster["hourly"] == pytest.approx(inventory_price)
        assert {n["name"]: n["usdPerGpuHour"] for n in cluster["nodes"]}[
            names[0]
        ] == ANNOTATED_PRICE
        allocated = sum(pod_hourly(pod, nodes) for pod in pods)
        assert cluster["allocatedHourly"] == pytest.approx(allocated)
        other = OTHER_POD_GPUS * ANNOTATED_PRICE
        assert cluster["otherHourly"] == pytest.approx(other)
        assert cluster["allocatedHourly"] == pytest.approx(cluster["modelfleetHourly"] + other)
        assert cluster["idleHourly"] == pytest.approx(inventory_price - allocated)
        assert cluster["gpus"]["other"] == OTHER_POD_GPUS

        # Without --prices the CLI prices pods as the operator does: the modelfleet share of the
        # cluster is what the statuses say the deployments cost per hour.
        default = modelfleet_cost(
            kubeconfig, "-A", "-o", "json", "--html", str(tmp_path / "c.html")
        )
        assert default["cluster"]["modelfleetHourly"] == pytest.approx(default["totals"]["hourly"])
        html = (tmp_path / "c.html").read_text()
        assert 'id="gpu-allocation"' in html and "No history" in html
