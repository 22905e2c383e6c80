"""Fifty autoscaled deployments and the operator still keeps time (issue 9, item 3).

Before, each autoscaler was a synchronous daemon holding one of kopf's min(32, CPUs + 4) threads
for good: on 2 CPUs six of them stalled every other handler. Now every autoscaler waits in the
event loop and takes a pooled thread only for its scrape and writes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.node_fixtures import A10G, a10g_pool, extra_nodes
from tests.integration.operator_fixtures import (
    ModelDeployments,
    OperatorProcess,
    free_port,
    http_get,
    run_operator,
    wait_until,
)

pytestmark = pytest.mark.integration

COUNT = 50
INTERVAL = 5
# On time: decided within two intervals (an interval plus a slow scrape round), at every look.
ON_TIME_SECONDS = 2 * INTERVAL + 2
SPEC: dict[str, Any] = {
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "gpu": {"product": A10G, "count": 1},
    "replicas": 1,
    "minReplicas": 1,
    "maxReplicas": 2,
    "autoscaling": {"intervalSeconds": INTERVAL},
}


def decision_times(metrics_port: int, namespace: str) -> dict[str, float]:
    """name -> unix time of the autoscaler's last decision, from the operator's /metrics."""
    found: dict[str, float] = {}
    text = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
    for family in text_string_to_metric_families(text):
        if family.name != "modelfleet_autoscaler_last_decision_timestamp_seconds":
            continue
        for sample in family.samples:
            if sample.labels.get("namespace") == namespace:
                found[sample.labels["name"]] = sample.value
    return found


def _complete(decided: dict[str, float]) -> dict[str, float] | None:
    return decided if len(decided) == COUNT else None


def test_fifty_autoscaled_deployments_reconcile_and_decide_on_time(
    api: Any,
    namespace: str,
    mds: ModelDeployments,
    operator_process: OperatorProcess,
    emulator: Path,
    kubeconfig: Path,
    tmp_path: Path,
) -> None:
    """With the default resync (30 s), as a platform team runs it: the session's operator
    reconciles every 2 s, which at fifty deployments is 25 reconciles a second."""
    operator_process.stop()
    port = free_port()
    env = {"MODELFLEET_RESYNC_SECONDS": "30", "MODELFLEET_METRICS_PORT": str(port)}
    try:
        with run_operator(kubeconfig, tmp_path / "operator.log", env) as operator:
            _fifty_on_time(api, namespace, mds, port)
            assert operator.poll() is None, "the operator exited"
    finally:
        operator_process.start()


def _fifty_on_time(api: Any, namespace: str, mds: ModelDeployments, port: int) -> None:
    core: Any = client.CoreV1Api(api)
    names = [f"auto-{index:02d}" for index in range(COUNT)]
    pool = a10g_pool(f"many-a10g-{namespace[-8:]}", 7, 8)
    with extra_nodes(core, pool):
        for name in names:
            mds.create(namespace, name, SPEC)

        def all_ready() -> list[str]:
            items = mds.custom.list_namespaced_custom_object(
                "modelfleet.dev", "v1alpha1", namespace, "modeldeployments"
            )["items"]
            return [
                item["metadata"]["name"]
                for item in items
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (item.get("status") or {}).get("conditions") or []
                )
            ]

        wait_until(lambda: len(all_ready()) == COUNT, 240, f"all {COUNT} Ready=True")

        worst = 0.0
        for _look in range(3):
            decided = wait_until(
                lambda: _complete(decision_times(port, namespace)),
                2 * ON_TIME_SECONDS,
                f"a decision for each of the {COUNT}",
            )
            assert decided is not None
            now = time.time()
            lags = {name: now - decided[name] for name in names}
            worst = max(worst, *lags.values())
            late = {name: round(lag, 1) for name, lag in lags.items() if lag > ON_TIME_SECONDS}
            assert not late, f"decided late (seconds since): {late}"
            time.sleep(INTERVAL)  # look again an interval later
        print(f"worst decision lag over {COUNT} autoscaled deployments: {worst:.1f}s")

        # Every other handler keeps up too: a plain deployment created now is served promptly.
        mds.create(namespace, "plain", {"model": SPEC["model"], "gpu": SPEC["gpu"]})
        started = time.monotonic()
        wait_until(
            lambda: mds.condition(namespace, "plain", "Ready").get("status") == "True",
            60,
            "a plain deployment Ready=True beside fifty autoscaled ones",
        )
        print(f"plain deployment Ready after {time.monotonic() - started:.1f}s")

        for name in [*names, "plain"]:
            mds.delete(namespace, name)
        wait_until(lambda: not core.list_namespaced_pod(namespace).items, 120, "every pod gone")
