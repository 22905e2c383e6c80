"""kopf handlers for ModelDeployment: observe, call the pure core, apply, write status.

Level-based: create, resume, update and a periodic timer all run the same reconcile, and events
of the children (Deployment, Pods) refresh the owner's status so it follows reality within
seconds instead of a timer period.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import kopf
from kubernetes.dynamic.exceptions import ConflictError, DynamicApiError
from pydantic import ValidationError

from modelfleet.api.cache import CacheStatus
from modelfleet.api.errors import describe
from modelfleet.api.types import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    AutoscalingStatus,
    CostStatus,
    ModelDeployment,
    ModelDeploymentStatus,
    PlacementStatus,
    SLOStatus,
    own_status,
)
from modelfleet.cost import ApiPriceError, kube_time, node_prices
from modelfleet.handlers import costs, metrics, scrapes, slo
from modelfleet.handlers.cache import ClusterView, weights_key_of
from modelfleet.handlers.serial import PerObject
from modelfleet.kube.client import Kube, NotLeader
from modelfleet.kube.progress import read_progress
from modelfleet.perf.capacity import option_capacity
from modelfleet.plan.deployment import plan_deployment
from modelfleet.plan.inventory import Inventory, parse_inventory
from modelfleet.plan.prices import PriceSheet
from modelfleet.plan.request import PlanInputError
from modelfleet.render import cache as weights
from modelfleet.render.children import (
    MANAGED_BY,
    OWNER_LABEL,
    already_applied,
    children,
    selector_labels,
)
from modelfleet.status.cache import (
    cache_status,
    engines_may_start,
    job_state,
    node_fills,
    parse_progress,
    per_node_status,
    pod_failure,
    progress_to_read,
)
from modelfleet.status.conditions import (
    Observed,
    announcements,
    compute_status,
    invalid_spec_status,
    unanswered_pods,
    unplaceable,
)
from modelfleet.status.cost import CostInputs, comparison, cost_status, refreshed, written_cost
from modelfleet.status.slo import slo_announcements, slo_status, written_slo

log = logging.getLogger(__name__)


def _resync_seconds() -> float:
    """Timer period; kopf needs it when the handlers are registered, so it comes from the env."""
    raw = os.environ.get("MODELFLEET_RESYNC_SECONDS", "30")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0
    if not 1 <= seconds <= 3600:
        raise SystemExit(f"MODELFLEET_RESYNC_SECONDS: want seconds between 1 and 3600, got {raw!r}")
    return seconds


RESYNC_SECONDS = _resync_seconds()
CHILD_LABELS: Mapping[str, Any] = {
    "app.kubernetes.io/managed-by": MANAGED_BY,
    OWNER_LABEL: kopf.PRESENT,
}

# Every handler below runs its work through this: one piece of work per object at a time.
serial = PerObject()
# Ready pods whose scrapes fail this long are named in condition MetricsUnavailable.
METRICS_GRACE_SECONDS = 30.0
# A status write that lost a race re-reads and recomputes; beyond this, the next event does.
WRITE_ATTEMPTS = 3


def _key(body: kopf.Body) -> tuple[str, str]:
    return str(body.metadata.namespace), str(body.metadata.name)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def on_change(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    key = _key(body)
    await serial.run_seeing(
        key, seeing(memo, key), measured, "change", memo, *key, raise_on_invalid=True
    )


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@kopf.on.event("batch", "v1", "jobs", labels=CHILD_LABELS)
@kopf.on.event("", "v1", "pods", labels=CHILD_LABELS)
async def on_child_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Refresh the owner's status in a task, without waiting here for the owner's lock: while a
    handler waits, kopf keeps the child's events queued with their whole bodies, and in a burst
    of a thousand new deployments that held ~100 MB (issue 10). A refresh already waiting for
    the lock takes in later events (PerObject.refresh), so these tasks stay few."""
    key = (str(body.metadata.namespace), str(body.metadata.labels[OWNER_LABEL]))
    task = asyncio.create_task(_refresh(memo, key))
    refreshes.add(task)
    task.add_done_callback(refreshes.discard)


refreshes: set[asyncio.Task[None]] = set()  # strong references until each ends


