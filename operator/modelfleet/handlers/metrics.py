"""The operator's one Prometheus registry and its series, served on /metrics (endpoints.py).

Per-object series carry namespace and name and are removed with the object, and all of them when
this instance stops leading (a standby reports no object). Later features add their series here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelfleet.cost import NodePrice
from modelfleet.plan.inventory import GPU_RESOURCE

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
    "child-event (a status refresh after a Deployment or Pod event), cost (the cluster cost loop).",
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
for _handler in ("autoscaler", "scrape", "child-event", "cost"):
    HANDLER_ERRORS.labels(_handler)
AUTOSCALER_LAST_DECISION = Gauge(
    "modelfleet_autoscaler_last_decision_timestamp_seconds",
    "Unix time of the autoscaler's last decision (hold or scale) for a ModelDeployment.",
    ["namespace", "name"],
    registry=REGISTRY,
)


# Cost (docs/cost.md). Per deployment: labels namespace and name; USD throughout. A thousand
# deployments with a dozen series each as prometheus_client children would hold ~9 MB of
# objects (one lock each); the collector below keeps one small tuple per deployment instead and
# writes the series when scraped.


@dataclass(frozen=True)
class DeploymentCost:
    """One deployment's cost series, as of its last reconcile or status refresh."""

    hourly: float
    spend: float
    replicas: int
    gpus: int
    compare_to: str
    api_price: tuple[float, float]  # USD per 1M input, output tokens
    tokens: tuple[float, float] | None = None  # input, output
    per_million: tuple[float | None, float] | None = None  # output, total
    api_equivalent: float | None = None
    idle_gpu_hours: float | None = None
    budget: float | None = None


class CostCollector(Collector):
    """The per-deployment cost series from one dict, written out at each scrape."""

    def __init__(self) -> None:
        self.deployments: dict[tuple[str, str], DeploymentCost] = {}

    def collect(self) -> Iterator[Metric]:
        labels = ["namespace", "name"]
        families = {
            "hourly": GaugeMetricFamily(
                "modelfleet_deployment_hourly_cost_usd",
                "USD per hour now of a ModelDeployment's pods that hold GPUs (loading and surge "
                "included).",
                labels=labels,
            ),
            "spend": GaugeMetricFamily(
                "modelfleet_deployment_spend_usd",
                "USD accrued by a ModelDeployment since status.cost.spendSince (fresher than its "
                "status).",
                labels=labels,
            ),
            "tokens": GaugeMetricFamily(
                "modelfleet_deployment_tokens",
                "Tokens a ModelDeployment served to date, by direction (input, output); restarts "
                "of engines and of the operator do not reset it.",
                labels=[*labels, "direction"],
            ),
            "per_million": GaugeMetricFamily(
                "modelfleet_deployment_cost_per_million_tokens_usd",
                "USD per 1M tokens over the last hour, by kind: output (per output token) or "
                "total.",
                labels=[*labels, "kind"],
            ),
            "api_price": GaugeMetricFamily(
                "modelfleet_deployment_api_price_per_million_tokens_usd",
                "The compared hosted API's USD per 1M tokens, by direction (input, output).",
                labels=[*labels, "compare_to", "direction"],
            ),
            "api_equivalent": GaugeMetricFamily(
                "modelfleet_deployment_api_equivalent_usd",
                "What the tokens served to date would have cost on the compared hosted API.",
                labels=[*labels, "compare_to"],
            ),
            "idle": GaugeMetricFamily(
                "modelfleet_deployment_idle_gpu_hours",
                "GPU-hours over the last hour of a ModelDeployment's replicas that served no "
                "token.",
                labels=labels,
            ),
            "replicas": GaugeMetricFamily(
                "modelfleet_deployment_replicas",
                "Pods of a ModelDeployment that hold GPUs now.",
                labels=labels,
            ),
            "gpus": GaugeMetricFamily(
                "modelfleet_deployment_gpus",
                "GPUs a ModelDeployment's pods hold now.",
                labels=labels,
            ),
            "budget": GaugeMetricFamily(
                "modelfleet_deployment_budget_hourly_usd",
                "spec.budget.maxHourly of a ModelDeployment (absent without a budget).",
                labels=labels,
            ),
        }
        for (namespace, name), cost in list(self.deployments.items()):
            key = [namespace, name]
            families["hourly"].add_metric(key, cost.hourly)
            families["spend"].add_metric(key, cost.spend)
            families["replicas"].add_metric(key, cost.replicas)
            families["gpus"].add_metric(key, cost.gpus)
            for direction, usd in zip(("input", "output"), cost.api_price, strict=True):
                families["api_price"].add_metric([*key, cost.compare_to, direction], usd)
            if cost.tokens is not None:
                for direction, count in zip(("input", "output"), cost.tokens, strict=True):
                    families["tokens"].add_metric([*key, direction], count)
            if cost.per_million is not None:
                output, total = cost.per_million
                families["per_million"].add_metric([*key, "total"], total)
                if output is not None:
                    families["per_million"].add_metric([*key, "output"], output)
            if cost.api_equivalent is not None:
                families["api_equivalent"].add_metric([*key, cost.compare_to], cost.api_equivalent)
            if cost.idle_gpu_hours is not None:
                families["idle"].add_metric(key, cost.idle_gpu_hours)
            if cost.budget is not None:
                families["budget"].add_metric(key, cost.budget)
        yield from families.values()


DEPLOYMENT_COSTS = CostCollector()
REGISTRY.register(DEPLOYMENT_COSTS)


@dataclass(frozen=True)
class LatencySLO:
    """One latency target of one deployment, as of its last status computation."""

    target: float
    measured_at: float | None  # the histogram bound it is measured at
    attainment: float | None
    count: int


