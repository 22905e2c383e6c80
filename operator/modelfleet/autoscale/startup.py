"""How long this deployment's replicas take to start, from its pods' timestamps (pure).

A pod's start-up is the time from its creation (metadata.creationTimestamp) to its Ready
condition's lastTransitionTime. The policy uses the median of the most recent ones as its lead
time (autoscale/policy.py, LoadSample.startup_seconds): it covers scheduling, the image pull and
the model load, which is what a scale-up waits for. A pod that is not Ready yet tells nothing
(its start-up is not over); a Ready condition older than the pod's creation (clock skew, a
hand-made object) is ignored.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

RECENT_PODS = 5  # the median of this many most recently created Ready pods


def measured_startup(pods: Iterable[Mapping[str, Any]], recent: int = RECENT_PODS) -> float | None:
    """Median creation-to-Ready seconds of the `recent` newest Ready pods; None when none."""
    measured: list[tuple[datetime, float]] = []
    for pod in pods:
        created = _time((pod.get("metadata") or {}).get("creationTimestamp"))
        ready = _ready_since(pod)
        if created is None or ready is None or ready < created:
            continue
        measured.append((created, (ready - created).total_seconds()))
    if not measured:
        return None
    newest = sorted(measured, key=lambda item: item[0])[-max(recent, 1) :]
    return float(statistics.median(seconds for _, seconds in newest))


def _ready_since(pod: Mapping[str, Any]) -> datetime | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return _time(condition.get("lastTransitionTime"))
    return None


def _time(value: object) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it (or a datetime); None otherwise."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