async def _refresh(memo: kopf.Memo, key: tuple[str, str]) -> None:
    try:
        await serial.refresh(key, seeing(memo, key), refresh_status, memo.kube, *key, memo.prices)
    except NotLeader:
        pass  # leadership lost: the next leader refreshes from its own listing
    except DynamicApiError as error:  # the API refused or failed: the next event or resync retries
        metrics.HANDLER_ERRORS.labels("child-event").inc()
        log.warning("%s/%s: refreshing the status after a child's event failed: %s", *key, error)
    except Exception:  # a bug: with its traceback
        metrics.HANDLER_ERRORS.labels("child-event").inc()
        log.exception("%s/%s: refreshing the status after a child's event failed", *key)


async def stop_refreshes() -> None:
    """Leadership lost (kopf stopped): end the refreshes still waiting or running."""
    tasks = list(refreshes)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def seeing(memo: kopf.Memo, key: tuple[str, str]) -> Callable[[], ClusterView]:
    """What a reconcile of `key` reads of the cluster, taken from kopf's indexes when called."""
    return partial(ClusterView.take, memo.indexes, key)


def measured(
    view: ClusterView,
    trigger: str,
    memo: kopf.Memo,
    namespace: str,
    name: str,
    *,
    raise_on_invalid: bool,
) -> None:
    """reconcile, counted and timed on /metrics."""
    result = "error"
    with metrics.RECONCILE_SECONDS.time():
        try:
            reconcile(
                view, memo.kube, namespace, name, memo.prices, raise_on_invalid=raise_on_invalid
            )
            result = "ok"
        finally:
            metrics.RECONCILES.labels(trigger, result).inc()


def reconcile(
    view: ClusterView,
    kube: Kube,
    namespace: str,
    name: str,
    prices: PriceSheet,
    *,
    raise_on_invalid: bool,
) -> None:
    """Place the model, make the children match, then report how far reality is from it.

    Reads the object afresh (the caller holds its lock), so the newest spec is the one applied;
    the status is written over exactly the version it was computed from.
    """
    for _attempt in range(WRITE_ATTEMPTS):
        body = kube.get(API_VERSION, KIND, name, namespace)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return
        try:
            _reconcile_once(view, kube, body, prices, raise_on_invalid=raise_on_invalid)
            return
        except ConflictError:
            continue  # the object changed while we worked: read it again
    raise kopf.TemporaryError("the ModelDeployment kept changing; reconciling again", delay=2)


def _reconcile_once(
    view: ClusterView,
    kube: Kube,
    body: dict[str, Any],
    prices: PriceSheet,
    *,
    raise_on_invalid: bool,
) -> None:
    """One pass over one version of the object (ConflictError if it changed meanwhile)."""
    try:
        md = ModelDeployment.from_body(body)
    except ValidationError as error:
        _report_unplaceable(kube, body, describe(error), "InvalidSpec", raise_on_invalid)
        return
    try:
        comparison(md, costs.settings.api_prices)
    except ApiPriceError as error:
        _report_unplaceable(kube, body, str(error), "InvalidSpec", raise_on_invalid)
        return
    try:
        decision = plan_deployment(md, _inventory(view, md), prices, option_capacity)
    except PlanInputError as error:
        _report_unplaceable(kube, body, str(error), "InvalidSpec", raise_on_invalid)
        return
    if isinstance(decision, str):
        # Not permanent: nodes may be added; the periodic reconcile plans again.
        _report_unplaceable(kube, body, decision, "NoFeasiblePlacement", False)
        return
    cache = observe_cache(view, kube, md)
    ready = engines_may_start(md, cache)
    try:
        budget = view.budget_of(md, decision)
        for child in children(md, decision, budget, weights_ready=ready):
            live = view.live(child["kind"], child["metadata"]["name"])
            if child["kind"] in CREATE_ONLY and live is not None:
                continue  # immutable specs (a Job's template, a claim's class): created once
            if already_applied(child, live):
                continue  # unchanged since the watch last saw it: no write
            metrics.CHILD_APPLIES.labels(child["kind"]).inc()
            if kube.apply(child) is None:
                return  # the namespace (and this ModelDeployment with it) is being deleted
        for old in weights.superseded(md, view.own_jobs + view.own_volumes, ready):
            meta = old["metadata"]
            log.info("%s/%s: deleting %s of a superseded cache", *key_of(md), meta["name"])
            kube.delete(old["apiVersion"], old["kind"], meta["name"], meta["namespace"])
    except DynamicApiError as error:
        raise kopf.TemporaryError(f"applying children failed: {error}", delay=10) from error
    _write_status(view, kube, body, md, decision, md.metadata.generation, prices, cache)


