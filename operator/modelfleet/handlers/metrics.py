"""The operator's one Prometheus registry and its series, served on /metrics (endpoints.py).

Per-object series carry namespace and name and are removed with the object, and all of them when
this instance stops leading (a standby reports no object). Later features add their series here.
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
CHILD_APPLIES = Counter(
    "modelfleet_child_applies",
    "Server-side applies of children (Deployment, Service) that differed from what the watch "
    "last saw; zero in steady state.",
    ["kind"],
    registry=REGISTRY,
)
PERIODIC_RUNNING = Gauge(
    "modelfleet_periodic_work_running",
    "Resyncs and autoscaler intervals in flight (capped; due work beyond the cap waits).",
    registry=REGISTRY,
)
PERIODIC_WAITING = Gauge(
    "modelfleet_periodic_work_waiting",
    "Resyncs and autoscaler intervals due but not started yet (the cap on work in flight is "
    "reached): the queue of pending work.",
    registry=REGISTRY,
)
HANDLER_ERRORS = Counter(
    "modelfleet_handler_errors",
    "Unexpected failures of work other than reconciles (those count in "
    'modelfleet_reconciles_total{result="error"}), by handler: autoscaler, scrape, '
    "child-event (a status refresh after a Deployment or Pod event).",
    ["handler"],
    registry=REGISTRY,
)
ENGINE_SCRAPES = Counter(
    "modelfleet_engine_scrapes",
    "Scrapes of engine pods' /metrics by result: ok, or unknown (no answer in time, an error "
    "status, or not the engine's metrics).",
    ["result"],
    registry=REGISTRY,
)
ENGINE_PODS_SCRAPED = Gauge(
    "modelfleet_engine_pods_scraped",
    "Engine pods being scraped (Running, Ready, with an IP; on the leader only).",
    registry=REGISTRY,
)
ENGINE_SCRAPE_SECONDS = Histogram(
    "modelfleet_engine_scrape_duration_seconds",
    "Time of one scrape of one engine pod, waiting for a pooled connection included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5),
    registry=REGISTRY,
)
# Series that exist from the start, at 0, so rates and alerts see them before the first event.
for _result in ("ok", "unknown"):
    ENGINE_SCRAPES.labels(_result)
for _handler in ("autoscaler", "scrape", "child-event"):
    HANDLER_ERRORS.labels(_handler)
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


def stopped_leading() -> None:
    """kopf stopped: drop every per-object series (the next leader reports them; objects
    deleted meanwhile would never be forgotten here) and zero the work in flight."""
    AUTOSCALER_LAST_DECISION.clear()
    PERIODIC_RUNNING.set(0)
    PERIODIC_WAITING.set(0)
