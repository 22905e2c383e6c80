"""Status and conditions computed from observed children."""

from typing import Any

import pytest

from modelfleet.api.types import ModelDeploymentStatus
from modelfleet.status.conditions import (
    Observed,
    announcements,
    compute_status,
    invalid_spec_status,
)
from tests.unit.factories import deployment, model_deployment, node, placement, pod

NOW = "2026-11-28T12:00:00Z"
LATER = "2026-11-28T12:05:00Z"
INSUFFICIENT = "0/7 nodes are available: 2 Insufficient nvidia.com/gpu."


def verdicts(status: ModelDeploymentStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


@pytest.mark.parametrize(
    ("replicas", "observed", "expected"),
    [
        pytest.param(
            1,
            Observed(deployment=None),
            {
                "Ready": ("False", "Creating"),
                "Progressing": ("True", "RollingOut"),
                "Degraded": ("False", "AsExpected"),
            },
            id="nothing-yet",
        ),
        pytest.param(
            2,
            Observed(deployment(2, 2)),
            {
                "Ready": ("True", "AllReplicasReady"),
                "Progressing": ("False", "Complete"),
                "Degraded": ("False", "AsExpected"),
            },
            id="all-ready",
        ),
        pytest.param(
            2,
            Observed(deployment(2, 0), [pod(), pod()]),
            {
                "Ready": ("False", "ModelLoading"),
                "Progressing": ("True", "ModelLoading"),
                "Degraded": ("False", "AsExpected"),
            },
            id="loading",
        ),
        pytest.param(
            2,
            Observed(deployment(2, 0), [pod("Pending"), pod("Pending")]),
            {
                "Ready": ("False", "ReplicasNotReady"),
                "Progressing": ("True", "ModelLoading"),
                "Degraded": ("False", "AsExpected"),
            },
            id="pods-starting",
        ),
        pytest.param(
            3,
            Observed(deployment(1, 1)),
            {
                "Ready": ("False", "ReplicasNotReady"),
                "Progressing": ("True", "ScalingUp"),
                "Degraded": ("False", "AsExpected"),
            },
            id="scaling-up",
        ),
        pytest.param(
            1,
            Observed(deployment(3, 3)),
            {
                "Ready": ("True", "AllReplicasReady"),
                "Progressing": ("True", "ScalingDown"),
                "Degraded": ("False", "AsExpected"),
            },
            id="scaling-down",
        ),
        pytest.param(
            1,
            Observed(deployment(2, 1, updated=1, generation=2, observed_generation=2)),
            {
                "Ready": ("True", "AllReplicasReady"),
                "Progressing": ("True", "RollingOut"),
                "Degraded": ("False", "AsExpected"),
            },
            id="rolling-out",
        ),
        pytest.param(
            1,
            Observed(deployment(1, 1, generation=3, observed_generation=2)),
            {
                "Ready": ("True", "AllReplicasReady"),
                "Progressing": ("True", "RollingOut"),
                "Degraded": ("False", "AsExpected"),
            },
            id="deployment-not-caught-up",
        ),
        pytest.param(
            1,
            Observed(
                deployment(1, 0),
                [pod("Pending", unschedulable=INSUFFICIENT)],
                [node("NVIDIA-L4", 4)],
            ),
            {
                "Ready": ("False", "Unschedulable"),
                "Progressing": ("True", "WaitingForGPUs"),
                "Degraded": ("True", "Unschedulable"),
            },
            id="unschedulable",
        ),
        pytest.param(
            1,
            Observed(deployment(1, 0), [pod(waiting="CrashLoopBackOff")]),
            {
                "Ready": ("False", "EngineFailing"),
                "Progressing": ("True", "ModelLoading"),
                "Degraded": ("True", "EngineFailing"),
            },
            id="crashing",
        ),
        pytest.param(
            1,
            Observed(
                deployment(
                    1,
                    0,
                    conditions=[
                        {
                            "type": "Progressing",
                            "status": "False",
                            "reason": "ProgressDeadlineExceeded",
                            "message": "ReplicaSet has timed out progressing.",
                        }
                    ],
                )
            ),
            {
                "Ready": ("False", "ReplicasNotReady"),
                "Progressing": ("False", "RolloutStuck"),
                "Degraded": ("True", "RolloutStuck"),
            },
            id="deadline-exceeded",
        ),
        pytest.param(
            0,
            Observed(deployment(0, 0)),
            {
                "Ready": ("False", "ScaledToZero"),
                "Progressing": ("False", "Complete"),
                "Degraded": ("False", "AsExpected"),
            },
            id="scaled-to-zero",
        ),
    ],
)
def test_conditions(
    replicas: int, observed: Observed, expected: dict[str, tuple[str, str]]
) -> None:
    status = compute_status(model_deployment(replicas=replicas), observed, placement(), 1, NOW)
    assert verdicts(status) == expected


def test_counts_endpoint_selector_and_generation() -> None:
    md = model_deployment(generation=4, replicas=2)
    status = compute_status(md, Observed(deployment(2, 1)), placement(), 4, NOW)
    assert (status.replicas, status.ready_replicas) == (2, 1)
    assert status.placement == placement()
    assert status.observed_generation == 4
    assert all(c.observed_generation == 4 for c in status.conditions)
    assert status.endpoint == "http://qwen.team-a.svc.cluster.local:8000/v1"
    assert status.selector == "modelfleet.dev/deployment=qwen"


def unschedulable_message(count: int, nodes: list[dict[str, Any]]) -> str:
    observed = Observed(deployment(1, 0), [pod("Pending", unschedulable=INSUFFICIENT)], nodes)
    where = placement("NVIDIA-L4", count)
    ready = compute_status(model_deployment(), observed, where, 1, NOW).condition("Degraded")
    assert ready is not None
    return ready.message


@pytest.mark.parametrize(
    ("count", "nodes", "expected"),
    [
        (
            1,
            [node("NVIDIA-H100-80GB-HBM3", 8), node(None)],
            "no node has GPU product NVIDIA-L4 (GPU products in the cluster: "
            "NVIDIA-H100-80GB-HBM3)",
        ),
        (
            8,
            [node("NVIDIA-L4", 4)],
            "a replica needs 8 GPUs on one node, but NVIDIA-L4 nodes have at most 4",
        ),
        (2, [node("NVIDIA-L4", 4)], "no NVIDIA-L4 node has 2 free GPUs"),
    ],
)
def test_unschedulable_is_explained_in_plain_words(
    count: int, nodes: list[dict[str, Any]], expected: str
) -> None:
    message = unschedulable_message(count, nodes)
    assert expected in message
    assert f"(scheduler: {INSUFFICIENT})" in message


def test_unchanged_state_keeps_transition_times() -> None:
    first = compute_status(model_deployment(), Observed(deployment(1, 1)), placement(), 1, NOW)
    md = model_deployment(status=first.model_dump(by_alias=True, exclude_none=True))
    again = compute_status(md, Observed(deployment(1, 1)), placement(), 1, LATER)
    assert again == first


def test_transition_time_moves_only_for_changed_conditions() -> None:
    first = compute_status(
        model_deployment(), Observed(deployment(1, 0), [pod()]), placement(), 1, NOW
    )
    md = model_deployment(status=first.model_dump(by_alias=True, exclude_none=True))
    after = compute_status(md, Observed(deployment(1, 1)), placement(), 1, LATER)
    times = {c.type: c.last_transition_time for c in after.conditions}
    assert times == {"Ready": LATER, "Progressing": LATER, "Degraded": NOW}


def test_invalid_spec_keeps_counts_and_marks_degraded() -> None:
    previous = ModelDeploymentStatus(replicas=2, ready_replicas=2)
    status = invalid_spec_status(5, previous, "spec.gpu.count: too many", NOW)
    assert (status.replicas, status.ready_replicas, status.observed_generation) == (2, 2, 5)
    assert verdicts(status) == {
        "Ready": ("False", "InvalidSpec"),
        "Progressing": ("False", "InvalidSpec"),
        "Degraded": ("True", "InvalidSpec"),
    }


def test_announcements_on_becoming_ready_and_going_wrong() -> None:
    loading = compute_status(
        model_deployment(), Observed(deployment(1, 0), [pod()]), placement(), 1, NOW
    )
    ready = compute_status(model_deployment(), Observed(deployment(1, 1)), placement(), 1, NOW)
    stuck = compute_status(
        model_deployment(),
        Observed(deployment(1, 0), [pod("Pending", unschedulable=INSUFFICIENT)], [node(None)]),
        placement(),
        1,
        NOW,
    )
    assert [a.reason for a in announcements(loading, ready)] == ["AllReplicasReady"]
    assert [(a.type, a.reason) for a in announcements(ready, stuck)] == [
        ("Warning", "Unschedulable")
    ]
    assert announcements(ready, ready) == []
    assert announcements(ModelDeploymentStatus(), loading) == []