# The cache's children are created once: a Job's pod template and a claim's storage class and
# access modes cannot change; a new revision (a new cache key) gets new ones.
CREATE_ONLY = frozenset({"Job", "PersistentVolumeClaim"})


def key_of(md: ModelDeployment) -> tuple[str, str]:
    return md.metadata.namespace, md.metadata.name


def observe_cache(view: ClusterView, kube: Kube, md: ModelDeployment) -> CacheStatus | None:
    """status.cache: the download Job's state, its pod's progress while it runs, and the reason
    of a failure (read once from the failed pod: the pod watch leaves finished pods out).
    PerNode: the engine pods' weights init containers, and the progress of a few of them."""
    if weights.per_node(md):
        fills = node_fills(view.own_pods, weights.cache_key(md))
        samples = {}
        for fill in progress_to_read(fills):
            sample = parse_progress(read_progress(str(fill.pod_ip)))
            if sample is not None:
                samples[fill.node] = sample
        return per_node_status(md, fills, samples)
    if not weights.shared(md):
        return cache_status(md, None)
    name, key = weights.weights_name(md), weights.cache_key(md)
    job = view.live("Job", name)
    state = job_state(job)
    progress = None
    failure = ""
    if state == "Running":
        running = [
            pod
            for pod in view.download_pods
            if weights_key_of(pod) == key
            and (pod.get("status") or {}).get("phase") == "Running"
            and (pod.get("status") or {}).get("podIP")
        ]
        if running:
            progress = parse_progress(read_progress(str(running[-1]["status"]["podIP"])))
    elif state == "Failed":
        before = md.status.cache
        if not (before and before.key == key and before.phase == "Failed"):
            selector = (
                f"{weights.CACHE_KEY_LABEL}={key},{weights.WEIGHTS_OF_LABEL}={md.metadata.name}"
            )
            failure = pod_failure(kube.list("v1", "Pod", md.metadata.namespace, selector))
    return cache_status(md, job, progress, failure)


def _inventory(view: ClusterView, md: ModelDeployment) -> Inventory:
    """GPU pools and their free GPUs, not counting this deployment's own pods."""
    own = selector_labels(md)
    pods = [
        pod
        for pod in view.gpu_pods
        if not (
            (pod.get("metadata") or {}).get("namespace") == md.metadata.namespace
            and own.items() <= ((pod.get("metadata") or {}).get("labels") or {}).items()
        )
    ]
    return parse_inventory(view.nodes, pods)


def refresh_status(
    view: ClusterView, kube: Kube, namespace: str, name: str, prices: PriceSheet
) -> None:
    """Recompute the status from the children and write it if it changed.

    Between reconciles the placement and generation of the last reconcile hold.
    """
    for _attempt in range(WRITE_ATTEMPTS):
        body = kube.get(API_VERSION, KIND, name, namespace)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return
        try:
            md = ModelDeployment.from_body(body)
        except ValidationError:
            return  # reconcile reports invalid specs; there is nothing to observe
        placement = md.status.placement
        if placement is None or unplaceable(md):
            return  # not placed, or the last reconcile's verdict stands until something changes
        cache = observe_cache(view, kube, md)
        if engines_may_start(md, cache) and not engines_may_start(md, md.status.cache):
            # the download just finished: the Deployment must be applied, not only the status
            reconcile(view, kube, namespace, name, prices, raise_on_invalid=False)
            return
        try:
            _write_status(
                view, kube, body, md, placement, md.status.observed_generation, prices, cache
            )
            return
        except ConflictError:
            continue  # changed under us: read it again
    log.info("%s/%s kept changing; the next event refreshes its status", namespace, name)


