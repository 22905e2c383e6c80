"""status.autoscaling: which rule held the count away from the load's recommendation (decide's
recommendation and held_by), and a block that changes only when those do."""

from __future__ import annotations

import pytest

from modelfleet.api.types import AutoscalingStatus
from modelfleet.autoscale.policy import AutoscalerState, Decision, Limits, PodLoad
from modelfleet.status.autoscaling import autoscaling_status
from tests.unit.test_autoscale_policy import INTERVAL, OLD, once, pod, spread, steady

LOW = steady(3, 3, since=0.0, until=1000.0)  # has watched 3 replicas wanted for long
SHRINKING = steady(6, 1, since=0.0, until=1000.0)  # has watched 1 wanted for long
AFTER = 1000.0 + INTERVAL


@pytest.mark.parametrize(
    ("pods", "current", "limits", "unknown", "starting", "state", "expected"),
    [
        pytest.param(spread(40, 2), 2, Limits(1, 10), 0, 0, None, (2, 2, None), id="as-asked"),
        pytest.param(
            spread(464, 2), 2, Limits(1, 10), 0, 0, None, (18, 6, "MaxScaleUpStep"), id="step"
        ),
        pytest.param(spread(464, 2), 2, Limits(1, 5), 0, 0, None, (18, 5, "MaxReplicas"), id="max"),
        pytest.param(spread(0, 3), 3, Limits(4, 8), 0, 0, OLD, (0, 4, "MinReplicas"), id="min"),
        pytest.param(
            spread(10, 6), 6, Limits(1, 10), 0, 0, None, (1, 6, "ObservingSinceStart"), id="new"
        ),
        pytest.param(
            spread(10, 3), 3, Limits(1, 10), 0, 0, LOW, (1, 3, "ScaleDownWindow"), id="window"
        ),
        # Watched less than a window, but the window's highest is the count: the window holds.
        pytest.param(
            spread(10, 3),
            3,
            Limits(1, 10),
            0,
            0,
            steady(3, 3, since=900.0, until=1000.0),
            (1, 3, "ScaleDownWindow"),
            id="young-window",
        ),
        pytest.param(
            spread(10, 6), 6, Limits(1, 10), 0, 0, SHRINKING, (1, 5, "MaxScaleDownStep"), id="down"
        ),
        pytest.param(
            spread(0, 1), 3, Limits(1, 10), 2, 0, OLD, (2, 3, "MissingData"), id="missing"
        ),
        pytest.param(
            (pod(waiting=8, running=0, kv=0.0), pod(running=10), pod(running=10)),
            3,
            Limits(1, 10),
            0,
            0,
            steady(3, 1, 0, 1000.0),
            (2, 3, "QueueAboveTarget"),
            id="queue",
        ),
    ],
)
def test_the_rule_that_held_the_count_is_named(
    pods: tuple[PodLoad, ...],
    current: int,
    limits: Limits,
    unknown: int,
    starting: int,
    state: AutoscalerState | None,
    expected: tuple[int, int, str | None],
) -> None:
    time = 0.0 if state is None else AFTER
    decision = once(
        pods, current, limits=limits, unknown=unknown, starting=starting, state=state, time=time
    )
    assert (decision.recommendation, decision.replicas, decision.held_by) == expected, (
        decision.reason
    )


def test_loading_replicas_hold_a_saturated_queue() -> None:
    state = once(spread(200, 2), 2).state
    decision = once(spread(220, 2), 6, starting=4, state=state, time=INTERVAL)
    assert decision.replicas == 6
    assert decision.held_by == "LoadingReplicas"
    assert decision.recommendation is not None and decision.recommendation > 6


def test_the_block_changes_only_with_the_recommendation_the_count_or_the_rule() -> None:
    state = AutoscalerState.fresh(0.0)
    first = Decision(3, False, "kv 0.80/replica: hold 3", state, 2, "ScaleDownWindow")
    block = autoscaling_status(None, first, "2026-12-01T10:00:00Z")
    assert block == AutoscalingStatus(
        recommendation=2,
        replicas=3,
        held_by="ScaleDownWindow",
        message="kv 0.80/replica: hold 3",
        since="2026-12-01T10:00:00Z",
    )
    # Other numbers, same verdict: the block as written (no status write).
    same = Decision(3, False, "kv 0.78/replica: hold 3", state, 2, "ScaleDownWindow")
    assert autoscaling_status(block, same, "2026-12-01T10:00:10Z") is block
    moved = Decision(3, False, "kv 0.9/replica: hold 3", state, 3, None)
    after = autoscaling_status(block, moved, "2026-12-01T10:00:20Z")
    assert (after.recommendation, after.held_by, after.since) == (3, None, "2026-12-01T10:00:20Z")
    # A decision from before recommendations were reported: its count stands for it.
    assert autoscaling_status(None, Decision(2, True, "r", state), "t").recommendation == 2
