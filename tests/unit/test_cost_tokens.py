"""Tokens from engine counters (resets, gaps, windows), $/1M, API equivalent, idle GPU-hours."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelfleet.cost.api_prices import ApiPrice
from modelfleet.cost.spend import PodInterval
from modelfleet.cost.tokens import (
    ApiEquivalent,
    CounterSample,
    PerMillion,
    Replica,
    Tokens,
    api_equivalent,
    idle_gpu_hours,
    increase,
    last_hour,
    per_million,
    served,
)

S = CounterSample


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(S(0, 100, 50), S(5, 180, 90), Tokens(80, 40), id="steady"),
        pytest.param(S(0, 100, 50), S(5, 100, 50), Tokens(0, 0), id="no-traffic"),
        pytest.param(S(0, 1000, 500), S(5, 30, 20), Tokens(30, 20), id="reset-counts-from-zero"),
        pytest.param(S(0, 1000, 500), S(5, 0, 0), Tokens(0, 0), id="reset-to-zero"),
        pytest.param(S(0, 1000, 500), S(5, 1010, 7), Tokens(10, 7), id="only-generation-went-down"),
        pytest.param(S(0, None, None), S(5, 40, 20), Tokens(0, 0), id="no-baseline-yet"),
        pytest.param(S(0, 40, 20), S(5, None, None), Tokens(0, 0), id="counter-missing"),
    ],
)
def test_increase(before: CounterSample, after: CounterSample, expected: Tokens) -> None:
    assert increase(before, after) == expected


SERIES = [
    S(0, 100, 10),
    S(5, 150, 30),  # +50 +20
    S(10, 20, 5),  # restart: +20 +5
    S(15, 60, 25),  # +40 +20
    S(20, 60, 25),  # idle
    S(25, 10, 100),  # prompt went down (+10), generation kept counting (+75)
]


@pytest.mark.parametrize(
    ("samples", "since", "until", "from_zero", "expected"),
    [
        pytest.param(SERIES, -1, 99, False, Tokens(120, 120), id="whole-series-with-resets"),
        pytest.param(SERIES, -1, 99, True, Tokens(220, 130), id="from-zero-first-counts"),
        pytest.param(SERIES, 5, 15, False, Tokens(60, 25), id="window-(5,15]"),
        pytest.param(SERIES, 5, 15, True, Tokens(60, 25), id="first-sample-outside-window"),
        pytest.param(SERIES, 15, 20, False, Tokens(0, 0), id="idle-window"),
        pytest.param(list(reversed(SERIES)), -1, 99, False, Tokens(120, 120), id="any-order"),
        pytest.param([S(0, 5, 5)], -1, 99, False, Tokens(0, 0), id="one-sample-is-a-baseline"),
        pytest.param([], -1, 99, True, Tokens(0, 0), id="no-samples"),
        pytest.param(
            [S(0, None, None), S(5, 10, 10), S(10, 30, 15)],
            -1,
            99,
            False,
            Tokens(20, 5),
            id="engine-without-counters-then-with",
        ),
    ],
)
def test_served(
    samples: list[CounterSample], since: float, until: float, from_zero: bool, expected: Tokens
) -> None:
    assert served(samples, since, until, from_zero) == expected


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 10**9), st.integers(0, 10**9)),
        max_size=20,
    ),
    st.lists(st.integers(-1, 10_001), min_size=2, max_size=5, unique=True),
)
def test_tokens_are_additive_over_split_windows(
    raw: list[tuple[int, int, int]], cuts: list[int]
) -> None:
    """Counters with arbitrary drops: windows that tile a span count what the span counts."""
    samples = [S(t, p, g) for t, p, g in raw]
    edges = sorted(cuts)
    parts = sum((served(samples, a, b) for a, b in itertools.pairwise(edges)), Tokens())
    whole = served(samples, edges[0], edges[-1])
    assert parts == whole
    assert whole.input >= 0 and whole.output >= 0


@pytest.mark.parametrize(
    ("cost", "tokens", "expected"),
    [
        pytest.param(2.0, Tokens(0, 0), None, id="no-traffic-absent"),
        pytest.param(2.0, Tokens(3e6, 1e6), PerMillion(2.0, 0.5), id="output-and-total"),
        pytest.param(2.0, Tokens(4e6, 0), PerMillion(None, 0.5), id="prompts-only"),
        pytest.param(0.0, Tokens(1e6, 1e6), PerMillion(0.0, 0.0), id="free-gpus"),
    ],
)
def test_per_million(cost: float, tokens: Tokens, expected: PerMillion | None) -> None:
    assert per_million(cost, tokens) == expected


def test_api_equivalent_carries_the_row_and_its_date() -> None:
    row = ApiPrice(provider="google", model="gemini-2.5-flash", input=0.3, output=2.5, as_of="2026")
    assert api_equivalent(Tokens(2e6, 1e6), row) == ApiEquivalent(
        pytest.approx(0.6 + 2.5),  # type: ignore[arg-type]
        "google/gemini-2.5-flash",
        "2026",
    )


HOUR = 3600.0
NOW = 10 * HOUR


UIDS = itertools.count()


def replica(
    start: float, samples: list[CounterSample], gpus: int = 1, end: float | None = None
) -> Replica:
    return Replica(PodInterval(f"pod-{next(UIDS)}", gpus, 2.0, start, end), samples)


def at(minutes_ago: float) -> float:
    return NOW - minutes_ago * 60


BUSY = [S(at(50), 1000, 100), S(at(10), 5000, 2100)]  # 4000 in, 2000 out in the hour
IDLE = [S(at(50), 1000, 100), S(at(10), 1000, 100)]


@pytest.mark.parametrize(
    ("replicas", "expected"),
    [
        pytest.param([replica(0, BUSY, gpus=2)], 0.0, id="serving"),
        pytest.param([replica(0, IDLE, gpus=2)], 2.0, id="idle-whole-hour"),
        pytest.param([replica(at(30), [S(at(20), 0, 0)])], 0.5, id="idle-since-start-30-min"),
        pytest.param([replica(0, [])], 0.0, id="never-answered-is-unknown-not-idle"),
        pytest.param([replica(0, [S(at(90), 9, 9)])], 0.0, id="only-old-sample-is-unknown"),
        pytest.param(
            [replica(0, IDLE), replica(0, BUSY), replica(at(20), [], gpus=4)],
            1.0,
            id="one-idle-one-busy-one-loading",
        ),
        pytest.param(
            [replica(0, [S(at(50), 1000, 100), S(at(40), 0, 0), S(at(5), 0, 0)])],
            1.0,
            id="restarted-and-served-nothing-is-idle",
        ),
        pytest.param(
            [replica(0, IDLE, end=at(15))], 0.75, id="ended-within-the-hour-counts-its-part"
        ),
    ],
)
def test_idle_gpu_hours(replicas: list[Replica], expected: float) -> None:
    assert idle_gpu_hours(replicas, NOW - HOUR, NOW) == pytest.approx(expected)


def test_last_hour_cost_tokens_and_per_million() -> None:
    replicas = [
        replica(0, BUSY, gpus=2),  # whole hour: 2 GPUs x 2.0
        replica(at(30), [S(at(25), 600, 400), S(at(5), 900, 600)]),  # started in the hour
        replica(0, [S(at(50), 7, 7), S(at(35), 7, 7)], end=at(30)),  # idle, gone 30 min ago
    ]
    hour = last_hour(replicas, NOW)
    assert hour.since == NOW - HOUR
    assert hour.cost == pytest.approx(2 * 2.0 + 1 * 2.0 * 0.5 + 1 * 2.0 * 0.5)
    # the replica that started in the hour counts its first sample whole
    assert hour.tokens == Tokens(4000 + 900, 2000 + 600)
    assert hour.per_million == PerMillion(
        pytest.approx(6.0 / 2600 * 1e6),  # type: ignore[arg-type]
        pytest.approx(6.0 / 7500 * 1e6),  # type: ignore[arg-type]
    )
    assert hour.idle_gpu_hours == pytest.approx(0.5)


def test_last_hour_after_a_restart_uses_the_observed_window_for_both() -> None:
    """The operator started 20 minutes ago: it knows counters since then only, so cost is taken
    over the same 20 minutes and a pod that ran before counts its first sample as a baseline."""
    replicas = [replica(0, [S(at(19), 10_000, 5_000), S(at(1), 13_000, 6_000)])]
    hour = last_hour(replicas, NOW, observing_since=at(20))
    assert hour.since == at(20)
    assert hour.cost == pytest.approx(2.0 * 20 / 60)
    assert hour.tokens == Tokens(3000, 1000)


def test_no_traffic_means_no_per_million() -> None:
    assert last_hour([replica(0, IDLE)], NOW).per_million is None
    assert last_hour([], NOW).per_million is None