class SLOCollector(Collector):
    """Per-deployment SLO series (docs/autoscaling.md), one small tuple per deployment."""

    def __init__(self) -> None:
        self.deployments: dict[tuple[str, str], dict[str, LatencySLO]] = {}

    def collect(self) -> Iterator[Metric]:
        labels = ["namespace", "name", "latency"]
        attainment = GaugeMetricFamily(
            "modelfleet_deployment_slo_attainment",
            "Share of the last hour's requests (latency=ttft) or output tokens (tpot) within "
            "the histogram bound `le` (the largest the engine exports not above the target); "
            "absent when unknown or nothing was served.",
            labels=[*labels, "le"],
        )
        target = GaugeMetricFamily(
            "modelfleet_deployment_slo_target_seconds",
            "spec.slo's target by latency (ttft, tpot).",
            labels=labels,
        )
        count = GaugeMetricFamily(
            "modelfleet_deployment_slo_observations",
            "Requests (ttft) or output token gaps (tpot) the engines timed in the last hour.",
            labels=labels,
        )
        for (namespace, name), latencies in list(self.deployments.items()):
            for latency, slo in latencies.items():
                key = [namespace, name, latency]
                target.add_metric(key, slo.target)
                if slo.measured_at is not None:
                    count.add_metric(key, slo.count)
                    if slo.attainment is not None:
                        attainment.add_metric([*key, f"{slo.measured_at:g}"], slo.attainment)
        yield from (attainment, target, count)


DEPLOYMENT_SLOS = SLOCollector()
REGISTRY.register(DEPLOYMENT_SLOS)
NAMESPACE_BUDGET_HOURLY = Gauge(
    "modelfleet_namespace_budget_hourly_usd",
    "A namespace's budget, USD per hour over its ModelDeployments (absent without one).",
    ["namespace"],
    registry=REGISTRY,
)
NODE_GPU_HOURLY = Gauge(
    "modelfleet_node_gpu_hourly_cost_usd",
    "USD per GPU-hour of a GPU node (its annotation, else the price sheet).",
    ["node", "gpu"],
    registry=REGISTRY,
)
CLUSTER_HOURLY = Gauge(
    "modelfleet_cluster_gpu_hourly_cost_usd",
    "USD per hour of the cluster's GPUs by allocation: modelfleet, other (other pods), idle.",
    ["allocation"],
    registry=REGISTRY,
)
CLUSTER_GPUS = Gauge(
    "modelfleet_cluster_gpus",
    "The cluster's GPUs by allocation: modelfleet, other (other pods), idle.",
    ["allocation"],
    registry=REGISTRY,
)
# OpenCost's names, opt-in (`modelfleet run --opencost-metrics`): a cluster that also runs
# OpenCost would count the same GPUs twice.
OPENCOST_NODE_GPU_HOURLY = Gauge(
    "node_gpu_hourly_cost",
    "USD per GPU-hour of a node (OpenCost's name, published by modelfleet).",
    ["node", "instance_type"],
    registry=REGISTRY,
)
OPENCOST_CONTAINER_GPUS = Gauge(
    "container_gpu_allocation",
    "GPUs allocated to a container of a modelfleet engine pod (OpenCost's name).",
    ["namespace", "pod", "container", "node"],
    registry=REGISTRY,
)


def publish_opencost(prices: Iterable[NodePrice], engine_pods: Iterable[Mapping[str, Any]]) -> None:
    """Every priced GPU node's price and every engine container's GPUs, under OpenCost's names."""
    OPENCOST_NODE_GPU_HOURLY.clear()
    for price in prices:
        if price.usd_per_gpu_hour is not None:
            OPENCOST_NODE_GPU_HOURLY.labels(price.node, price.product or "").set(
                price.usd_per_gpu_hour
            )
    OPENCOST_CONTAINER_GPUS.clear()
    for pod in engine_pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if not spec.get("nodeName") or meta.get("deletionTimestamp"):
            continue
        for container in spec.get("containers") or []:
            limits = (container.get("resources") or {}).get("limits") or {}
            gpus = int(limits.get(GPU_RESOURCE) or 0)
            if gpus:
                OPENCOST_CONTAINER_GPUS.labels(
                    meta.get("namespace"), meta.get("name"), container.get("name"), spec["nodeName"]
                ).set(gpus)


def forget(namespace: str, name: str) -> None:
    """Drop a deleted object's series."""
    forget_autoscaler(namespace, name)
    DEPLOYMENT_COSTS.deployments.pop((namespace, name), None)
    DEPLOYMENT_SLOS.deployments.pop((namespace, name), None)


def forget_autoscaler(namespace: str, name: str) -> None:
    """Drop the autoscaler's series of an object (autoscaling turned off); its cost and SLO
    series stay."""
    with contextlib.suppress(KeyError):
        AUTOSCALER_LAST_DECISION.remove(namespace, name)


def stopped_leading() -> None:
    """kopf stopped: drop every per-object series (the next leader reports them; objects
    deleted meanwhile would never be forgotten here) and zero the work in flight."""
    AUTOSCALER_LAST_DECISION.clear()
    DEPLOYMENT_COSTS.deployments.clear()
    DEPLOYMENT_SLOS.deployments.clear()
    for gauge in (
        NAMESPACE_BUDGET_HOURLY,
        NODE_GPU_HOURLY,
        CLUSTER_HOURLY,
        CLUSTER_GPUS,
        OPENCOST_NODE_GPU_HOURLY,
        OPENCOST_CONTAINER_GPUS,
    ):
        gauge.clear()
    PERIODIC_RUNNING.set(0)
    PERIODIC_WAITING.set(0)
