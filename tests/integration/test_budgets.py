"""Money budgets on a real control plane: spec.budget.maxHourly caps `kubectl scale` and the
autoscaler, and a namespace budget (the Namespace's annotation) is shared between deployments.

A watch on the engine Deployments records every spec.replicas the operator ever applied, so
"never above the cap" is checked on every version, not on samples.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from modelfleet.api.types import GROUP, PLURAL, VERSION
from modelfleet.cost.budget import NAMESPACE_BUDGET_ANNOTATION
from modelfleet.dev.engine.load import LoadConfig
from modelfleet.render.children import REPLACE, SURGE
from tests.integration.engine_fixtures import wait_for_engines
from tests.integration.operator_fixtures import ModelDeployments, wait_until
from tests.integration.test_autoscaling import BackgroundLoad

pytestmark = pytest.mark.integration

SPEC: dict[str, Any] = {
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "gpu": {"product": "NVIDIA-L4", "count": 1},
}


class DeploymentWatch:
    """Every spec.replicas of the namespace's Deployments, from a watch (each version)."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.apps: Any = client.AppsV1Api(api)
        self.namespace = namespace
        self.replicas: dict[str, int] = {}
        self.highest: dict[str, int] = {}
        self.highest_total = 0
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stopped = threading.Event()
        self.ended: str = ""  # why the watch ended before the test was done, if it did

    def _run(self) -> None:
        try:
            self._follow()
        except Exception as error:  # a broken stream after stop() is expected and ignored
            if not self._stopped.is_set():
                self.ended = f"the watch failed: {error!r}"
            return
        if not self._stopped.is_set():
            self.ended = "the watch ended early"

    def _follow(self) -> None:
        for event in self._watch.stream(
            self.apps.list_namespaced_deployment, self.namespace, timeout_seconds=900
        ):
            if self._stopped.is_set():
                return
            deployment = event["object"]
            name, replicas = deployment.metadata.name, int(deployment.spec.replicas or 0)
            if event["type"] == "DELETED":
                self.replicas.pop(name, None)
                continue
            self.replicas[name] = replicas
            self.highest[name] = max(self.highest.get(name, 0), replicas)
            self.highest_total = max(self.highest_total, sum(self.replicas.values()))

    @contextmanager
    def running(self) -> Iterator[DeploymentWatch]:
        self._thread.start()
        try:
            yield self
            # Every version was seen, or "never above the cap" proves nothing.
            assert not self.ended, self.ended
        finally:
            self._stopped.set()
            self._watch.stop()


def status(mds: ModelDeployments, namespace: str, name: str) -> dict[str, Any]:
    return mds.get(namespace, name).get("status") or {}


def per_replica(mds: ModelDeployments, namespace: str, name: str) -> float:
    """USD per replica-hour: every L4 node of the test cluster has the price sheet's price, so
    the dearest one a replica can land on costs what the placement says."""
    placement = wait_until(
        lambda: status(mds, namespace, name).get("placement"), 60, f"{name} placed"
    )
    return float(placement["hourlyCostPerReplica"])


def deployment_spec(api: Any, namespace: str, name: str) -> Any:
    return client.AppsV1Api(api).read_namespaced_deployment(name, namespace).spec


def events(api: Any, namespace: str, name: str, reason: str) -> list[str]:
    found = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},reason={reason}"
    )
    return [str(event.message) for event in found.items]


