"""status.cost on a real cluster: the hourly cost, tokens and $/1M under emulated load, and spend
across an operator crash compared with wall-clock GPU time.

The operator runs here with the time-based cost fields written every few seconds (the default,
5 minutes, is for production); it is restarted with its defaults at the end.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelfleet.cost import kube_time, node_prices
from modelfleet.dev.engine.load import LoadConfig, kube_targets, run_load
from modelfleet.plan.inventory import pod_gpus
from modelfleet.plan.prices import PriceSheet
from modelfleet.render.children import OWNER_LABEL
from tests.integration.engine_fixtures import wait_for_engines
from tests.integration.operator_fixtures import FAST_WRITE_SECONDS, ModelDeployments, wait_until

pytestmark = pytest.mark.integration

NAME = "qwen-cost"
MODEL = "Qwen/Qwen2.5-7B-Instruct"
SPEC: dict[str, Any] = {"model": MODEL, "gpu": {"product": "NVIDIA-L4", "count": 1}, "replicas": 2}
PRICE_ANNOTATION = "modelfleet.dev/gpu-hourly-usd"
LOAD = LoadConfig(concurrency=4, duration=15, prompt_tokens=300, output_tokens=40)


def cost(mds: ModelDeployments, namespace: str) -> dict[str, Any]:
    return dict((mds.get(namespace, NAME).get("status") or {}).get("cost") or {})


def own_pods(api: Any, namespace: str) -> list[Any]:
    pods = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"{OWNER_LABEL}={NAME}"
    )
    return [pod for pod in pods.items if pod.spec.node_name]


def prices_now(api: Any) -> dict[str, float]:
    """USD per GPU-hour of every GPU node, as a user would price the inventory."""
    nodes = client.CoreV1Api(api).list_node().items
    raw = [client.ApiClient().sanitize_for_serialization(node) for node in nodes]
    return {
        name: price.usd_per_gpu_hour or 0.0
        for name, price in node_prices(raw, PriceSheet()).items()
    }


def scheduled_at(pod: Any) -> float:
    for condition in pod.status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "True":
            return condition.last_transition_time.timestamp()
    return float(pod.metadata.creation_timestamp.timestamp())


def gpus(pod: Any) -> int:
    return pod_gpus(client.ApiClient().sanitize_for_serialization(pod))


def annotate(api: Any, node: str, value: str | None) -> None:
    client.CoreV1Api(api).patch_node(node, {"metadata": {"annotations": {PRICE_ANNOTATION: value}}})


def test_cost_block_tokens_and_per_million_under_load(
    api: Any, namespace: str, mds: ModelDeployments, emulator: Path, fast_writes: Any
) -> None:
    mds.create(namespace, NAME, SPEC)
    wait_for_engines(api, namespace, NAME, 2)
    pods = own_pods(api, namespace)
    assert len(pods) == 2
    prices = prices_now(api)
    expected_hourly = sum(gpus(pod) * prices[pod.spec.node_name] for pod in pods)
    wait_until(
        lambda: cost(mds, namespace).get("hourly") == pytest.approx(expected_hourly),
        30,
        f"status.cost.hourly = GPUs x node prices = {expected_hourly}",
    )
    per_replica = mds.get(namespace, NAME)["status"]["placement"]["hourlyCostPerReplica"]
    assert cost(mds, namespace)["hourly"] == pytest.approx(2 * per_replica)
    assert cost(mds, namespace)["gpus"] == 2
    row = cost(mds, namespace)["apiEquivalent"]
    assert row["compareTo"] == "google/gemini-2.5-flash", row  # a 7B model: the general default

    report = asyncio.run(run_load(kube_targets(api, namespace, NAME), MODEL, LOAD))
    assert report["errors"] == 0 and report["ok"] > 0, report
    sent_input = report["ok"] * LOAD.prompt_tokens
    sent_output = report["outputTokens"]

    def tokens_agree() -> bool:
        tokens = cost(mds, namespace).get("tokens") or {}
        return (
            abs(tokens.get("input", 0) - sent_input) <= 0.02 * sent_input
            and abs(tokens.get("output", 0) - sent_output) <= 0.02 * sent_output
        )

    deadline = time.monotonic() + 60
    while not tokens_agree():
        assert time.monotonic() < deadline, (
            f"tokens {sent_input} in / {sent_output} out within 2%; status.cost "
            f"{cost(mds, namespace)}; operator metrics: {fast_writes.metrics()[-3000:]}"
        )
        time.sleep(1)
    block = cost(mds, namespace)
    print(f"load: {report['ok']} requests, {sent_input} in, {sent_output} out; status: {block}")

    # $/1M over the window: the pods started after the operator did, so the window's cost is
    # their whole GPU time up to the watermark at the sheet's prices.
    until = kube_time(block["accruedUntil"])
    window_cost = sum(
        gpus(pod) * prices[pod.spec.node_name] * (until - scheduled_at(pod)) / 3600 for pod in pods
    )
    per_million = block["perMillionTokens"]
    tokens = block["tokens"]
    expected = window_cost / sent_output * 1e6
    assert per_million["output"] == pytest.approx(expected, rel=0.02), (per_million, expected)
    expected_total = window_cost / (sent_input + sent_output) * 1e6
    assert per_million["total"] == pytest.approx(expected_total, rel=0.02)
    assert block["apiEquivalent"]["usd"] > 0
    assert tokens["output"] > 0

    # A negotiated price on one node: that pod's GPUs are priced by the annotation.
    node = pods[0].spec.node_name
    try:
        annotate(api, node, "0.25")
        override = sum(
            gpus(pod) * (0.25 if pod.spec.node_name == node else prices[pod.spec.node_name])
            for pod in pods
        )
        wait_until(
            lambda: cost(mds, namespace).get("hourly") == pytest.approx(override),
            60,
            f"the node annotation priced in ({override} USD/h)",
        )
    finally:
        annotate(api, node, None)
    wait_until(
        lambda: cost(mds, namespace).get("hourly") == pytest.approx(expected_hourly),
        60,
        "the sheet price back",
    )


def test_spend_survives_an_operator_crash_within_the_bound(
    api: Any, namespace: str, mds: ModelDeployments, emulator: Path, fast_writes: Any
) -> None:
    mds.create(namespace, NAME, SPEC)
    wait_for_engines(api, namespace, NAME, 2)
    prices = prices_now(api)
    wait_until(lambda: cost(mds, namespace).get("accruedUntil"), 30, "a first accrual")
    time.sleep(5)
    before_kill = cost(mds, namespace)
    fast_writes.kill()
    killed = time.time()

    # While nobody leads: one pod is deleted (its ReplicaSet makes another) and is gone.
    victim = own_pods(api, namespace)[0]
    victim_rate = gpus(victim) * prices[victim.spec.node_name]
    core = client.CoreV1Api(api)
    core.delete_namespaced_pod(victim.metadata.name, namespace, grace_period_seconds=0)
    deleted = time.time()
    wait_until(
        lambda: victim.metadata.name not in {p.metadata.name for p in own_pods(api, namespace)},
        30,
        "the deleted pod gone",
    )
    time.sleep(3)
    fast_writes.start(MODELFLEET_COST_WRITE_SECONDS=FAST_WRITE_SECONDS)
    restarted = time.time()
    wait_until(
        lambda: (
            kube_time(cost(mds, namespace).get("accruedUntil") or "1970-01-01T00:00:00Z")
            > restarted + 2
        ),
        60,
        "an accrual by the new instance",
    )
    after = cost(mds, namespace)
    until = kube_time(after["accruedUntil"])

    # Wall-clock GPU time at the watermark: every pod that held GPUs, to its end or `until`.
    survivors = [p for p in own_pods(api, namespace) if scheduled_at(p) < until]
    wall = sum(
        gpus(p) * prices[p.spec.node_name] * (until - scheduled_at(p)) / 3600 for p in survivors
    )
    wall += victim_rate * (deleted - scheduled_at(victim)) / 3600
    last_write = kube_time(before_kill["accruedUntil"])
    bound = victim_rate * (deleted - last_write) / 3600  # its time after the last write
    print(
        f"spend {after['spend']:.6f} USD, wall-clock {wall:.6f} USD, bound {bound:.6f} USD "
        f"(down {restarted - killed:.1f}s)"
    )
    assert after["spend"] <= wall + 1e-5, "double-counted"
    assert after["spend"] >= wall - bound - 1e-5, "lost more than the stated bound"
