"""The Argo CD health check (docs/argocd-health.lua) on live ModelDeployments: each state made
for real by the operator on the local control plane, read back from the API server and handed to
the Lua. With MODELFLEET_CAPTURE_FIXTURES=1 the objects are also written to
tests/fixtures/modeldeployments/, which the unit tests (test_argocd_health.py, kstatus shapes)
read; `pytest tests/integration/test_argocd_health.py` with it set refreshes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argocd_health import health
from tests.integration.operator_fixtures import ModelDeployments, wait_until

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "modeldeployments"
SPEC = {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": "NVIDIA-L4", "count": 1}}


def capture(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as Argo CD sees it (server-set metadata dropped); written when capturing."""
    meta = obj["metadata"]
    kept = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": meta["name"], "generation": meta["generation"]},
        "spec": obj["spec"],
        **({"status": obj["status"]} if "status" in obj else {}),
    }
    if os.environ.get("MODELFLEET_CAPTURE_FIXTURES") == "1":
        FIXTURES.mkdir(parents=True, exist_ok=True)
        (FIXTURES / f"{name}.yaml").write_text(yaml.safe_dump(kept, sort_keys=False))
    return kept


def ready_reason(obj: dict[str, Any]) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready":
            return str(cond["reason"])
    return ""


def done(obj: dict[str, Any]) -> bool:
    """Every replica ready and the rollout complete."""
    conditions = {c["type"]: c for c in obj["status"]["conditions"]}
    return (
        conditions["Ready"]["reason"] == "AllReplicasReady"
        and conditions["Progressing"]["status"] == "False"
    )


def settled(
    mds: ModelDeployments, namespace: str, name: str, test: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The object once its status, for its current generation, passes `test`."""

    def current() -> dict[str, Any] | None:
        obj = mds.get(namespace, name)
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        return obj if test(obj) else None

    found: dict[str, Any] = wait_until(current, 60, f"{name} to settle")
    return found


def test_health_follows_a_deployment_through_its_life(
    mds: ModelDeployments, namespace: str
) -> None:
    """Created (Progressing), ready (Healthy), edited (Progressing before the operator sees it,
    then while it rolls out), ready again (Healthy)."""
    created = mds.create(namespace, "qwen", SPEC)
    assert health(capture("new-unreconciled", created))[0] == "Progressing"
    loading = settled(mds, namespace, "qwen", lambda o: ready_reason(o) != "AllReplicasReady")
    status, message = health(capture("creating", loading))
    assert status == "Progressing", message

    ready = settled(mds, namespace, "qwen", done)
    status, message = health(capture("ready", ready))
    assert (status, message) == ("Healthy", "AllReplicasReady: 1/1 replicas ready")

    edited: dict[str, Any] = mds.custom.patch_namespaced_custom_object(
        "modelfleet.dev",
        "v1alpha1",
        namespace,
        "modeldeployments",
        "qwen",
        {"spec": {"extraArgs": ["--enable-prefix-caching"]}},
    )
    # The patch's answer: the new generation, the status of the old one.
    assert edited["status"]["observedGeneration"] < edited["metadata"]["generation"]
    status, message = health(capture("edited-unobserved", edited))
    assert status == "Progressing" and "generation 2" in message, message

    def rolling(obj: dict[str, Any]) -> bool:
        conditions = {c["type"]: c for c in obj["status"]["conditions"]}
        return conditions["Progressing"]["status"] == "True"

    rollout = settled(mds, namespace, "qwen", rolling)
    status, message = health(capture("rolling-out", rollout))
    # Ready=True from the old replica does not make a rollout Healthy.
    assert status == "Progressing" and message.startswith("RollingOut"), message
    again = settled(mds, namespace, "qwen", done)
    assert health(again)[0] == "Healthy"


@pytest.mark.parametrize(
    ("case", "spec", "reason", "expected"),
    [
        # No NVIDIA-A10G nodes on the local cluster.
        (
            "no-feasible-placement",
            {**SPEC, "gpu": {"product": "NVIDIA-A10G", "count": 1}},
            "NoFeasiblePlacement",
            "Degraded",
        ),
        # A label key the schema cannot check (a CEL rule cannot bound map keys): the operator
        # refuses it.
        (
            "invalid-spec",
            {**SPEC, "nodeSelector": {"not a label key!": "x"}},
            "InvalidSpec",
            "Degraded",
        ),
        # Two L4 nodes of 4 GPUs: a third 4-GPU replica has nowhere to go.
        (
            "unschedulable",
            {**SPEC, "gpu": {"product": "NVIDIA-L4", "count": 4}, "replicas": 3},
            "Unschedulable",
            "Degraded",
        ),
        # 1 USD/h pays for one L4 replica of the three asked for: held back on purpose, healthy.
        (
            "budget-limited",
            {**SPEC, "replicas": 3, "budget": {"maxHourly": 1.0}},
            "AllReplicasReady",
            "Healthy",
        ),
    ],
)
def test_health_of_settled_states(
    mds: ModelDeployments,
    namespace: str,
    case: str,
    spec: dict[str, Any],
    reason: str,
    expected: str,
) -> None:
    mds.create(namespace, case, spec)
    obj = settled(mds, namespace, case, lambda o: ready_reason(o) == reason)
    status, message = health(capture(case, obj))
    assert status == expected, message
    if expected == "Degraded":
        assert message.startswith(reason), message
    if case == "budget-limited":
        assert "BudgetLimited" in message, message
