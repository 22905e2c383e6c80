"""status.cost of one ModelDeployment, from its pods, node prices and token counts (pure).

The handlers observe (pods from the watch, counters from the scrape loop, the clock) and call
`cost_status`; `written_cost` then decides which of the fresh values reach the API server: the
hourly cost follows the pods at once, the time-based fields (spend, tokens and what derives from
them) at most every `period` seconds unless something else is written anyway (docs/cost.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelfleet.api.types import (
    ApiEquivalentStatus,
    CostStatus,
    ModelDeployment,
    PerMillionTokens,
    TokenCounts,
)
from modelfleet.catalog.models import ModelArch, default_models
from modelfleet.cost import (
    ApiPrice,
    ApiPriceTable,
    GpuPod,
    NodePrice,
    PodInterval,
    Replica,
    Spend,
    Tokens,
    accrue,
    api_equivalent,
    compare_to,
    hourly_cost,
    kube_time,
    last_hour,
    pod_interval,
    window_cost,
)
from modelfleet.plan.inventory import pod_gpus
from modelfleet.plan.request import request_from_manifest

# Time-based fields: written at most every WRITE_PERIOD_SECONDS in steady state.
WRITE_PERIOD_SECONDS = 300.0
TIME_BASED = ("spend", "accruedUntil", "tokens", "perMillionTokens", "idleGpuHours")


def rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_intervals(
    pods: Sequence[Mapping[str, Any]], prices: Mapping[str, NodePrice]
) -> list[PodInterval]:
    """The GPU interval of every pod bound to a node, at its node's price (unpriced: 0)."""
    intervals = []
    for pod in pods:
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        price = prices.get(node)
        usd = price.usd_per_gpu_hour if price is not None else None
        interval = pod_interval(pod, usd or 0.0)
        if interval is not None:
            intervals.append(interval)
    return intervals


@dataclass(frozen=True)
class CostInputs:
    """What the operator observed of one deployment, at `now` (unix seconds, whole)."""

    now: float
    pods: Sequence[Mapping[str, Any]]  # the deployment's pods as the watch sees them
    ended: Sequence[PodInterval]  # pods gone since the watermark (or within the hour)
    prices: Mapping[str, NodePrice]
    new_tokens: Tokens | None  # served since the tokens in status; None: never scraped
    replicas: Sequence[Replica]  # for the last hour: intervals and cumulative token samples
    observing_since: float  # counters are known since then (this leader's start)
    compare_to: ApiPrice
    late: Sequence[PodInterval] = ()  # bound before the watermark, seen after it: not yet counted


def cost_status(previous: CostStatus | None, seen: CostInputs) -> CostStatus:
    """The cost block with every field fresh as of `seen.now`."""
    pods = [
        GpuPod(str((p.get("spec") or {}).get("nodeName") or ""), pod_gpus(p))
        for p in seen.pods
        if (p.get("spec") or {}).get("nodeName")
    ]
    hourly = hourly_cost(pods, seen.prices)
    intervals = [*pod_intervals(seen.pods, seen.prices), *seen.ended]
    watermark = _spend(previous)
    spend = accrue(intervals, watermark, seen.now)
    if watermark is not None and spend.until > watermark.until and seen.late:
        # Their time before the watermark, which the accrual that wrote it did not see.
        spend = Spend(spend.until, spend.usd + window_cost(seen.late, -math.inf, watermark.until))
    tokens = _tokens(previous, seen.new_tokens)
    hour = last_hour(seen.replicas, seen.now, seen.observing_since)
    starts = [interval.start for interval in intervals]
    since = previous.spend_since if previous and previous.spend_since else None
    return CostStatus(
        hourly=round(hourly.usd, 6),
        gpus=hourly.gpus,
        unpriced_gpus=hourly.unpriced_gpus or None,
        spend=round(spend.usd, 6),
        spend_since=since or rfc3339(min(starts, default=seen.now)),
        accrued_until=rfc3339(spend.until),
        tokens=tokens,
        per_million_tokens=(
            PerMillionTokens(
                output=_round(hour.per_million.output), total=round(hour.per_million.total, 6)
            )
            if hour.per_million is not None
            else None
        ),
        api_equivalent=_api_equivalent(tokens, seen.compare_to),
        idle_gpu_hours=(
            round(hour.idle_gpu_hours, 6)
            if any(replica.samples for replica in seen.replicas)
            else None
        ),
    )


