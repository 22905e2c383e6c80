"""status.slo: histogram bounds, counter increases, the last-hour window, the status block, its
write discipline and Events (status/slo.py), and the operator's ledger (handlers/slo.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelfleet.api.types import Engine, LatencySLOStatus, SLOSpec, SLOStatus
from modelfleet.autoscale.policy import PodLoad
from modelfleet.handlers.scrapes import EnginePod, PodSample
from modelfleet.handlers.slo import Ledger
from modelfleet.kube.scrape import EngineSample, parse_sample
from modelfleet.render.engines import profile
from modelfleet.status.cost import rfc3339
from modelfleet.status.slo import (
    NOT_SCRAPED,
    Bucketed,
    LatencyWindow,
    SLOSeen,
    at_target,
    bound_at_or_below,
    increase,
    latency_status,
    slo_announcements,
    slo_status,
    written_slo,
)

# vLLM's TTFT buckets (vllm/v1/metrics/loggers.py), as the emulator exports them.
VLLM_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)


@pytest.mark.parametrize(
    ("target", "bound"),
    [
        (2.0, 1.0),  # no 2.0 bucket: the largest below
        (1.0, 1.0),  # a bound equal to the target is the target
        (2.5, 2.5),
        (0.3, 0.25),
        (100.0, 5.0),
        (0.0005, None),  # below every bound: unknown
    ],
)
def test_attainment_is_measured_at_the_largest_bound_not_above_the_target(
    target: float, bound: float | None
) -> None:
    assert bound_at_or_below([*VLLM_TTFT, math.inf], target) == bound


@pytest.mark.parametrize(
    ("buckets", "target", "expected"),
    [
        ({0.5: 3.0, 1.0: 8.0, 2.5: 9.0, math.inf: 10.0}, 2.0, Bucketed(1.0, 8.0, 10.0)),
        ({}, 2.0, "the engine exports no h histogram"),
        ({1.0: 1.0}, 2.0, "h has no +Inf bucket"),
        ({1.0: 1.0, math.inf: 2.0}, 0.5, "no h bucket bound at or below 0.5s (smallest: 1s)"),
    ],
)
def test_a_histogram_reads_at_the_target_or_says_why_not(
    buckets: dict[float, float], target: float, expected: object
) -> None:
    assert at_target("h", buckets, target) == expected


@pytest.mark.parametrize(
    ("before", "after", "from_zero", "expected"),
    [
        (Bucketed(1.0, 5, 10), Bucketed(1.0, 8, 14), False, (3, 4)),
        (None, Bucketed(1.0, 8, 14), False, (0, 0)),  # first reading: a baseline
        (None, Bucketed(1.0, 8, 14), True, (8, 14)),  # engine started after we began
        (Bucketed(1.0, 5, 10), Bucketed(1.0, 2, 3), False, (2, 3)),  # restart: counts whole
        (Bucketed(1.0, 5, 10), Bucketed(1.0, 6, 8), False, (6, 8)),  # total dropped: both reset
        (Bucketed(0.5, 5, 10), Bucketed(1.0, 8, 14), False, (0, 0)),  # another bound: baseline
        (Bucketed(1.0, 5, 10), Bucketed(1.0, 5, 10), False, (0, 0)),
    ],
)
def test_increases_follow_the_counter_reset_rule(
    before: Bucketed | None, after: Bucketed, from_zero: bool, expected: tuple[float, float]
) -> None:
    assert increase(before, after, from_zero) == expected


def test_the_window_sums_the_last_hour_by_minute_and_forgets_older_slots() -> None:
    window = LatencyWindow(1.0, None, created=0.0)
    window.add(30.0, (9, 10), None)
    window.add(50.0, (1, 1), None)  # same minute
    window.add(3700.0, (5, 10), None)
    window.add(7300.0, (2, 4), None)  # the first slot is now more than an hour old
    assert window.starts() == [3660.0, 7260.0]
    # To the minute: the slot holding the window's start counts whole.
    assert window.totals(7300.0 - 3600.0) == ((7, 14), (0, 0))
    assert window.totals(3720.0) == ((2, 4), (0, 0))
    window.add(7290.0, (1, 1), (3, 3))  # late, within the same slot
    assert window.totals(3720.0) == ((3, 5), (3, 3))
    window.add(7230.0, (1, 1), None)  # late, into a slot already passed: kept in order
    assert window.starts() == [3660.0, 7200.0, 7260.0]
    assert window.totals(7260.0) == ((3, 5), (3, 3))


def test_empty_readings_add_no_slot() -> None:
    window = LatencyWindow(1.0, None, created=0.0)
    window.add(10.0, (0, 0), None)
    assert not window.starts()


@pytest.mark.parametrize(
    ("bound", "counts", "unknown", "expected"),
    [
        (
            1.0,
            (993, 1000),
            None,
            LatencySLOStatus(
                target=2, measured_at_seconds=1.0, attainment=0.993, count=1000, met=True
            ),
        ),
        (
            1.0,
            (980, 1000),
            None,
            LatencySLOStatus(
                target=2, measured_at_seconds=1.0, attainment=0.98, count=1000, met=False
            ),
        ),
        (1.0, (0, 0), None, LatencySLOStatus(target=2, measured_at_seconds=1.0, count=0)),
        (
            None,
            None,
            "llamacpp exports no time-to-first-token histogram",
            LatencySLOStatus(
                target=2, unknown_reason="llamacpp exports no time-to-first-token histogram"
            ),
        ),
        (None, None, None, LatencySLOStatus(target=2, unknown_reason="no engine answered yet")),
    ],
    ids=["met", "missed", "no-traffic", "no-histogram", "not-scraped-yet"],
)
def test_latency_block(
    bound: float | None,
    counts: tuple[float, float] | None,
    unknown: str | None,
    expected: LatencySLOStatus,
) -> None:
    assert latency_status(2.0, bound, counts, 0.99, unknown) == expected


def test_tpot_is_reported_only_when_it_has_a_target() -> None:
    seen = SLOSeen(0.0, 3600.0, (9, 10), 1.0, None, (95, 100), 0.05, None)
    without = slo_status(SLOSpec(), seen)
    assert without.tpot is None
    assert (without.since, without.until) == (rfc3339(0.0), rfc3339(3600.0))
    with_tpot = slo_status(SLOSpec(ttftSeconds=2, tpotSeconds=0.06, objective=0.9), seen)
    assert with_tpot.ttft.met is True and with_tpot.ttft.attainment == 0.9
    assert with_tpot.tpot == LatencySLOStatus(
        target=0.06, measured_at_seconds=0.05, attainment=0.95, count=100, met=True
    )


def _block(until: float, attainment: float = 0.99, bound: float = 1.0) -> SLOStatus:
    return SLOStatus(
        since=rfc3339(until - 3600),
        until=rfc3339(until),
        ttft=LatencySLOStatus(
            target=2, measured_at_seconds=bound, attainment=attainment, count=100, met=True
        ),
    )


NOT_YET = SLOStatus(
    since=rfc3339(1500),
    until=rfc3339(2000),
    ttft=LatencySLOStatus(target=2, unknown_reason=NOT_SCRAPED),
)
NEW_TARGET = LatencySLOStatus(target=3, unknown_reason=NOT_SCRAPED)


@pytest.mark.parametrize(
    ("previous", "fresh", "now", "written"),
    [
        (None, _block(1000), 1000, "fresh"),
        (_block(1000), _block(1010, 0.995), 1010, "previous"),  # within the period: held
        (_block(1000), _block(1301, 0.995), 1301, "fresh"),  # past the period and changed
        (_block(1000), _block(1301), 1301, "previous"),  # past the period, only time moved
        (_block(1000), _block(1010, bound=2.5), 1010, "fresh"),  # another bound: at once
        (_block(1000), _block(990, 0.995), 990, "fresh"),  # clock went back
        (_block(1000), NOT_YET, 2000, "previous"),  # a new leader has not scraped yet
        (_block(1000), NOT_YET.model_copy(update={"ttft": NEW_TARGET}), 1010, "fresh"),
        # the engine's first answer after the status settled: numbers wait for the period
        (NOT_YET, _block(2010), 2010, "previous"),
        (NOT_YET, _block(2301), 2301, "fresh"),
    ],
    ids=[
        "first",
        "held",
        "due",
        "only-time",
        "new-bound",
        "clock-back",
        "not-yet",
        "new-target",
        "first-reading-held",
        "first-reading-due",
    ],
)
def test_the_window_is_written_at_most_every_period(
    previous: SLOStatus | None, fresh: SLOStatus, now: float, written: str
) -> None:
    expected = fresh if written == "fresh" else previous
    assert written_slo(previous, fresh, now, 300.0) == expected


def test_an_event_when_a_window_misses_and_when_it_recovers() -> None:
    met, missed = _block(1000), _block(1300, 0.95)
    missed = missed.model_copy(update={"ttft": missed.ttft.model_copy(update={"met": False})})
    assert [a.reason for a in slo_announcements(met, missed)] == ["SLOMissed"]
    assert slo_announcements(missed, missed) == []
    assert [a.reason for a in slo_announcements(missed, met)] == ["SLOMet"]
    assert slo_announcements(None, met) == []
    assert "95.00% of 100 within 1s" in slo_announcements(None, missed)[0].message


def _pod(uid: str = "u1", started: float | None = None) -> EnginePod:
    return EnginePod("ns", "md-" + uid, uid, "md", "127.1.0.1", Engine.VLLM, started)


def _sample(at: float, ttft: Bucketed | str | None, pod: EnginePod | None = None) -> PodSample:
    engine = EngineSample(PodLoad(0, 0, 0), ttft=ttft)
    return PodSample(pod or _pod(), at, 5.0, engine, at)


def test_the_ledger_counts_increases_per_pod_and_restarts_whole() -> None:
    ledger = Ledger(clock=lambda: 1000.0)
    ledger.record(_sample(1005, Bucketed(1.0, 50, 60)))  # an engine older than us: baseline
    ledger.record(_sample(1010, Bucketed(1.0, 58, 70)))
    ledger.record(_sample(1015, Bucketed(1.0, 4, 5)))  # restarted: counts whole
    ledger.record(_sample(1016, Bucketed(1.0, 9, 10), _pod("u2", started=1012.0)))  # new pod
    seen = ledger.see(("ns", "md"), Engine.VLLM, 1020.0)
    assert seen.ttft == (8 + 4 + 9, 10 + 5 + 10)
    assert seen.ttft_bound == 1.0 and seen.ttft_unknown is None
    assert seen.since == 1000.0 and seen.until == 1020.0
    assert len(ledger) == 2


def test_a_new_bound_starts_the_window_over() -> None:
    ledger = Ledger(clock=lambda: 0.0)
    ledger.record(_sample(5, Bucketed(1.0, 5, 5), _pod(started=1.0)))
    ledger.record(_sample(10, Bucketed(2.5, 9, 9), _pod(started=1.0)))
    seen = ledger.see(("ns", "md"), Engine.VLLM, 20.0)
    assert (seen.ttft, seen.ttft_bound, seen.since) == ((0, 0), 2.5, 10.0)


def test_the_ledger_says_why_attainment_is_unknown() -> None:
    ledger = Ledger(clock=lambda: 0.0)
    seen = ledger.see(("ns", "llama"), Engine.LLAMACPP, 10.0)
    assert seen.ttft is None
    assert seen.ttft_unknown == "llamacpp exports no time-to-first-token histogram"
    fresh = ledger.see(("ns", "md"), Engine.VLLM, 10.0)
    assert (fresh.ttft, fresh.ttft_unknown) == (None, None)  # not scraped yet
    ledger.record(_sample(5, "the engine exports no vllm:time_to_first_token_seconds histogram"))
    seen = ledger.see(("ns", "md"), Engine.VLLM, 10.0)
    assert seen.ttft is None and "exports no vllm:time_to_first" in str(seen.ttft_unknown)


def test_scrapes_read_at_the_targets_the_ledger_was_given() -> None:
    ledger = Ledger(clock=lambda: 0.0)
    assert ledger.targets(("ns", "md")) == (2.0, None)
    ledger.aim(("ns", "md"), SLOSpec(ttftSeconds=0.3, tpotSeconds=0.05))
    assert ledger.targets(("ns", "md")) == (0.3, 0.05)
    text = (
        "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\n"
        'vllm:time_to_first_token_seconds_bucket{le="0.25",model_name="a"} 3\n'
        'vllm:time_to_first_token_seconds_bucket{le="0.25",model_name="b"} 1\n'
        'vllm:time_to_first_token_seconds_bucket{le="0.5",model_name="a"} 5\n'
        'vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="a"} 6\n'
        'vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="b"} 2\n'
        'vllm:time_per_output_token_seconds_bucket{le="0.025"} 40\n'
        'vllm:time_per_output_token_seconds_bucket{le="0.05"} 90\n'
        'vllm:time_per_output_token_seconds_bucket{le="+Inf"} 100\n'
    )
    sample = parse_sample(text, profile("vllm").metrics, ledger.targets(("ns", "md")))
    assert sample is not None
    assert sample.ttft == Bucketed(0.25, 4, 8)  # summed over model names
    assert sample.tpot == Bucketed(0.05, 90, 100)  # the older vLLM name
    llama = parse_sample(
        "llamacpp:requests_deferred 0\nllamacpp:requests_processing 0\n",
        profile("llamacpp").metrics,
        (2.0, 0.05),
    )
    assert llama is not None and llama.ttft is None and llama.tpot is None


def test_slo_series_stay_when_autoscaling_is_off_and_go_with_the_deployment() -> None:
    from modelfleet.handlers import metrics

    who = {"namespace": "team", "name": "slo-series", "latency": "ttft"}
    metrics.DEPLOYMENT_SLOS.deployments[("team", "slo-series")] = {
        "ttft": metrics.LatencySLO(2.0, 1.0, 0.97, 120)
    }

    def value(name: str, labels: dict[str, str]) -> float | None:
        return metrics.REGISTRY.get_sample_value(name, labels)

    assert value("modelfleet_deployment_slo_attainment", {**who, "le": "1"}) == 0.97
    assert value("modelfleet_deployment_slo_target_seconds", who) == 2.0
    assert value("modelfleet_deployment_slo_observations", who) == 120
    # A non-autoscaled deployment's every event drops the autoscaler's series, not these.
    metrics.forget_autoscaler("team", "slo-series")
    assert value("modelfleet_deployment_slo_target_seconds", who) == 2.0
    metrics.forget("team", "slo-series")
    assert value("modelfleet_deployment_slo_target_seconds", who) is None


@given(
    st.lists(
        st.tuples(st.floats(0, 3500), st.integers(0, 50), st.integers(0, 50)),
        max_size=60,
    )
)
def test_the_window_totals_every_reading_of_the_hour_in_any_order(
    readings: list[tuple[float, int, int]],
) -> None:
    window = LatencyWindow(1.0, 0.05, created=0.0)
    for time, within, extra in readings:
        window.add(time, (within, within + extra), (extra, within + extra))
    within = sum(r[1] for r in readings)
    total = sum(r[1] + r[2] for r in readings)
    extra = sum(r[2] for r in readings)
    assert window.totals(0.0) == ((within, total), (extra, total))
    starts = window.starts()
    assert starts == sorted(set(starts))
