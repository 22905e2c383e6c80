"""The autoscaler: one daemon per ModelDeployment with maxReplicas, writing only the replica count.

Every autoscaling.intervalSeconds it scrapes the ready pods' /metrics, asks the pure policy for
a count and, when that changes, records it in status (desiredReplicas, lastScaleTime, reason, an
Event) and reconciles, which sizes the Deployment from status. Only the leader runs handlers at
all (modelfleet.handlers.main); the policy state lives in memory, so a restarted or newly
elected instance starts fresh, and the policy never scales down before it has watched a whole
scale-down window.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf
from pydantic import ValidationError

from modelfleet.api.types import API_VERSION, GROUP, KIND, PLURAL, VERSION, ModelDeployment
from modelfleet.autoscale.count import replica_count
from modelfleet.autoscale.policy import AutoscalerState, Limits, LoadSample, decide
from modelfleet.handlers import metrics
from modelfleet.handlers.modeldeployment import reconcile, record_scale, serial
from modelfleet.kube.client import Kube, NotLeader
from modelfleet.plan.prices import PriceSheet
from modelfleet.render.children import selector_string
from modelfleet.render.engines import profile
from modelfleet.scrape import scrape_loads
from modelfleet.status import unplaceable

log = logging.getLogger(__name__)


@kopf.daemon(
    GROUP, VERSION, PLURAL, field="spec.maxReplicas", value=kopf.PRESENT, cancellation_timeout=10
)
async def autoscale(
    stopped: kopf.DaemonStopped, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """An asyncio task per autoscaled deployment: it sleeps in the event loop, and its scrape
    and writes take a pooled thread only under the object's lock, like every other handler."""
    key = (namespace or "default", name)
    state: AutoscalerState | None = None
    while not stopped:
        started = time.monotonic()
        try:
            state, interval = await serial.run(key, tick, memo.kube, *key, memo.prices, state)
        except NotLeader:
            state, interval = None, DEFAULT_INTERVAL  # forget what we saw: stale when we lead
        except Exception as error:  # one failed interval (API down, a bug) must not end the daemon
            log.warning("%s/%s: autoscaler interval failed: %s", *key, error)
            interval = DEFAULT_INTERVAL
        if interval is None:
            return  # the ModelDeployment is gone
        await stopped.wait(max(0.0, interval - (time.monotonic() - started)))


DEFAULT_INTERVAL = 10.0


def tick(
    kube: Kube, namespace: str, name: str, prices: PriceSheet, state: AutoscalerState | None
) -> tuple[AutoscalerState | None, float | None]:
    """One interval on a fresh read: the state to carry, and seconds to the next (None: gone)."""
    body = kube.get(API_VERSION, KIND, name, namespace)
    if body is None:
        return None, None
    try:
        md = ModelDeployment.from_body(body)
    except ValidationError:
        return state, DEFAULT_INTERVAL  # reconcile reports it
    if md.spec.max_replicas is None:
        return None, DEFAULT_INTERVAL
    interval = float(md.spec.autoscaling_or_default.interval_seconds)
    state = step(kube, md, prices, state)
    metrics.AUTOSCALER_LAST_DECISION.labels(namespace, name).set(time.time())
    return state, interval


def step(
    kube: Kube,
    md: ModelDeployment,
    prices: PriceSheet,
    state: AutoscalerState | None,
) -> AutoscalerState | None:
    """One observation and decision; returns the policy state to carry to the next."""
    if md.status.placement is None or unplaceable(md):
        return state  # nothing runs, nothing to scale
    count = replica_count(md.spec, md.status)
    if count.manual_scale:
        return None  # the reconcile takes the manual count first; start observing afresh
    sample = observe(kube, md)
    decision = decide(
        md.spec.autoscaling_or_default, Limits.from_spec(md.spec), count.replicas, sample, state
    )
    if decision.changed:
        log.info("%s/%s: %s", md.metadata.namespace, md.metadata.name, decision.reason)
        namespace, name = md.metadata.namespace, md.metadata.name
        if record_scale(kube, namespace, name, decision.replicas, decision.reason):
            reconcile(kube, namespace, name, prices, raise_on_invalid=False)
    return decision.state


def observe(kube: Kube, md: ModelDeployment) -> LoadSample:
    """Load of the ready pods; pods still loading the model count as starting."""
    pods = [
        pod
        for pod in kube.list("v1", "Pod", md.metadata.namespace, label_selector=selector_string(md))
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
    ]
    ready_ips = [str((pod.get("status") or {}).get("podIP")) for pod in pods if _ready(pod)]
    loads = scrape_loads(ready_ips, profile(md.spec.engine))
    return LoadSample(
        time=time.monotonic(),
        pods=tuple(load for load in loads if load is not None),
        unknown=sum(1 for load in loads if load is None),
        starting=len(pods) - len(ready_ips),
    )


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
