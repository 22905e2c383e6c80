"""status.slo: attainment of the latency targets over the last hour, from engine histograms (pure).

Engines export cumulative latency histograms (vLLM `vllm:time_to_first_token_seconds`, SGLang's
namesake; llama.cpp none). Bucket bounds are the engine's, not ours: vLLM's TTFT buckets go
..., 0.75, 1.0, 2.5, ... so a 2 s target cannot be measured at 2 s. Attainment is measured at
the largest bound not above the target (`bound_at_or_below`) and status says which: a lower
bound of the true attainment, never an interpolated guess.

Only two numbers per histogram and pod are kept (`Bucketed`: the count at that bound and the
total), and per deployment one slot per minute of the increases (`LatencyWindow`): a pod costs
a few floats, a deployment at most 61 slots. Increases follow the counter reset rule of the cost
ledger (cost/tokens.py): a counter that goes down means the engine restarted and the new value
counts whole.

`written_slo` applies the cost block's write discipline (status/cost.py `written_cost`): the
window slides every second, so a fresh block is written at most every `period` unless something
else is written anyway or what it says changes in kind (target, bound, why unknown).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from modelfleet.api.types import LatencySLOStatus, SLOSpec, SLOStatus
from modelfleet.cost import kube_time
from modelfleet.status.conditions import Announcement
from modelfleet.status.cost import rfc3339

WINDOW_SECONDS = 3600.0  # "the last hour"
NOT_SCRAPED = "no engine answered yet"
SLOT_SECONDS = 60.0  # the window's resolution


@dataclass(frozen=True)
class Bucketed:
    """One histogram of one pod as exported (cumulative, summed over label sets) at one bound."""

    bound: float  # seconds: the bucket's `le`
    within: float  # observations at or below `bound`
    total: float  # all observations (the +Inf bucket)


# What a scrape says of one histogram: the counts at the bound, or why there are none.
Reading = Bucketed | str


def bound_at_or_below(bounds: Iterable[float], target: float) -> float | None:
    """The largest finite bucket bound not above `target`; None when every bound is above it."""
    fitting = [b for b in bounds if math.isfinite(b) and b <= target + 1e-12]
    return max(fitting, default=None)


def at_target(name: str, buckets: Mapping[float, float], target: float) -> Reading:
    """A histogram's reading at `target` from its cumulative buckets (le -> count), or why not."""
    if not buckets:
        return f"the engine exports no {name} histogram"
    total = buckets.get(math.inf)
    if total is None:
        return f"{name} has no +Inf bucket"
    bound = bound_at_or_below(buckets, target)
    if bound is None:
        smallest = min(b for b in buckets if math.isfinite(b)) if len(buckets) > 1 else math.inf
        return f"no {name} bucket bound at or below {target:g}s (smallest: {smallest:g}s)"
    return Bucketed(bound, buckets[bound], total)


def increase(
    before: Bucketed | None, after: Bucketed, from_zero: bool = False
) -> tuple[float, float]:
    """(within, total) observed between two readings of one pod.

    No earlier reading (or one at another bound): a baseline, nothing counted, unless
    `from_zero` (the engine started after counting began, so everything it reports is new).
    A drop of either count is an engine restart: the new counts are what it observed since.
    Both counts reset together, so one drop resets both (unlike two independent counters).
    """
    if before is None or before.bound != after.bound:
        return (after.within, after.total) if from_zero and before is None else (0.0, 0.0)
    if after.total < before.total or after.within < before.within:
        return after.within, after.total
    return after.within - before.within, after.total - before.total


