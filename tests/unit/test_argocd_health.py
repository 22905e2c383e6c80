"""docs/argocd-health.lua (Lua 5.1, as Argo CD runs it) on ModelDeployments captured from the
operator on the local control plane (tests/fixtures/modeldeployments/, refreshed by
tests/integration/test_argocd_health.py), and the kstatus conventions those statuses follow."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.api.crd import crd
from modelfleet.api.types import ModelDeploymentStatus
from tests.argocd_health import health

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "modeldeployments"
EXPECTED = {
    "new-unreconciled": "Progressing",
    "creating": "Progressing",
    "ready": "Healthy",
    "edited-unobserved": "Progressing",
    "rolling-out": "Progressing",
    "budget-limited": "Healthy",
    "no-feasible-placement": "Degraded",
    "invalid-spec": "Degraded",
    "unschedulable": "Degraded",
}


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    return loaded


def test_every_captured_state_is_covered() -> None:
    assert {p.stem for p in FIXTURES.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_health_of_captured_objects(name: str, expected: str) -> None:
    status, message = health(fixture(name))
    assert status == expected, message
    assert message


def _with_condition(obj: dict[str, Any], type_: str, **fields: Any) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    for cond in changed["status"]["conditions"]:
        if cond["type"] == type_:
            cond.update(fields)
    return changed


def test_stale_conditions_are_progressing_not_healthy() -> None:
    ready = fixture("ready")
    ready["metadata"]["generation"] += 1
    ready["status"]["observedGeneration"] += 1  # status written, conditions still older
    status, message = health(ready)
    assert status == "Progressing" and "conditions of generation" in message


def test_scaled_to_zero_is_healthy_and_a_stuck_rollout_degraded() -> None:
    zero = _with_condition(fixture("ready"), "Ready", status="False", reason="ScaledToZero")
    assert health(zero)[0] == "Healthy"
    stuck = _with_condition(
        fixture("creating"), "Progressing", status="False", reason="RolloutStuck", message="x"
    )
    stuck = _with_condition(stuck, "Degraded", status="False", reason="AsExpected")
    assert health(stuck) == ("Degraded", "RolloutStuck: x")


def test_a_missing_ready_condition_is_progressing() -> None:
    obj = fixture("ready")
    obj["status"]["conditions"] = [c for c in obj["status"]["conditions"] if c["type"] != "Ready"]
    assert health(obj)[0] == "Progressing"


# kstatus (sigs.k8s.io/cli-utils/pkg/kstatus) conventions, on what the operator really wrote.
CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]*$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n != "new-unreconciled"))
def test_captured_statuses_follow_kstatus_conventions(name: str) -> None:
    obj = fixture(name)
    status = obj["status"]
    ModelDeploymentStatus.model_validate(status)  # the shape the CRD declares
    assert isinstance(status["observedGeneration"], int)
    assert status["observedGeneration"] <= obj["metadata"]["generation"]
    conditions = status["conditions"]
    types = [c["type"] for c in conditions]
    assert len(types) == len(set(types)), f"conditions is a list map keyed by type: {types}"
    assert {"Ready", "Progressing", "Degraded"} <= set(types)
    for cond in conditions:
        assert cond["status"] in ("True", "False", "Unknown"), cond
        assert CAMEL.match(cond["reason"]), cond
        assert RFC3339.match(cond["lastTransitionTime"]), cond
        assert cond["observedGeneration"] == status["observedGeneration"], cond
        assert isinstance(cond["message"], str)
    by_type = {c["type"]: c for c in conditions}
    # Abnormal-true polarity for Degraded, normal-true for Ready: never both True.
    assert not (by_type["Ready"]["status"] == "True" and by_type["Degraded"]["status"] == "True")


def test_the_crd_declares_status_as_kstatus_reads_it() -> None:
    version = crd()["spec"]["versions"][0]
    assert version["subresources"]["status"] == {}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["observedGeneration"]["type"] == "integer"
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert {"type", "status", "reason", "message", "lastTransitionTime"} <= set(
        conditions["items"]["properties"]
    )
