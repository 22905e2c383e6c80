"""The autoscaler of each ModelDeployment with maxReplicas, writing only the replica count.

Every autoscaling.intervalSeconds it reads the ready pods' latest engine samples (each engine
pod's scrape loop, handlers/scrapes.py, scrapes it at least that often), asks the pure policy for
a count and, when that changes, records it in status (desiredReplicas, lastScaleTime, reason, an
Event) and reconciles, which sizes the Deployment from status. Only the leader runs handlers at
all (modelfleet.handlers.main); the policy state lives in memory, so a restarted or newly
elected instance starts fresh, and the policy never scales down before it has watched a whole
scale-down window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

import kopf
from pydantic import ValidationError

from modelfleet.api.types import (
    API_VERSION,
    KIND,
    AutoscalingStatus,
    ModelDeployment,
    PlacementStatus,
)
from modelfleet.autoscale.budget import within_budget
from modelfleet.autoscale.count import budget_min_replicas, replica_count
from modelfleet.autoscale.policy import AutoscalerState, Decision, Limits, LoadSample, decide
from modelfleet.autoscale.startup import measured_startup
from modelfleet.cost.budget import Budget
from modelfleet.handlers import budgets, metrics, scrapes
from modelfleet.handlers.budgets import Key
from modelfleet.handlers.cache import ClusterView
from modelfleet.handlers.modeldeployment import (
    reconcile,
    record_autoscaling,
    record_scale,
    serial,
)
from modelfleet.kube.client import Kube, NotLeader
from modelfleet.plan.prices import PriceSheet
from modelfleet.render.children import serving
from modelfleet.status.autoscaling import autoscaling_status
from modelfleet.status.conditions import unplaceable
from modelfleet.status.cost import rfc3339

log = logging.getLogger(__name__)


async def run_interval(
    memo: kopf.Memo, key: tuple[str, str], state: AutoscalerState | None
) -> tuple[AutoscalerState | None, float | None]:
    """One autoscaler interval of one deployment under its lock (handlers/schedule.py calls it):
    it waits in the event loop and takes a pooled thread only for its API calls."""
    try:
        async with serial.lock(key):
            return await interval_step(memo, key, state)
    except NotLeader:
        return None, DEFAULT_INTERVAL  # forget what we saw: stale when we lead again
    except Exception:
        metrics.HANDLER_ERRORS.labels("autoscaler").inc()
        raise


DEFAULT_INTERVAL = 10.0


async def interval_step(
    memo: kopf.Memo, key: tuple[str, str], state: AutoscalerState | None
) -> tuple[AutoscalerState | None, float | None]:
    """One interval on a fresh read: the state to carry, and seconds to the next (None: gone)."""
    kube: Kube = memo.kube
    looked = await asyncio.to_thread(look, kube, *key)
    if looked is None:
        scrapes.loops.pace(key, None)
        return None, None
    if isinstance(looked, float):
        scrapes.loops.pace(key, None)
        budgets.forget(key)
        return None, looked  # not autoscaled now, or reconcile reports an invalid spec
    md = looked
    view = ClusterView.take(memo.indexes, key)  # the loop owns kopf's indexes: read here
    pods = [p for p in view.own_pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    interval = float(md.spec.autoscaling_or_default.interval_seconds)
    scrapes.loops.pace(key, interval)  # samples at least as fresh as the decisions
    placement = md.status.placement
    budget = None if placement is None else view.budget_of(md, placement)
    count = replica_count(md.spec, md.status, budget)
    if count.manual_scale:
        budgets.forget(key)
        state = None  # the reconcile takes the manual count first; start observing afresh
    elif placement is not None and budget is not None and not unplaceable(md):
        sample = observe(scrapes.samples, pods, time.monotonic())
        decision = decide(
            md.spec.autoscaling_or_default, Limits.from_spec(md.spec), count.replicas, sample, state
        )
        view, budget = _wanting(view, md, placement, key, decision.replicas)
        minimum = budget_min_replicas(md.spec)
        capped = within_budget(decision, budget, minimum, count.replicas, state)
        block = autoscaling_status(md.status.autoscaling, capped, rfc3339(time.time()))
        if capped.changed:
            await asyncio.to_thread(apply_decision, view, kube, memo.prices, md, capped, block)
        else:
            if block != md.status.autoscaling:
                # The count holds; the recommendation or the rule holding it changed.
                await asyncio.to_thread(record_autoscaling, kube, *key, block)
            if budget.applies and budget.cap(decision.replicas, minimum).limited != _limited(md):
                # The count holds but the budget's verdict on what the autoscaler wants
                # changed: the reconcile rewrites BudgetLimited.
                await asyncio.to_thread(
                    reconcile, view, kube, *key, memo.prices, raise_on_invalid=False
                )
        state = capped.state
    metrics.AUTOSCALER_LAST_DECISION.labels(*key).set(time.time())
    return state, interval


def _wanting(
    view: ClusterView, md: ModelDeployment, placement: PlacementStatus, key: Key, wanted: int
) -> tuple[ClusterView, Budget]:
    """Remember what the autoscaler wants before any budget (namespace shares read it), and
    the view and budget that see it."""
    budgets.wants[key] = wanted
    inputs = replace(view.budget, wants={**view.budget.wants, key[1]: wanted})
    view = replace(view, budget=inputs)
    return view, view.budget_of(md, placement)


def _limited(md: ModelDeployment) -> bool:
    condition = md.status.condition("BudgetLimited")
    return condition is not None and condition.status == "True"


def look(kube: Kube, namespace: str, name: str) -> ModelDeployment | float | None:
    """The deployment, read afresh; seconds to wait when there is nothing to scale, None when it
    is gone."""
    body = kube.get(API_VERSION, KIND, name, namespace)
    if body is None:
        return None
    try:
        md = ModelDeployment.from_body(body)
    except ValidationError:
        return DEFAULT_INTERVAL
    if md.spec.max_replicas is None:
        return DEFAULT_INTERVAL
    return md


def apply_decision(
    view: ClusterView,
    kube: Kube,
    prices: PriceSheet,
    md: ModelDeployment,
    decision: Decision,
    block: AutoscalingStatus | None = None,
) -> None:
    """Record the new count in status (with an Event), then size the Deployment from it."""
    namespace, name = md.metadata.namespace, md.metadata.name
    log.info("%s/%s: %s", namespace, name, decision.reason)
    if record_scale(kube, namespace, name, decision.replicas, decision.reason, block):
        reconcile(view, kube, namespace, name, prices, raise_on_invalid=False)


def observe(samples: scrapes.Samples, pods: list[dict[str, Any]], now: float) -> LoadSample:
    """Load of the serving pods from their latest samples; a serving pod without a fresh answer
    is unknown, and pods still loading the model count as starting. The pods' measured start-up
    (creation to Ready) is the policy's lead time."""
    answering = [pod for pod in pods if serving(pod)]
    loads = [samples.load(pod, now) for pod in answering]
    return LoadSample(
        time=now,
        pods=tuple(load for load in loads if load is not None),
        unknown=sum(1 for load in loads if load is None),
        starting=len(pods) - len(answering),
        startup_seconds=measured_startup(pods),
    )
