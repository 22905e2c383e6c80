"""Spend with a watermark: partial hours, restarts, price changes, pods seen only by timestamps."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelfleet.cost.spend import (
    PodInterval,
    Spend,
    accrue,
    kube_time,
    pod_interval,
    window_cost,
    window_gpu_hours,
)
from modelfleet.cost.throttle import should_write

T0 = kube_time("2026-11-28T12:00:00Z")
MIN = 60.0
HOUR = 3600.0


def at(minutes: float) -> float:
    return T0 + minutes * MIN


def pod(
    uid: str, start: float, end: float | None = None, gpus: int = 1, price: float = 2.0
) -> PodInterval:
    return PodInterval(uid, gpus, price, at(start), None if end is None else at(end))


@pytest.mark.parametrize(
    ("intervals", "previous", "now", "expected_usd"),
    [
        pytest.param([pod("a", 0)], None, 30, 1.0, id="partial-hour-no-rounding-up"),
        pytest.param([pod("a", 0, gpus=4)], None, 90, 12.0, id="four-gpus-hour-and-a-half"),
        pytest.param([pod("a", 0)], Spend(at(30), 1.0), 60, 2.0, id="continues-at-watermark"),
        pytest.param(
            [pod("a", 0, 20), pod("b", 25)],
            None,
            60,
            2 * (20 + 35) / 60,
            id="pod-restarted-mid-hour-gap-not-counted",
        ),
        pytest.param(
            [pod("a", 0, 20, price=1.0), pod("b", 20, price=3.0)],
            None,
            60,
            1.0 * 20 / 60 + 3.0 * 40 / 60,
            id="price-change-between-intervals",
        ),
        pytest.param(
            [pod("a", 0), pod("down", 12, 40, gpus=2)],
            Spend(at(10), 5.0),
            60,
            5.0 + 2.0 * 50 / 60 + 2 * 2.0 * 28 / 60,
            id="pod-created-and-deleted-while-operator-down",
        ),
        pytest.param(
            [pod("old", 0, 10), pod("a", 0)],
            Spend(at(10), 0.5),
            40,
            0.5 + 1.0,
            id="pod-ended-before-watermark-counts-nothing-more",
        ),
        pytest.param(
            [pod("term", 0, 90)],
            Spend(at(30), 1.0),
            60,
            2.0,
            id="terminating-pod-counted-up-to-now",
        ),
        pytest.param(
            [pod("a", 0), pod("a", 0, 45)], None, 60, 1.5, id="same-pod-twice-counted-once"
        ),
        pytest.param([pod("future", 70)], None, 60, 0.0, id="starts-after-now"),
        pytest.param([], Spend(at(30), 7.0), 60, 7.0, id="no-pods-keeps-the-amount"),
    ],
)
def test_accrue(
    intervals: list[PodInterval], previous: Spend | None, now: float, expected_usd: float
) -> None:
    spend = accrue(intervals, previous, at(now))
    assert spend.usd == pytest.approx(expected_usd)
    assert spend.until == at(now)


def test_a_clock_behind_the_watermark_adds_nothing_and_keeps_it() -> None:
    previous = Spend(at(30), 1.0)
    assert accrue([pod("a", 0)], previous, at(29)) == previous
    assert accrue([pod("a", 0)], previous, at(30)) == previous


def test_window_cost_and_gpu_hours() -> None:
    intervals = [pod("a", 0, gpus=2), pod("b", 50, 70, price=6.0)]
    assert window_cost(intervals, at(0), at(60)) == pytest.approx(2 * 2.0 + 6.0 * 10 / 60)
    assert window_gpu_hours(intervals, at(0), at(60)) == pytest.approx(2 + 10 / 60)


def test_a_crash_loses_only_pods_gone_before_the_next_accrual_and_never_double_counts() -> None:
    """The operator accrues every 30 s in memory and writes by the throttle; it dies at 12:20
    and a new leader starts at 12:35. Truth is the wall-clock GPU time of every pod."""
    pods = [
        pod("steady", 0, gpus=2),
        pod("gone-while-up", 3, 9),  # deleted while the operator watched: seen, counted
        pod("straddles-crash", 5, 28),  # deleted while down, gone: the part after the last write
        pod("born-while-down", 22, 30),  # created and deleted while down: gone before restart
        pod("terminating", 10, 36),  # deleted while down, still terminating at restart: counted
        pod("after", 36),
    ]

    def visible(now: float) -> list[PodInterval]:
        """What the API shows: pods not yet gone (the deletionTimestamp is their end)."""
        return [p for p in pods if p.end is None or p.end > now]

    def operate(
        start: float, stop: float, written: Spend | None
    ) -> tuple[Spend | None, Spend | None]:
        """One operator's life: accrue every 30 s (remembering pods seen until they end), write
        when the throttle says; returns what it last wrote and what it had in memory."""
        memory, seen = written, dict[str, PodInterval]()
        written_fields = None if written is None else {"spend": written.usd}
        written_at = None if written is None else written.until
        for step in range(int(start * 2), int(stop * 2) + 1):
            now = at(step / 2)
            seen.update({p.uid: p for p in visible(now)})
            memory = accrue(seen.values(), memory, now)
            seen = {uid: p for uid, p in seen.items() if p.end is None or p.end > now}
            fields: dict[str, float | None] = {"spend": memory.usd}
            if should_write(written_fields, fields, written_at, now):
                written, written_fields, written_at = memory, fields, now
        return written, memory

    written, _ = operate(0, 20, None)  # dies at 12:20: its memory is lost
    assert written is not None and written.until <= at(20)
    restart = at(35)
    _, recovered = operate(35, 60, written)
    assert recovered is not None
    truth = window_cost(pods, at(0), at(60))
    lost = truth - recovered.usd
    assert lost > 0  # the pods gone while it was down, after its last write
    # exactly the GPU time after the last written watermark of pods gone before the restart
    gone = [p for p in pods if p.end is not None and p.end <= restart]
    assert lost == pytest.approx(window_cost(gone, written.until, restart))
    # the documented bound: (write period + downtime) x those pods' GPUs x price
    bound = sum(p.gpus * p.usd_per_gpu_hour for p in gone) * (restart - written.until) / HOUR
    assert lost <= bound + 1e-9


def kube_pod(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"uid": "u1", "creationTimestamp": "2026-11-28T12:00:00Z"},
        "spec": {
            "nodeName": "gpu-1",
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}],
        },
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": "2026-11-28T12:01:00Z",
                }
            ]
        },
    }
    for key, value in overrides.items():
        body[key] = {**body[key], **value}
    return body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(kube_pod(), PodInterval("u1", 2, 1.5, at(1)), id="from-scheduled-time"),
        pytest.param(
            kube_pod(status={"conditions": []}),
            PodInterval("u1", 2, 1.5, at(0)),
            id="creation-without-condition",
        ),
        pytest.param(
            kube_pod(metadata={"deletionTimestamp": "2026-11-28T12:30:30Z"}),
            PodInterval("u1", 2, 1.5, at(1), at(30.5)),
            id="deleted-ends-at-deletion-timestamp",
        ),
        pytest.param(kube_pod(spec={"nodeName": None}), None, id="pending-holds-no-gpu"),
        pytest.param(kube_pod(spec={"containers": [{}]}), None, id="no-gpus"),
    ],
)
def test_pod_interval(body: dict[str, Any], expected: PodInterval | None) -> None:
    assert pod_interval(body, 1.5) == expected


intervals = st.lists(
    st.builds(
        PodInterval,
        uid=st.uuids().map(str),
        gpus=st.integers(1, 8),
        usd_per_gpu_hour=st.floats(0, 50),
        start=st.floats(0, 20_000),
        end=st.one_of(st.none(), st.floats(0, 30_000)),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None, database=None)
@given(intervals, st.lists(st.floats(0, 40_000), min_size=1, max_size=6))
def test_spend_is_additive_over_split_accruals(pods: list[PodInterval], times: list[float]) -> None:
    """Accruing at any number of intermediate times gives the spend of one accrual."""
    stepwise: Spend | None = None
    for now in sorted(times):
        stepwise = accrue(pods, stepwise, now)
    assert stepwise is not None
    once = accrue(pods, None, max(times))
    assert stepwise.usd == pytest.approx(once.usd, rel=1e-9, abs=1e-9)
    assert stepwise.until == once.until


@settings(max_examples=200, deadline=None, database=None)
@given(intervals, st.floats(0, 40_000), st.floats(0, 40_000))
def test_spend_is_additive_over_pods(pods: list[PodInterval], since: float, now: float) -> None:
    """Any split of the pods into two sets: the parts add up to the whole."""
    previous = Spend(since, 0.0)
    half = len(pods) // 2
    whole = accrue(pods, previous, now).usd
    parts = accrue(pods[:half], previous, now).usd + accrue(pods[half:], previous, now).usd
    assert whole == pytest.approx(parts, rel=1e-9, abs=1e-9)
    assert whole >= 0