def record_scale(
    kube: Kube,
    namespace: str,
    name: str,
    replicas: int,
    reason: str,
    autoscaling: AutoscalingStatus | None = None,
) -> bool:
    """The autoscaler's decision into status, with an Event; False if nothing was written.

    Written over the version read here, so a decision never lands on a spec it did not see.
    `autoscaling`: status.autoscaling for the same decision, in the same write.
    """
    found = _live(kube, namespace, name)
    if found is None:
        return False
    body, md = found
    desired = md.status.model_copy(
        update={
            "desired_replicas": replicas,
            "last_scale_time": _now(),
            "last_scale_reason": reason,
            "seen_spec_replicas": md.spec.replicas
            if md.status.seen_spec_replicas is None
            else md.status.seen_spec_replicas,
            "autoscaling": autoscaling or md.status.autoscaling,
        }
    )
    try:
        written = _write_if_changed(kube, body, md.status, desired)
    except ConflictError:
        return False  # the object moved on; the next interval decides again on what it is now
    if written:
        _announce(kube, body, md.status, desired)
    return written


def _live(kube: Kube, namespace: str, name: str) -> tuple[dict[str, Any], ModelDeployment] | None:
    """The object as the API server has it now, unless it is gone, being deleted or invalid."""
    body = kube.get(API_VERSION, KIND, name, namespace)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return None
    try:
        return body, ModelDeployment.from_body(body)
    except ValidationError:
        return None


def record_autoscaling(kube: Kube, namespace: str, name: str, block: AutoscalingStatus) -> bool:
    """status.autoscaling alone (the count holds); False if nothing was written."""
    found = _live(kube, namespace, name)
    if found is None or not found[1].spec.autoscaled:
        return False
    body, md = found
    try:
        return _write_if_changed(
            kube, body, md.status, md.status.model_copy(update={"autoscaling": block})
        )
    except ConflictError:
        return False  # the next interval writes it on what the object is then


def _write_status(
    view: ClusterView,
    kube: Kube,
    body: dict[str, Any],
    md: ModelDeployment,
    placement: PlacementStatus,
    generation: int | None,
    prices: PriceSheet,
    cache: CacheStatus | None = None,
) -> None:
    observed = _observe(view, md)
    now = float(int(time.time()))  # whole seconds: the watermark is written as RFC 3339
    budget = view.budget_of(md, placement)
    desired = compute_status(
        md, observed, placement, generation, now=_now(), budget=budget, cache=cache
    )
    seen, fresh = _cost(view, md, prices, now)
    fresh_slo = _slo(md, now)
    period = costs.settings.write_period
    # Time-based fields (cost's spend and tokens, the SLO window) as last written, unless due.
    held = desired.model_copy(update={"slo": written_slo(md.status.slo, fresh_slo, now, period)})
    if fresh is not None:
        cost = written_cost(md.status.cost, fresh, now, period, seen.pod_ended)
        held = held.model_copy(update={"cost": cost})
    if _dump(held) != _dump(md.status):
        # A write anyway: every time-based field goes fresh with it.
        desired = desired.model_copy(update={"slo": fresh_slo})
        if fresh is not None:
            desired = desired.model_copy(update={"cost": fresh})
    else:
        desired = held
    if _write_if_changed(kube, body, md.status, desired):
        _announce(kube, body, md.status, desired)
        if fresh is not None and refreshed(desired.cost, fresh):
            costs.ledger.written((md.metadata.namespace, md.metadata.name), seen.pending)


