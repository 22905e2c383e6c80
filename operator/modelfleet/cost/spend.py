"""Spend: USD accrued from the GPU time pods actually held, counted once, across restarts.

A pod holds its GPUs from the moment it is bound to a node until it is gone. Each pod is one
`PodInterval` (GPUs, its node's USD per GPU-hour, start, end or still running). Spend is a
running total with a watermark, `Spend(until, usd)`: everything before `until` is counted in
`usd`. `accrue` adds the GPU time of every interval between the watermark and `now`, then moves
the watermark to `now`:

    added = sum over pods of gpus x usd_per_gpu_hour x |[start, end or now] & [until, now]| / 3600

Per second, no rounding up to whole hours. The operator persists the watermark and the amount
together in one status write (a compare-and-swap on the object's resourceVersion), so:

- a restart or a new leader continues from the last written watermark, and pods that still
  exist (running, or terminating with a deletionTimestamp) are counted from their own
  timestamps: nothing is counted twice and the time the operator was down is not lost;
- what can be lost is the GPU time, after the last written watermark, of pods that were
  deleted and gone from the API before the next accrual saw them: at most
  (write period + downtime) x those pods' GPUs x price. Nothing is ever double-counted, since
  a write carries the watermark its amount was computed to.

A price change applies from the watermark of the accrual that first sees it: the time since
the previous accrual (one resync) is priced at the new price; counted time is never re-priced.
Time is an argument (unix seconds): nothing here reads a clock.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.plan.inventory import pod_gpus

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class PodInterval:
    """The time one pod held its GPUs, at its node's price."""

    uid: str
    gpus: int
    usd_per_gpu_hour: float
    start: float  # unix seconds: bound to its node
    end: float | None = None  # unix seconds: gone (deletionTimestamp); None: still holds them

    def gpu_seconds(self, since: float, until: float) -> float:
        """GPU-seconds held within [since, until]."""
        end = until if self.end is None else min(self.end, until)
        return self.gpus * max(0.0, end - max(self.start, since))

    def cost(self, since: float, until: float) -> float:
        """USD of the GPU time held within [since, until]."""
        return self.gpu_seconds(since, until) * self.usd_per_gpu_hour / SECONDS_PER_HOUR


@dataclass(frozen=True)
class Spend:
    """USD spent up to `until` (unix seconds): the watermark and its amount, written together."""

    until: float
    usd: float = 0.0


def accrue(intervals: Iterable[PodInterval], previous: Spend | None, now: float) -> Spend:
    """Spend up to `now`: `previous` plus the GPU time after its watermark.

    Without a previous watermark (a new deployment) every interval counts from its start.
    A clock behind the watermark (another leader's skewed clock) adds nothing and keeps the
    watermark, so a later accrual resumes where counting stopped. A pod listed twice (say from
    the watch and from the caller's list of pods gone since the last accrual) counts once.
    """
    if previous is not None and now <= previous.until:
        return previous
    since = previous.until if previous is not None else -math.inf
    usd = previous.usd if previous is not None else 0.0
    return Spend(now, usd + window_cost(intervals, since, now))


def unique(intervals: Iterable[PodInterval]) -> list[PodInterval]:
    """One interval per pod uid, preferring one that knows its end; empty uids are kept."""
    by_uid: dict[str, PodInterval] = {}
    anonymous: list[PodInterval] = []
    for interval in intervals:
        if not interval.uid:
            anonymous.append(interval)
            continue
        seen = by_uid.get(interval.uid)
        if seen is None or (seen.end is None and interval.end is not None):
            by_uid[interval.uid] = interval
    return [*by_uid.values(), *anonymous]


def window_cost(intervals: Iterable[PodInterval], since: float, until: float) -> float:
    """USD of the GPU time held within [since, until], e.g. the last hour for $/1M tokens."""
    return sum(interval.cost(since, until) for interval in unique(intervals))


def window_gpu_hours(intervals: Iterable[PodInterval], since: float, until: float) -> float:
    seconds = sum(interval.gpu_seconds(since, until) for interval in unique(intervals))
    return seconds / SECONDS_PER_HOUR


def kube_time(value: str) -> float:
    """Unix seconds of an API server timestamp (RFC 3339, e.g. 2026-11-28T12:00:00Z)."""
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def pod_interval(pod: Mapping[str, Any], usd_per_gpu_hour: float) -> PodInterval | None:
    """A pod's GPU interval from its own timestamps; None while it holds no GPU.

    Start: the PodScheduled condition's lastTransitionTime (bound to the node), else the
    creationTimestamp. End: the deletionTimestamp (the request time plus the grace period, so a
    pod that stops sooner is counted up to its grace period too long; 30 s by default).
    """
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    gpus = pod_gpus(pod)
    if not spec.get("nodeName") or gpus <= 0:
        return None
    scheduled = [
        condition
        for condition in (pod.get("status") or {}).get("conditions") or []
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True"
    ]
    start = (scheduled[0].get("lastTransitionTime") if scheduled else None) or metadata.get(
        "creationTimestamp"
    )
    if not start:
        return None
    deleted = metadata.get("deletionTimestamp")
    return PodInterval(
        uid=str(metadata.get("uid", "")),
        gpus=gpus,
        usd_per_gpu_hour=usd_per_gpu_hour,
        start=kube_time(str(start)),
        end=kube_time(str(deleted)) if deleted else None,
    )
