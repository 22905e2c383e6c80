"""Tokens served, from the engines' cumulative counters, and what they cost per 1M.

Engines export cumulative prompt (input) and generation (output) token counters; the scrape loop
keeps them raw. A counter that goes down means the engine restarted: the new value is what it
served since, so it counts whole (Prometheus' `increase` rule, without extrapolation). A restart
that serves more than the old value before the next scrape cannot be seen and undercounts by the
old value; at one scrape every 5 s that needs a very short-lived engine. A counter the engine
does not export (None) counts nothing, and the next known value is a new baseline.

A token counts when a scrape first reports it: within a window, a pod's tokens are the increases
between consecutive samples whose later sample falls inside the window. A pod that started
inside the window counts its first sample whole (its engine started from zero); a pod seen
first mid-life (the operator restarted) takes its first sample as the baseline.

Per 1M tokens over the last hour, formulas (cost = GPU time in the window at node prices):

    perMillionTokens.output = cost / output tokens x 1e6
    perMillionTokens.total  = cost / (input + output tokens) x 1e6
    apiEquivalent           = (input x row.input + output x row.output) / 1e6
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from modelfleet.cost.api_prices import ApiPrice
from modelfleet.cost.spend import PodInterval, window_cost

WINDOW_SECONDS = 3600.0  # "the last hour"


@dataclass(frozen=True)
class Tokens:
    input: float = 0.0  # prompt tokens
    output: float = 0.0  # generated tokens

    @property
    def total(self) -> float:
        return self.input + self.output

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.input + other.input, self.output + other.output)


@dataclass(frozen=True)
class CounterSample:
    """One scrape of one pod: its cumulative counters as exported, at a time."""

    time: float  # seconds; the same clock as the window's (unix seconds in the operator)
    prompt: float | None  # None: the engine does not export the counter
    generation: float | None


def _increase(before: float | None, after: float | None) -> float:
    if after is None:
        return 0.0
    if before is None:
        return 0.0  # no baseline: the next sample measures from here
    return after if after < before else after - before


def increase(before: CounterSample, after: CounterSample) -> Tokens:
    """Tokens served between two samples of one pod; a drop is a restart, counted from zero."""
    return Tokens(
        _increase(before.prompt, after.prompt), _increase(before.generation, after.generation)
    )


def served(
    samples: Sequence[CounterSample],
    since: float = -math.inf,
    until: float = math.inf,
    from_zero: bool = False,
) -> Tokens:
    """Tokens one pod's samples report within (since, until].

    `from_zero`: the first sample is the engine's first since it started at zero (the pod
    started after counting began), so its values count whole.
    """
    ordered = sorted(samples, key=lambda sample: sample.time)
    total = Tokens()
    if from_zero and ordered and since < ordered[0].time <= until:
        total += increase(CounterSample(ordered[0].time, 0.0, 0.0), ordered[0])
    for before, after in itertools.pairwise(ordered):
        if since < after.time <= until:
            total += increase(before, after)
    return total


@dataclass(frozen=True)
class Replica:
    """One pod of a deployment: its GPU interval and its counter samples (oldest first)."""

    interval: PodInterval
    samples: Sequence[CounterSample] = field(default=())

    def served(self, since: float, until: float) -> Tokens:
        return served(self.samples, since, until, from_zero=self.interval.start >= since)

    def observed(self, since: float, until: float) -> bool:
        """True when some increase falls in the window: the counters were seen, not guessed."""
        ordered = sorted(self.samples, key=lambda sample: sample.time)
        if self.interval.start >= since and ordered and since < ordered[0].time <= until:
            return True
        return any(since < after.time <= until for after in ordered[1:])


@dataclass(frozen=True)
class PerMillion:
    output: float | None  # USD per 1M output tokens; None when nothing was generated
    total: float  # USD per 1M tokens, input and output


def per_million(cost: float, tokens: Tokens) -> PerMillion | None:
    """USD per 1M tokens for `cost` spent serving `tokens`; None without traffic."""
    if tokens.total <= 0:
        return None
    output = cost / tokens.output * 1e6 if tokens.output > 0 else None
    return PerMillion(output, cost / tokens.total * 1e6)


@dataclass(frozen=True)
class ApiEquivalent:
    """What the same tokens would have cost on a hosted API, with that price's date."""

    usd: float
    compare_to: str  # provider/model
    as_of: str


def api_equivalent(tokens: Tokens, row: ApiPrice) -> ApiEquivalent:
    return ApiEquivalent(row.cost(tokens.input, tokens.output), row.key, row.as_of)


def idle_gpu_hours(replicas: Iterable[Replica], since: float, until: float) -> float:
    """GPU-hours in the window of replicas observed serving nothing in it.

    A replica whose counters were never seen in the window (loading, not answering) is unknown,
    never idle, as in the autoscaler. An idle replica counts its whole GPU time in the window.
    """
    seconds = sum(
        replica.interval.gpu_seconds(since, until)
        for replica in replicas
        if replica.observed(since, until) and replica.served(since, until).total == 0
    )
    return seconds / 3600.0


@dataclass(frozen=True)
class LastHour:
    """A deployment's traffic and cost over the same recent window."""

    since: float
    until: float
    cost: float  # USD of GPU time in the window
    tokens: Tokens
    per_million: PerMillion | None
    idle_gpu_hours: float


def last_hour(
    replicas: Sequence[Replica], now: float, observing_since: float = -math.inf
) -> LastHour:
    """Cost, tokens, $/1M and idle GPU-hours over the last hour.

    The window starts at `observing_since` when that is later (the operator started or became
    leader less than an hour ago): counters are only known since then, so cost is taken over
    the same window and $/1M stays a like-for-like ratio. Pass the replicas that ended within
    the hour too (the caller remembers them), or their cost and tokens are missed.
    """
    since = max(now - WINDOW_SECONDS, observing_since)
    tokens = sum((replica.served(since, now) for replica in replicas), Tokens())
    cost = window_cost((replica.interval for replica in replicas), since, now)
    return LastHour(
        since=since,
        until=now,
        cost=cost,
        tokens=tokens,
        per_million=per_million(cost, tokens),
        idle_gpu_hours=idle_gpu_hours(replicas, since, now),
    )
