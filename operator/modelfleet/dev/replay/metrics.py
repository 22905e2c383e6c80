"""What a run is judged on: GPU-hours, cost, SLO attainment and TTFT percentiles.

- gpuHours = replica-seconds x GPUs per replica / 3600 (a replica costs from its creation,
  while it loads, until it stops or has drained).
- costUsd = replica-hours x the placement's hourly cost per replica.
- sloAttainment = requests with TTFT <= the SLO / all requests (an unserved request misses).
- p50/p95/p99 TTFT: nearest rank (the ceil(q x n)-th smallest); an unserved request counts as
  infinitely slow (null in JSON, "inf" in the table).
- maxReplicas: the highest count the policy asked for (ready + loading); meanReplicas:
  replica-seconds / simulated seconds (loading and draining replicas included, as they cost);
  scaleEvents: changes of the count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from modelfleet.dev.replay.fleet import Outcome, ScaleChange


@dataclass(frozen=True)
class Result:
    policy: str
    requests: int
    slo_seconds: float
    gpu_hours: float
    cost_usd: float | None
    slo_attainment: float
    p50_ttft: float
    p95_ttft: float
    p99_ttft: float
    max_replicas: int
    mean_replicas: float
    scale_events: int
    unserved: int
    simulated_seconds: float
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    changes: tuple[ScaleChange, ...] = ()  # the scale log; not in as_dict()

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "gpuHours": round(self.gpu_hours, 4),
            "costUsd": None if self.cost_usd is None else round(self.cost_usd, 4),
            "sloAttainment": round(self.slo_attainment, 5),
            "sloSeconds": self.slo_seconds,
            "p50TtftSeconds": _finite(self.p50_ttft),
            "p95TtftSeconds": _finite(self.p95_ttft),
            "p99TtftSeconds": _finite(self.p99_ttft),
            "maxReplicas": self.max_replicas,
            "meanReplicas": round(self.mean_replicas, 3),
            "scaleEvents": self.scale_events,
            "requests": self.requests,
            "unservedRequests": self.unserved,
            "simulatedSeconds": round(self.simulated_seconds, 3),
            "wallSeconds": round(self.wall_seconds, 3),
            **self.extra,
        }


def _finite(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest rank: the ceil(q x n)-th smallest value (q in (0, 1])."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values) - 1e-9))
    return sorted_values[rank - 1]


def attainment(ttft: Sequence[float | None], slo_seconds: float) -> float:
    if not ttft:
        return 1.0
    met = sum(1 for t in ttft if t is not None and t <= slo_seconds + 1e-9)
    return met / len(ttft)


def summarize(
    policy: str,
    outcome: Outcome,
    *,
    slo_seconds: float,
    gpus_per_replica: int,
    hourly_cost: float | None,
    wall_seconds: float,
    extra: dict[str, Any] | None = None,
) -> Result:
    values = sorted(math.inf if t is None else t for t in outcome.ttft)
    replica_hours = outcome.replica_seconds / 3600
    end = outcome.end_time
    return Result(
        policy=policy,
        requests=len(outcome.ttft),
        slo_seconds=slo_seconds,
        gpu_hours=replica_hours * gpus_per_replica,
        cost_usd=None if hourly_cost is None else replica_hours * hourly_cost,
        slo_attainment=attainment(outcome.ttft, slo_seconds),
        p50_ttft=percentile(values, 0.50),
        p95_ttft=percentile(values, 0.95),
        p99_ttft=percentile(values, 0.99),
        max_replicas=outcome.max_replicas,
        mean_replicas=outcome.replica_seconds / end if end > 0 else 0.0,
        scale_events=outcome.scale_events,
        unserved=sum(1 for t in outcome.ttft if t is None),
        simulated_seconds=end,
        wall_seconds=wall_seconds,
        extra=dict(extra or {}),
        changes=tuple(outcome.changes),
    )