def _spend(previous: CostStatus | None) -> Spend | None:
    if previous is None or not previous.accrued_until:
        return None
    return Spend(kube_time(previous.accrued_until), previous.spend)


def _tokens(previous: CostStatus | None, new: Tokens | None) -> TokenCounts | None:
    before = previous.tokens if previous is not None else None
    if new is None:
        return before
    base = before or TokenCounts()
    return TokenCounts(input=base.input + round(new.input), output=base.output + round(new.output))


def _api_equivalent(tokens: TokenCounts | None, row: ApiPrice) -> ApiEquivalentStatus:
    served = Tokens(float(tokens.input), float(tokens.output)) if tokens else Tokens()
    equivalent = api_equivalent(served, row)
    return ApiEquivalentStatus(
        usd=round(equivalent.usd, 6), compare_to=equivalent.compare_to, as_of=equivalent.as_of
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def written_cost(
    previous: CostStatus | None,
    fresh: CostStatus,
    now: float,
    period: float = WRITE_PERIOD_SECONDS,
    force: bool = False,
) -> CostStatus:
    """What to put in status: `fresh`, or `fresh` with the time-based fields as last written.

    Time-based fields are refreshed when `force` (a pod ended: its time must be counted while
    it is still known), or when more than `period` has passed since the watermark and one of
    them changed; times are whole seconds, so two such writes are always more than `period`
    apart. A field that appears (tokens after an engine's first scrape) waits too, so a settled
    deployment is not written when its engine first answers. Spend grows with every second,
    so a relative threshold would write a young deployment on every resync; the period alone
    bounds steady-state writes to one per deployment per `period`.
    """
    if previous is None or previous.accrued_until is None or force:
        return fresh
    elapsed = now - kube_time(previous.accrued_until)
    if (elapsed > period or elapsed < 0) and _changed(previous, fresh):
        return fresh
    return fresh.model_copy(
        update={
            "spend": previous.spend,
            "accrued_until": previous.accrued_until,
            "tokens": previous.tokens,
            "per_million_tokens": previous.per_million_tokens,
            "idle_gpu_hours": previous.idle_gpu_hours,
            "api_equivalent": (
                fresh.api_equivalent.model_copy(update={"usd": previous.api_equivalent.usd})
                if previous.api_equivalent is not None and fresh.api_equivalent is not None
                else fresh.api_equivalent
            ),
        }
    )


def refreshed(written: CostStatus | None, fresh: CostStatus) -> bool:
    """Whether `written` carries the fresh time-based fields (then the token counts in it are
    the ones to remember as written)."""
    return written is not None and written.accrued_until == fresh.accrued_until


def _time_based(cost: CostStatus) -> dict[str, Any]:
    dumped = cost.model_dump(by_alias=True, mode="json")
    return {key: dumped.get(key) for key in TIME_BASED}


def _changed(previous: CostStatus, fresh: CostStatus) -> bool:
    before, after = _time_based(previous), _time_based(fresh)
    before.pop("accruedUntil")
    after.pop("accruedUntil")
    return before != after


def model_arch(md: ModelDeployment) -> ModelArch | None:
    """The architecture that picks the default compareTo: inline, else the catalog's."""
    if md.spec.architecture is not None:
        spec = md.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
        return request_from_manifest({"spec": spec}).architecture
    return default_models().lookup(md.spec.model)


def comparison(md: ModelDeployment, table: ApiPriceTable) -> ApiPrice:
    """The hosted API row to compare with (ApiPriceError naming spec.cost.compareTo)."""
    requested = md.spec.cost.compare_to if md.spec.cost is not None else None
    return compare_to(requested, model_arch(md), table)