def scale(api: Any, namespace: str, name: str, replicas: int) -> None:
    """What `kubectl scale` does: a patch of the scale subresource."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": {"replicas": replicas}}
    )


def limited(mds: ModelDeployments, namespace: str, name: str) -> dict[str, Any]:
    condition = mds.condition(namespace, name, "BudgetLimited")
    return condition if condition.get("status") == "True" else {}


def test_max_hourly_caps_kubectl_scale_and_raising_it_lifts_the_cap(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    name = "capped"
    with DeploymentWatch(api, namespace).running() as seen:
        mds.create(namespace, name, {**SPEC, "replicas": 2, "budget": {"maxHourly": 1.5}})
        price = per_replica(mds, namespace, name)
        cap = math.floor(1.5 / price)
        assert cap == 2, f"the test assumes 2 L4 replicas fit 1.50 USD/h, at {price} USD/h each"
        wait_until(
            lambda: mds.condition(namespace, name, "BudgetLimited").get("reason") == "WithinBudget",
            30,
            "BudgetLimited=False within the budget",
        )

        scale(api, namespace, name, 5)
        condition = wait_until(lambda: limited(mds, namespace, name), 30, "BudgetLimited=True")
        expected = f"maxHourly 1.50 USD/h pays for 2 replica(s) at {price:.2f} USD/h each; 5 wanted"
        assert (condition["reason"], condition["message"]) == ("BudgetLimited", expected)
        wait_until(lambda: events(api, namespace, name, "BudgetLimited"), 20, "a Warning Event")
        assert events(api, namespace, name, "BudgetLimited") == [expected]
        assert status(mds, namespace, name)["desiredReplicas"] == 2
        spec = deployment_spec(api, namespace, name)
        assert spec.replicas == 2
        # (2 + 1 surge) x 0.70 > 1.50: a rollout replaces pods one by one.
        assert spec.strategy.rolling_update.max_surge == REPLACE["maxSurge"]
        assert spec.strategy.rolling_update.max_unavailable == REPLACE["maxUnavailable"]
        time.sleep(4)  # two resyncs at the test operator's 2 s: nothing above the cap
        assert seen.highest[name] == 2, seen.highest

        mds.patch_spec(namespace, name, {"budget": {"maxHourly": 5.0}})
        wait_until(lambda: deployment_spec(api, namespace, name).replicas == 5, 30, "5 replicas")
        wait_until(
            lambda: mds.condition(namespace, name, "BudgetLimited").get("reason") == "WithinBudget",
            30,
            "BudgetLimited=False after the raise",
        )
        assert status(mds, namespace, name)["desiredReplicas"] == 5
        assert events(api, namespace, name, "WithinBudget")
        strategy = deployment_spec(api, namespace, name).strategy.rolling_update
        assert (strategy.max_surge, strategy.max_unavailable) == (
            SURGE["maxSurge"],
            SURGE["maxUnavailable"],
        )


AUTOSCALED: dict[str, Any] = {
    **SPEC,
    "replicas": 1,
    "minReplicas": 1,
    "maxReplicas": 3,
    "autoscaling": {"intervalSeconds": 2, "scaleDownWindowSeconds": 20},
    "budget": {"maxHourly": 1.0},  # one L4 replica
}
BURST = LoadConfig(concurrency=160, duration=240, prompt_tokens=2000, output_tokens=100)


def test_max_hourly_caps_the_autoscaler_under_load(
    api: Any, namespace: str, mds: ModelDeployments, emulator: Path
) -> None:
    name = "qwen-autoscaled"  # BackgroundLoad drives test_autoscaling's deployment name
    with DeploymentWatch(api, namespace).running() as seen:
        mds.create(namespace, name, AUTOSCALED)
        price = per_replica(mds, namespace, name)
        assert math.floor(1.0 / price) == 1
        wait_for_engines(api, namespace, name, 1)
        with BackgroundLoad(api, namespace, BURST):
            condition = wait_until(
                lambda: limited(mds, namespace, name), 90, "the autoscaler held at the budget"
            )
            assert condition["message"].startswith(
                f"maxHourly 1.00 USD/h pays for 1 replica(s) at {price:.2f} USD/h each; "
            )
            wanted = int(condition["message"].rsplit("; ", 1)[1].split()[0])
            assert wanted >= 2, condition
            wait_until(lambda: events(api, namespace, name, "BudgetLimited"), 20, "an Event")
            time.sleep(10)  # five more intervals under load: the capped decision holds
            assert status(mds, namespace, name)["desiredReplicas"] == 1
            assert limited(mds, namespace, name) == condition  # not rewritten meanwhile
        assert seen.highest[name] == 1, seen.highest


def test_a_namespace_budget_is_shared_between_deployments(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    core: Any = client.CoreV1Api(api)

    def annotate(value: str) -> None:
        core.patch_namespace(
            namespace, {"metadata": {"annotations": {NAMESPACE_BUDGET_ANNOTATION: value}}}
        )

    def desired(name: str) -> int:
        return int(status(mds, namespace, name).get("desiredReplicas") or 0)

    with DeploymentWatch(api, namespace).running() as seen:
        annotate("3.0")  # four L4 replicas at 0.70 USD/h
        mds.create(namespace, "older", {**SPEC, "replicas": 3})
        price = per_replica(mds, namespace, "older")
        assert math.floor(3.0 / price) == 4
        wait_until(lambda: deployment_spec(api, namespace, "older").replicas == 3, 30, "older 3")
        mds.create(namespace, "newer", {**SPEC, "replicas": 3})

        # Minimums first (one replica each), then equal parts: 2 and 2 of 3 each.
        wait_until(lambda: (desired("older"), desired("newer")) == (2, 2), 60, "2 and 2")
        for name in ("older", "newer"):
            wait_until(lambda n=name: deployment_spec(api, namespace, n).replicas == 2, 20, name)
            condition = wait_until(lambda n=name: limited(mds, namespace, n), 20, "limited")
            assert condition["message"] == (
                f"namespace budget 3.00 USD/h shared in equal parts: 2 of 3 replica(s) at "
                f"{price:.2f} USD/h each"
            )
            assert events(api, namespace, name, "BudgetLimited")
        assert seen.highest_total <= 4, seen.highest  # the older shrank before the newer grew

        annotate("4.5")  # six replicas: both get all they need
        for name in ("older", "newer"):
            wait_until(lambda n=name: deployment_spec(api, namespace, n).replicas == 3, 30, name)
            wait_until(
                lambda n=name: (
                    mds.condition(namespace, n, "BudgetLimited").get("status") == "False"
                ),
                30,
                f"{name} within the raised budget",
            )
        assert seen.highest_total == 6

    annotate("20 USD")  # invalid: caps nothing, and the Namespace says why
    message = wait_until(
        lambda: events(api, "default", namespace, "InvalidBudget"), 30, "an InvalidBudget Event"
    )
    assert "must be a plain number of USD per hour" in message[0], message
    for name in ("older", "newer"):
        assert desired(name) == 3