@dataclass
class LatencyWindow:
    """Per-minute sums of one deployment's increases, for the last hour, at fixed bounds.

    The slots are one flat array of doubles, five per minute (start, TTFT within, TTFT total,
    TPOT within, TPOT total), oldest first: about 2.5 kB for a busy hour, where lists of Python
    floats would take five times that for each of a thousand deployments.
    """

    ttft_bound: float | None
    tpot_bound: float | None
    created: float  # counting at these bounds began (unix seconds)
    slots: array[float] = field(default_factory=lambda: array("d"))

    def starts(self) -> list[float]:
        return list(self.slots[0::_WIDTH])

    def add(
        self, time: float, ttft: tuple[float, float] | None, tpot: tuple[float, float] | None
    ) -> None:
        if not (ttft and ttft[1]) and not (tpot and tpot[1]):
            return
        start = math.floor(time / SLOT_SECONDS) * SLOT_SECONDS
        at = self._slot(start)
        for offset, counts in ((1, ttft), (3, tpot)):
            if counts:
                self.slots[at + offset] += counts[0]
                self.slots[at + offset + 1] += counts[1]
        horizon = time - WINDOW_SECONDS - SLOT_SECONDS
        old = 0
        while old < len(self.slots) and self.slots[old] < horizon:
            old += _WIDTH
        del self.slots[:old]

    def _slot(self, start: float) -> int:
        """Index of the slot starting at `start`, made (in order) if missing; a late reading
        goes into a slot already passed."""
        at = len(self.slots) - _WIDTH
        while at >= 0 and self.slots[at] > start:
            at -= _WIDTH
        if at >= 0 and self.slots[at] == start:
            return at
        at += _WIDTH
        self.slots[at:at] = array("d", (start, 0.0, 0.0, 0.0, 0.0))
        return at

    def totals(self, since: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """((ttft within, total), (tpot within, total)) of the slots from `since` on (to the
        minute: the slot holding `since` counts whole)."""
        first = math.floor(since / SLOT_SECONDS) * SLOT_SECONDS
        sums = [0.0] * _WIDTH
        for at in range(0, len(self.slots), _WIDTH):
            if self.slots[at] >= first:
                for k in range(1, _WIDTH):
                    sums[k] += self.slots[at + k]
        return (sums[1], sums[2]), (sums[3], sums[4])


_WIDTH = 5  # doubles per slot


@dataclass(frozen=True)
class SLOSeen:
    """One deployment's engine histograms over the window, as the operator observed them."""

    since: float
    until: float
    ttft: tuple[float, float] | None  # (within, total) at ttft_bound; None: not known
    ttft_bound: float | None
    ttft_unknown: str | None  # why ttft is None, when it is
    tpot: tuple[float, float] | None = None
    tpot_bound: float | None = None
    tpot_unknown: str | None = None


def latency_status(
    target: float,
    bound: float | None,
    counts: tuple[float, float] | None,
    objective: float,
    unknown: str | None,
) -> LatencySLOStatus:
    """One target's block: attainment at the bound, met or not, or why unknown."""
    if counts is None or bound is None:
        return LatencySLOStatus(target=target, unknown_reason=unknown or NOT_SCRAPED)
    within, total = counts
    if total <= 0:
        return LatencySLOStatus(target=target, measured_at_seconds=bound, count=0)
    attainment = min(max(within / total, 0.0), 1.0)
    return LatencySLOStatus(
        target=target,
        measured_at_seconds=bound,
        attainment=round(attainment, 4),
        count=round(total),
        met=attainment >= objective - 1e-12,
    )


def slo_status(slo: SLOSpec, seen: SLOSeen) -> SLOStatus:
    """status.slo with every field fresh as of `seen.until`."""
    tpot = None
    if slo.tpot_seconds is not None:
        tpot = latency_status(
            slo.tpot_seconds, seen.tpot_bound, seen.tpot, slo.objective, seen.tpot_unknown
        )
    return SLOStatus(
        since=rfc3339(seen.since),
        until=rfc3339(seen.until),
        ttft=latency_status(
            slo.ttft_seconds, seen.ttft_bound, seen.ttft, slo.objective, seen.ttft_unknown
        ),
        tpot=tpot,
    )


def _kind(status: SLOStatus) -> tuple[object, ...]:
    """What the block says apart from the numbers that move with time and traffic."""
    return tuple(_kind_of(block) for block in (status.ttft, status.tpot))


def _first_reading(previous: SLOStatus, fresh: SLOStatus) -> bool:
    """The engines' first readings of the same targets: numbers, not news. They wait for the
    period like the token counts, so a deployment that just settled is not written again when
    its engine first answers a scrape."""
    return all(
        _kind_of(before) == _kind_of(after) or _first_numbers(before, after)
        for before, after in ((previous.ttft, fresh.ttft), (previous.tpot, fresh.tpot))
    )


def _first_numbers(before: LatencySLOStatus | None, after: LatencySLOStatus | None) -> bool:
    return (
        before is not None
        and after is not None
        and before.target == after.target
        and before.unknown_reason == NOT_SCRAPED
        and after.unknown_reason is None
    )


def _kind_of(block: LatencySLOStatus | None) -> object:
    return (
        None if block is None else (block.target, block.measured_at_seconds, block.unknown_reason)
    )


def written_slo(
    previous: SLOStatus | None, fresh: SLOStatus, now: float, period: float
) -> SLOStatus:
    """What to put in status: `fresh`, or the block as last written.

    Fresh when there is none yet, when it changed in kind (a new target or bound, known or
    unknown; not the engines' first readings, which are numbers), or when more than `period`
    has passed since the last `until` and a number changed; never for "not scraped yet" over
    an earlier block of the same target (a new leader's first status computations would write
    twice).
    The caller writes `fresh` anyway when something else in status is written.
    """
    if previous is None:
        return fresh
    if fresh.ttft.unknown_reason == NOT_SCRAPED and previous.ttft.target == fresh.ttft.target:
        # This operator has not scraped the engines yet (it just started leading): what was
        # written stands until it has.
        return previous
    if _kind(previous) != _kind(fresh) and not _first_reading(previous, fresh):
        return fresh
    elapsed = now - kube_time(previous.until)
    if elapsed > period or elapsed < 0:
        before = previous.model_dump(exclude={"since", "until"})
        after = fresh.model_dump(exclude={"since", "until"})
        if before != after:
            return fresh
    return previous


def slo_announcements(previous: SLOStatus | None, current: SLOStatus | None) -> list[Announcement]:
    """SLOMissed (Warning) when a target's window turns missed, SLOMet when it recovers."""
    found = []
    for name in ("ttft", "tpot"):
        before = getattr(previous, name, None) if previous is not None else None
        after = getattr(current, name, None) if current is not None else None
        if after is None or after.met is None:
            continue
        was = before.met if before is not None else None
        if after.met is False and was is not False:
            found.append(
                Announcement(
                    "Warning",
                    "SLOMissed",
                    f"{name.upper()}: {after.attainment:.2%} of {after.count} within "
                    f"{after.measured_at_seconds:g}s over the last hour (target {after.target:g}s)",
                )
            )
        elif after.met is True and was is False:
            found.append(
                Announcement(
                    "Normal",
                    "SLOMet",
                    f"{name.upper()}: {after.attainment:.2%} of {after.count} within "
                    f"{after.measured_at_seconds:g}s over the last hour (target {after.target:g}s)",
                )
            )
    return found
