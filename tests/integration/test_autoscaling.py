"""Autoscaling end to end: the operator, the engine emulator and a load generator on a real cluster.

One deployment goes through the whole life: a load step adds replicas, re-applying the user's
unchanged YAML from another field manager keeps the autoscaler's count, an operator restart does
not scale down, removing the load scales down after the window, and `kubectl scale` (the scale
subresource) sets the count once before the autoscaler takes over again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from modelfleet.api.types import API_VERSION, GROUP, KIND, PLURAL, VERSION
from modelfleet.dev.engine.load import LoadConfig, kube_targets, run_load
from tests.integration.engine_fixtures import wait_for_engines
from tests.integration.operator_fixtures import ModelDeployments, OperatorProcess, wait_until

pytestmark = pytest.mark.integration

NAME = "qwen-autoscaled"
WINDOW = 20  # scaleDownWindowSeconds, short for the test
INTERVAL = 2
SPEC: dict[str, Any] = {
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "gpu": {"product": "NVIDIA-L4", "count": 1},
    "replicas": 1,
    "minReplicas": 1,
    "maxReplicas": 3,
    "autoscaling": {"intervalSeconds": INTERVAL, "scaleDownWindowSeconds": WINDOW},
}
# Far more than one L4 replica's KV cache holds at once: requests queue, the queue asks for more.
BURST = LoadConfig(concurrency=160, duration=240, prompt_tokens=2000, output_tokens=100)


class BackgroundLoad:
    """The load generator in a thread with its own event loop, stoppable from the test."""

    def __init__(self, api: Any, namespace: str, config: LoadConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self.report: dict[str, Any] = {}
        discover = kube_targets(api, namespace, NAME)
        self._thread = threading.Thread(
            target=self._run, args=(discover, SPEC["model"], config), daemon=True
        )

    def _run(self, discover: Any, model: str, config: LoadConfig) -> None:
        asyncio.set_event_loop(self._loop)
        self.report = self._loop.run_until_complete(
            run_load(discover, model, config, stop=self._stop)
        )

    def __enter__(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=120)

    def __exit__(self, *_: object) -> None:
        self.stop()


def gitops_apply(api: Any, namespace: str) -> None:
    """What Argo CD or Flux does: server-side apply of the user's YAML under its own manager."""
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": SPEC,
    }
    DynamicClient(api).resources.get(api_version=API_VERSION, kind=KIND).server_side_apply(
        body=body, name=NAME, namespace=namespace, field_manager="gitops", force_conflicts=True
    )


def desired(mds: ModelDeployments, namespace: str) -> int:
    return int((mds.get(namespace, NAME).get("status") or {}).get("desiredReplicas") or 0)


def deployment_replicas(api: Any, namespace: str) -> int:
    return int(client.AppsV1Api(api).read_namespaced_deployment(NAME, namespace).spec.replicas)


def scaled_events(api: Any, namespace: str) -> list[str]:
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={NAME},reason=Scaled"
    )
    return [str(event.message) for event in events.items]


def test_load_scales_up_and_down_without_fighting_gitops(
    api: Any,
    namespace: str,
    mds: ModelDeployments,
    emulator: Path,
    operator_process: OperatorProcess,
) -> None:
    gitops_apply(api, namespace)
    wait_for_engines(api, namespace, NAME, 1)
    assert desired(mds, namespace) == 1

    with BackgroundLoad(api, namespace, BURST) as load:
        started = time.monotonic()
        wait_until(lambda: desired(mds, namespace) >= 2, 60, "a scale-up under the load step")
        reacted = time.monotonic() - started
        status = mds.get(namespace, NAME)["status"]
        assert status["lastScaleReason"], status
        assert status["lastScaleTime"], status
        wait_until(lambda: scaled_events(api, namespace), 10, "a Scaled event")
        wait_until(
            lambda: deployment_replicas(api, namespace) == desired(mds, namespace),
            20,
            "the Deployment sized from status.desiredReplicas",
        )
        scaled_to = desired(mds, namespace)

        # Argo CD re-syncs the unchanged YAML (spec.replicas: 1): the count stays the autoscaler's.
        gitops_apply(api, namespace)
        for _ in range(3 * INTERVAL * 4):
            time.sleep(0.25)
            assert desired(mds, namespace) >= scaled_to, "re-applied YAML reset the count"
        assert mds.get(namespace, NAME)["spec"]["replicas"] == 1
        load.stop()
    # Stopping the load abandons the requests still in flight, as clients that go away do.
    assert load.report["sent"] >= BURST.concurrency, load.report
    print(f"scale-up decided {reacted:.1f}s after the load step; load: {load.report}")

    # A restart forgets the policy's memory but must not scale down: status keeps the count and
    # a fresh policy watches a whole window before removing anything.
    before_restart = desired(mds, namespace)
    operator_process.restart()
    restarted = time.monotonic()
    while time.monotonic() - restarted < WINDOW * 0.75:
        assert desired(mds, namespace) == before_restart, "scaled down right after a restart"
        time.sleep(0.5)

    # No load: down to minReplicas, one step at a time, after the window.
    wait_until(lambda: desired(mds, namespace) == 1, WINDOW * 4 + 30, "a scale-down to 1")
    wait_until(lambda: deployment_replicas(api, namespace) == 1, 20, "the Deployment at 1")

    # kubectl scale writes spec.replicas through the scale subresource: taken once, as asked.
    client.CustomObjectsApi(api).patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, PLURAL, NAME, {"spec": {"replicas": 3}}
    )
    wait_until(lambda: desired(mds, namespace) == 3, 20, "kubectl scale to 3 taken")
    assert "manual scale" in mds.get(namespace, NAME)["status"]["lastScaleReason"]
    wait_until(lambda: deployment_replicas(api, namespace) == 3, 20, "the Deployment at 3")