def _cost(
    view: ClusterView, md: ModelDeployment, prices: PriceSheet, now: float
) -> tuple[costs.Seen, CostStatus | None]:
    """status.cost with every field fresh, and the ledger's view behind it; the cost series
    on /metrics follow the fresh values (None: no hosted price to compare with)."""
    owner = (md.metadata.namespace, md.metadata.name)
    hosts = {(p.get("spec") or {}).get("nodeName") for p in view.own_pods}
    node_price = node_prices(
        [n for n in view.nodes if (n.get("metadata") or {}).get("name") in hosts], prices
    )  # only the nodes its pods are on: a resync of each deployment must not price them all
    previous = md.status.cost
    counted_until = (
        kube_time(previous.accrued_until)
        if previous and previous.accrued_until and previous.tokens is not None
        else None
    )
    accrued_until = (
        kube_time(previous.accrued_until) if previous and previous.accrued_until else None
    )
    seen = costs.ledger.see(owner, view.own_pods, node_price, counted_until, now, accrued_until)
    try:
        row = comparison(md, costs.settings.api_prices)
    except ApiPriceError:
        return seen, None  # reconcile reports it as InvalidSpec
    fresh = cost_status(
        previous,
        CostInputs(
            now=now,
            pods=view.own_pods,
            ended=seen.ended,
            late=seen.late,
            prices=node_price,
            new_tokens=seen.new_tokens,
            replicas=seen.replicas,
            observing_since=costs.ledger.started,
            compare_to=row,
        ),
    )
    costs.publish_deployment(md, fresh, row, len([p for p in view.own_pods if _bound(p)]))
    return seen, fresh


def _slo(md: ModelDeployment, now: float) -> SLOStatus:
    """status.slo with every field fresh; its series on /metrics follow it."""
    owner = (md.metadata.namespace, md.metadata.name)
    spec = md.spec.slo_or_default
    slo.ledger.aim(owner, spec)
    fresh = slo_status(spec, slo.ledger.see(owner, md.spec.engine, now))
    metrics.DEPLOYMENT_SLOS.deployments[owner] = {
        name: metrics.LatencySLO(
            block.target, block.measured_at_seconds, block.attainment, block.count
        )
        for name, block in (("ttft", fresh.ttft), ("tpot", fresh.tpot))
        if block is not None
    }
    return fresh


def _bound(pod: dict[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _dump(status: ModelDeploymentStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def _announce(
    kube: Kube, body: dict[str, Any], old: ModelDeploymentStatus, new: ModelDeploymentStatus
) -> None:
    """A Kubernetes Event on the ModelDeployment for each change worth telling (announcements)."""
    for news in [*announcements(old, new), *slo_announcements(old.slo, new.slo)]:
        kube.post_event(body, news.type, news.reason, news.message)


def _observe(view: ClusterView, md: ModelDeployment) -> Observed:
    pods = view.own_pods
    samples = scrapes.samples.of_deployment(md.metadata.namespace, md.metadata.name)
    uids = {
        str((p.get("metadata") or {}).get("name")): (p.get("metadata") or {}).get("uid")
        for p in pods
    }
    unanswered = unanswered_pods(
        pods,
        {s.pod.name: s.unanswered_since for s in samples if uids.get(s.pod.name) == s.pod.uid},
        time.monotonic(),
        METRICS_GRACE_SECONDS,
    )
    waiting = any(
        c.get("type") == "PodScheduled" and c.get("status") == "False"
        for p in pods
        for c in (p.get("status") or {}).get("conditions") or []
    )
    # Nodes explain unschedulable pods only: most status computations never need them.
    return Observed(
        deployment=view.own_deployment,
        pods=pods,
        nodes=view.nodes if waiting else [],
        unanswered=unanswered,
    )


def _report_unplaceable(
    kube: Kube, body: dict[str, Any], message: str, reason: str, raise_on_invalid: bool
) -> None:
    previous = ModelDeploymentStatus.model_validate(own_status(body.get("status")))
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    desired = invalid_spec_status(generation, previous, message, now=_now(), reason=reason)
    if _write_if_changed(kube, body, previous, desired):
        _announce(kube, body, previous, desired)
    if raise_on_invalid:
        raise kopf.PermanentError(f"{reason}: {message}")


def _write_if_changed(
    kube: Kube,
    body: dict[str, Any],
    previous: ModelDeploymentStatus,
    desired: ModelDeploymentStatus,
) -> bool:
    """Write the status if it differs, over the resourceVersion of `body` (ConflictError)."""
    before, after = _dump(previous), _dump(desired)
    if before == after:
        return False
    meta = body.get("metadata") or {}
    return kube.apply_model_deployment_status(
        str(meta.get("namespace")), str(meta.get("name")), after, str(meta.get("resourceVersion"))
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
