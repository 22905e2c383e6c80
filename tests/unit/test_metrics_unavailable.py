"""Condition MetricsUnavailable: ready pods whose scrapes fail past the grace period are named;
the scrape loop remembers since when each pod has not answered."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.api.types import Engine, ModelDeploymentStatus
from modelfleet.autoscale.policy import PodLoad
from modelfleet.handlers.scrapes import EnginePod, PodSample, Samples
from modelfleet.kube.scrape import EngineSample
from modelfleet.status.conditions import (
    Observed,
    announcements,
    compute_status,
    unanswered_pods,
)
from tests.unit.factories import deployment, model_deployment, placement

NOW = "2026-12-01T10:00:00Z"
GRACE = 30.0


def ready_pod(name: str, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": name},
        "status": {
            "phase": "Running",
            "podIP": "127.1.0.9",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


@pytest.mark.parametrize(
    ("since", "ready", "expected"),
    [
        ({"a": 50.0}, True, ("a",)),  # failing for 50 s > 30 s
        ({"a": 80.0}, True, ()),  # failing for 20 s: still in its grace period
        ({"a": None}, True, ()),  # answers
        ({}, True, ()),  # not tried yet
        ({"a": 50.0}, False, ()),  # not ready: nobody expects an answer
        ({"a": 50.0, "b": 10.0}, True, ("a", "b")),
    ],
)
def test_ready_pods_failing_past_the_grace_period_are_named(
    since: dict[str, float | None], ready: bool, expected: tuple[str, ...]
) -> None:
    pods = [ready_pod("b", ready), ready_pod("a", ready)]
    assert unanswered_pods(pods, since, now=100.0, grace=GRACE) == expected


def status(unanswered: tuple[str, ...], previous: ModelDeploymentStatus | None = None) -> Any:
    md = model_deployment(
        status=previous.model_dump(by_alias=True, exclude_none=True) if previous else None
    )
    observed = Observed(deployment(1, 1), unanswered=unanswered)
    return compute_status(md, observed, placement(), 1, NOW)


def test_the_condition_appears_when_pods_fail_and_clears_when_they_answer() -> None:
    quiet = status(())
    assert quiet.condition("MetricsUnavailable") is None  # never happened: no condition
    failing = status(("qwen-a",), quiet)
    condition = failing.condition("MetricsUnavailable")
    assert condition is not None and condition.status == "True"
    assert condition.reason == "ScrapesFailing" and "qwen-a" in condition.message
    assert status(("qwen-a",), failing) == failing  # unchanged: nothing to write
    back = status((), failing)
    cleared = back.condition("MetricsUnavailable")
    assert cleared is not None and (cleared.status, cleared.reason) == ("False", "MetricsAvailable")
    assert [(a.type, a.reason) for a in announcements(quiet, failing)] == [
        ("Warning", "MetricsUnavailable")
    ]
    assert [(a.type, a.reason) for a in announcements(failing, back)] == [
        ("Normal", "MetricsAvailable")
    ]
    assert announcements(back, back) == []


def test_many_pods_are_named_up_to_five() -> None:
    names = tuple(f"qwen-{i}" for i in range(7))
    condition = status(names).condition("MetricsUnavailable")
    assert condition is not None
    assert "7 ready pod(s)" in condition.message and "qwen-4 and 2 more" in condition.message


def _sample(at: float, answered: bool, uid: str = "u1") -> PodSample:
    pod = EnginePod("ns", "qwen-a", uid, "qwen", "127.1.0.9", Engine.VLLM)
    engine = EngineSample(PodLoad(0, 0, 0)) if answered else None
    return PodSample(pod, at, 5.0, engine, at)


def test_samples_remember_since_when_a_pod_has_not_answered() -> None:
    samples = Samples()

    def since() -> float | None:
        return samples.of_deployment("ns", "qwen")[0].unanswered_since

    samples.record(_sample(10.0, answered=False))
    samples.record(_sample(15.0, answered=False))
    assert since() == 10.0
    samples.record(_sample(20.0, answered=True))
    assert since() is None
    samples.record(_sample(25.0, answered=False))
    assert since() == 25.0
    samples.record(_sample(30.0, answered=False, uid="u2"))  # another pod of that name
    assert since() == 30.0
