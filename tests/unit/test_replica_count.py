"""Who owns the replica count: spec.replicas, the autoscaler's status, or a manual scale."""

from typing import Any

import pytest

from modelfleet.autoscale.count import ReplicaCount, replica_count
from modelfleet.render.children import deployment as rendered_deployment
from modelfleet.status.conditions import Observed, announcements, compute_status
from tests.unit.factories import deployment, model_deployment, placement

NOW = "2026-11-28T12:00:00Z"


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        pytest.param({"replicas": 3}, {}, ReplicaCount(3, None, False), id="no-autoscaling"),
        pytest.param(
            {"replicas": 3},
            {"desiredReplicas": 7, "seenSpecReplicas": 3},
            ReplicaCount(3, None, False),
            id="autoscaling-turned-off-spec-wins",
        ),
        pytest.param(
            {"replicas": 2, "maxReplicas": 5},
            {},
            ReplicaCount(2, 2, False),
            id="new-starts-from-spec",
        ),
        pytest.param(
            {"replicas": 9, "maxReplicas": 5},
            {},
            ReplicaCount(5, 9, False),
            id="new-clamped-to-max",
        ),
        pytest.param(
            {"replicas": 0, "minReplicas": 1, "maxReplicas": 5},
            {},
            ReplicaCount(1, 0, False),
            id="new-clamped-to-min",
        ),
        pytest.param(
            {"replicas": 2, "maxReplicas": 5},
            {"desiredReplicas": 4, "seenSpecReplicas": 2},
            ReplicaCount(4, 2, False),
            id="autoscaler-count-survives-reapplied-yaml",
        ),
        pytest.param(
            {"replicas": 3, "maxReplicas": 5},
            {"desiredReplicas": 4, "seenSpecReplicas": 2},
            ReplicaCount(3, 3, True),
            id="kubectl-scale-is-a-manual-scale",
        ),
        pytest.param(
            {"replicas": 50, "maxReplicas": 5},
            {"desiredReplicas": 4, "seenSpecReplicas": 2},
            ReplicaCount(5, 50, True),
            id="manual-scale-clamped",
        ),
        pytest.param(
            {"replicas": 2, "maxReplicas": 3},
            {"desiredReplicas": 6, "seenSpecReplicas": 2},
            ReplicaCount(3, 2, False),
            id="lowered-max-applies-at-once",
        ),
        pytest.param(
            {"replicas": 2, "minReplicas": 0, "maxReplicas": 3},
            {"desiredReplicas": 0, "seenSpecReplicas": 2},
            ReplicaCount(0, 2, False),
            id="scaled-to-zero-stays",
        ),
        pytest.param(
            {"replicas": 2, "maxReplicas": 3},
            {"desiredReplicas": 2},
            ReplicaCount(2, 2, False),
            id="autoscaling-turned-on",
        ),
    ],
)
def test_replica_count(
    spec: dict[str, Any], status: dict[str, Any], expected: ReplicaCount
) -> None:
    md = model_deployment(status=status, **spec)
    assert replica_count(md.spec, md.status) == expected


def test_deployment_and_status_follow_the_autoscaler_count() -> None:
    md = model_deployment(
        replicas=1, maxReplicas=8, status={"desiredReplicas": 5, "seenSpecReplicas": 1}
    )
    assert rendered_deployment(md, placement())["spec"]["replicas"] == 5
    status = compute_status(md, Observed(deployment(5, 5)), placement(), 1, NOW)
    assert status.desired_replicas == 5
    assert status.condition("Ready").reason == "AllReplicasReady"  # type: ignore[union-attr]
    assert not [a for a in announcements(md.status, status) if a.reason == "Scaled"]


def test_manual_scale_is_recorded_and_announced() -> None:
    md = model_deployment(
        replicas=3, maxReplicas=8, status={"desiredReplicas": 5, "seenSpecReplicas": 1}
    )
    status = compute_status(md, Observed(deployment(5, 5)), placement(), 1, NOW)
    assert (status.desired_replicas, status.seen_spec_replicas) == (3, 3)
    assert status.last_scale_time == NOW
    assert status.last_scale_reason == "spec.replicas changed: manual scale to 3"
    scaled = [a for a in announcements(md.status, status) if a.reason == "Scaled"]
    assert [(a.type, a.message) for a in scaled] == [("Normal", status.last_scale_reason)]
