"""Leader election rules (issue 9, item 4), on an in-memory Lease store and a fake clock.

The integration test (tests/integration/test_faults.py) runs two real operators; these tables
pin the three rules that broke before: errors never end the loop, the leader steps down at the
renew deadline, expiry is timed by the candidate's own clock.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from modelfleet.kube.lease import LeaderElector, LeaseTiming, Sighting, may_take, sight

TIMING = LeaseTiming()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Wrapped:
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)


class _ApiError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status, self.reason, self.body, self.headers = status, "", "", {}


class LeaseStore:
    """One Lease with resourceVersion compare-and-swap; `down` makes every call fail."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionRefusedError("connection refused")

    def get(self, **_: Any) -> _Wrapped:
        self._check()
        if self.lease is None:
            raise NotFoundError(_ApiError(404))
        return _Wrapped(self.lease)

    def create(self, body: dict[str, Any], **_: Any) -> _Wrapped:
        self._check()
        if self.lease is not None:
            raise ConflictError(_ApiError(409))
        return self._store(body)

    def replace(self, body: dict[str, Any], **_: Any) -> _Wrapped:
        self._check()
        current = self.lease and self.lease["metadata"]["resourceVersion"]
        if body["metadata"].get("resourceVersion") != current:
            raise ConflictError(_ApiError(409))
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> _Wrapped:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return _Wrapped(self.lease)

    @property
    def holder(self) -> str | None:
        return None if self.lease is None else self.lease["spec"].get("holderIdentity")


class FakeKube:
    def __init__(self, store: LeaseStore) -> None:
        self.store = store

    def resource(self, api_version: str, kind: str) -> LeaseStore:
        assert (api_version, kind) == ("coordination.k8s.io/v1", "Lease")
        return self.store


def elector(store: LeaseStore, clock: FakeClock, identity: str) -> LeaderElector:
    return LeaderElector(FakeKube(store), "ns", "lease", identity, clock=clock)  # type: ignore[arg-type]


def test_the_first_candidate_takes_a_missing_lease_and_renews_it() -> None:
    store, clock = LeaseStore(), FakeClock()
    a = elector(store, clock, "a")
    a.campaign_once()
    assert a.held and store.holder == "a"
    clock.now += TIMING.retry_seconds
    a.campaign_once()
    assert a.held and store.lease is not None and store.lease["spec"]["leaseTransitions"] == 0


def test_a_standby_waits_a_whole_lease_by_its_own_clock_then_takes_over() -> None:
    store, clock = LeaseStore(), FakeClock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.campaign_once()
    b.campaign_once()
    assert not b.held and b.holder == "a"
    # The leader dies. Its renewTime may be far in the future by the standby's wall clock (skew):
    # only the standby's own observation of an unchanged record counts.
    assert store.lease is not None
    store.lease["spec"]["renewTime"] = "2999-01-01T00:00:00.000000Z"
    clock.now += 1
    b.campaign_once()  # a changed record restarts the standby's clock
    clock.now += TIMING.lease_seconds - 0.5
    b.campaign_once()
    assert not b.held, "took over before the lease duration passed"
    clock.now += 1
    b.campaign_once()
    assert b.held and store.holder == "b"
    assert store.lease["spec"]["leaseTransitions"] == 1


def test_the_leader_steps_down_at_the_renew_deadline_before_anyone_may_take_over() -> None:
    store, clock = LeaseStore(), FakeClock()
    lost: list[str] = []
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a._on_lost = lambda: lost.append("a")
    a.campaign_once()
    b.campaign_once()
    store.down = True  # the API server goes away for everyone
    stepped_down_at = None
    took_over_at = None
    for _ in range(30):
        clock.now += 1
        if clock.now >= 1000 + TIMING.lease_seconds:
            store.down = False
        if stepped_down_at is None:
            a.campaign_once()
            if not a.held:
                stepped_down_at = clock.now
        b.campaign_once()
        if took_over_at is None and b.held:
            took_over_at = clock.now
    assert lost == ["a"]
    assert stepped_down_at is not None and took_over_at is not None
    assert stepped_down_at - 1000 <= TIMING.renew_deadline_seconds
    assert took_over_at > stepped_down_at, "two leaders at once"


def test_errors_of_any_kind_are_one_failed_round_and_the_loop_goes_on() -> None:
    store, clock = LeaseStore(), FakeClock()
    a = elector(store, clock, "a")
    a.campaign_once()
    store.down = True
    for _ in range(3):
        clock.now += TIMING.retry_seconds
        a.campaign_once()  # raises nothing
    assert a.held  # 6 s without renewal is within the 10 s deadline
    store.down = False
    clock.now += TIMING.retry_seconds
    a.campaign_once()
    assert a.held and store.holder == "a"


def test_a_released_lease_is_taken_at_once() -> None:
    store, clock = LeaseStore(), FakeClock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.campaign_once()
    b.campaign_once()
    a._thread.start = lambda: None  # type: ignore[method-assign]
    a.stop()
    assert store.holder is None
    b.campaign_once()
    assert b.held


@pytest.mark.parametrize(
    ("holder", "seen_for", "expected"),
    [
        (None, 0, True),
        ("", 0, True),
        ("me", 0, True),
        ("other", 0, False),
        ("other", 14.9, False),
        ("other", 15, True),
    ],
)
def test_may_take(holder: str | None, seen_for: float, expected: bool) -> None:
    sighting = sight(None, {"holderIdentity": holder, "leaseDurationSeconds": 15}, now=0)
    assert may_take(sighting, "me", seen_for, TIMING) is expected


def test_an_unchanged_record_keeps_its_first_sighting() -> None:
    spec = {"holderIdentity": "x", "renewTime": "t1"}
    first = sight(None, spec, now=1)
    assert sight(first, dict(spec), now=5) is first
    assert sight(first, {**spec, "renewTime": "t2"}, now=5) == Sighting(
        ("x", "t2", None, None, None), 5
    )


def test_timing_must_leave_a_margin() -> None:
    with pytest.raises(ValueError):
        LeaseTiming(lease_seconds=10, renew_deadline_seconds=10)
