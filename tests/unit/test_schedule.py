"""Due times of periodic work (resyncs, autoscaler intervals) without kopf timers or daemons."""

from __future__ import annotations

from modelfleet.handlers.schedule import Schedule

A, B = ("ns", "a"), ("ns", "b")


def schedule() -> Schedule:
    return Schedule(resync_seconds=30, jitter=lambda: 0.5)


def test_first_resyncs_are_spread_and_autoscaling_starts_within_an_interval() -> None:
    s = schedule()
    s.observe(A, None, now=100)
    assert s.due(now=114, limit=10) == []
    assert s.due(now=115, limit=10) == [(A, "resync")]
    s2 = schedule()
    s2.observe(B, 5.0, now=100)
    assert s2.due(now=102.5, limit=10) == [(B, "autoscale")]


def test_work_is_never_started_twice_and_the_next_is_an_interval_after_the_start() -> None:
    s = schedule()
    s.observe(A, 5.0, now=0)
    assert (A, "autoscale") in s.due(now=3, limit=10)
    assert s.due(now=9, limit=10) == []  # still running: not started again
    s.done(A, "autoscale", started=3, interval=5)
    assert s.entries[A].autoscale_due == 8
    assert (A, "autoscale") in s.due(now=8, limit=10)


def test_the_limit_starts_the_most_overdue_first() -> None:
    s = Schedule(resync_seconds=30, jitter=lambda: 0.0)
    for index in range(5):
        s.observe(("ns", str(index)), None, now=float(index))
    assert s.due(now=100, limit=2) == [(("ns", "0"), "resync"), (("ns", "1"), "resync")]
    assert s.due(now=100, limit=0) == []


def test_turning_autoscaling_off_and_deleting_forget_its_state() -> None:
    s = schedule()
    s.observe(A, 5.0, now=0)
    s.entries[A].state = object()  # type: ignore[assignment]
    s.observe(A, None, now=1)
    assert s.entries[A].autoscale_due is None and s.entries[A].state is None
    s.forget(A)
    s.done(A, "resync", started=2)  # work that ends after the delete is dropped quietly
    assert len(s) == 0


def test_a_resync_keeps_its_period_whatever_the_autoscaler_does() -> None:
    s = schedule()
    s.observe(A, 5.0, now=0)
    s.due(now=15, limit=10)
    s.done(A, "resync", started=15)
    s.done(A, "autoscale", started=15, interval=5)
    assert (s.entries[A].resync_due, s.entries[A].autoscale_due) == (45, 20)


def test_waiting_counts_due_work_the_limit_held_back() -> None:
    s = Schedule(resync_seconds=30, jitter=lambda: 0.0)
    for index in range(3):
        s.observe(("ns", str(index)), 5.0, now=0)  # a resync and an autoscale each, due at 0
    assert s.waiting(now=0) == 6
    started = s.due(now=0, limit=4)
    assert s.waiting(now=0) == 2  # started work is running, not waiting
    for key, kind in started:
        s.done(key, kind, started=0, interval=5)
    assert s.waiting(now=1) == 2  # the two held back are still due
    assert s.waiting(now=5) == 2 + 3  # plus the three autoscaler intervals, started first


def test_autoscaler_intervals_go_before_resyncs_that_are_due_earlier() -> None:
    s = Schedule(resync_seconds=30, jitter=lambda: 0.0)
    s.observe(A, None, now=0)  # resync due at 0
    s.observe(B, 5.0, now=1)  # autoscale due at 1, resync at 1
    assert s.due(now=2, limit=1) == [(B, "autoscale")]
    assert s.due(now=2, limit=5) == [(A, "resync"), (B, "resync")]


def test_hurry_makes_the_namespaces_other_resyncs_due_now() -> None:
    s = schedule()
    other = ("elsewhere", "c")
    for key in (A, B, other):
        s.observe(key, None, now=100)
    s.hurry("ns", now=101, but=A)
    assert s.due(now=101, limit=10) == [(B, "resync")]
    s.done(B, "resync", started=101)
    assert s.entries[B].resync_due == 131  # then its period again
    assert s.entries[A].resync_due == s.entries[other].resync_due == 115
