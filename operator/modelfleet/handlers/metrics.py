"""The operator's one Prometheus registry and its series, served on /metrics (endpoints.py).

Per-object series carry namespace and name and are removed with the object.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "modelfleet_reconciles",
    "Reconciles of ModelDeployments by trigger and result (ok, error).",
    ["trigger", "result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "modelfleet_reconcile_duration_seconds",
    "Time of one reconcile, lock wait excluded.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
PERIODIC_RUNNING = Gauge(
    "modelfleet_periodic_work_running",
    "Resyncs and autoscaler intervals in flight (capped; due work beyond the cap waits).",
    registry=REGISTRY,
)
AUTOSCALER_LAST_DECISION = Gauge(
    "modelfleet_autoscaler_last_decision_timestamp_seconds",
    "Unix time of the autoscaler's last decision (hold or scale) for a ModelDeployment.",
    ["namespace", "name"],
    registry=REGISTRY,
)


def forget(namespace: str, name: str) -> None:
    """Drop a deleted object's series."""
    with contextlib.suppress(KeyError):
        AUTOSCALER_LAST_DECISION.remove(namespace, name)
