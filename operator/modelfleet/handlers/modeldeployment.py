"""kopf handlers for ModelDeployment: observe, call the pure core, apply, write status.

Level-based: create, resume, update and a periodic timer all run the same reconcile, and events
of the children (Deployment, Pods) refresh the owner's status so it follows reality within
seconds instead of a timer period.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import kopf
from kubernetes.dynamic.exceptions import DynamicApiError
from pydantic import ValidationError

from modelfleet.api.errors import describe
from modelfleet.api.types import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ModelDeployment,
    ModelDeploymentStatus,
    PlacementStatus,
    own_status,
)
from modelfleet.kube.client import Kube
from modelfleet.plan.deployment import plan_deployment
from modelfleet.plan.inventory import Inventory, parse_inventory
from modelfleet.plan.prices import PriceSheet
from modelfleet.plan.request import PlanInputError
from modelfleet.render.children import (
    MANAGED_BY,
    OWNER_LABEL,
    children,
    selector_labels,
    selector_string,
)
from modelfleet.status import (
    Observed,
    announcements,
    compute_status,
    invalid_spec_status,
    unplaceable,
)


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

# One status writer per ModelDeployment at a time: child events and reconciles race otherwise.
_status_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def on_change(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    reconcile(memo.kube, body, memo.prices, raise_on_invalid=True)


@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def resync(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    reconcile(memo.kube, body, memo.prices, raise_on_invalid=False)


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
def forget(body: kopf.Body, **_: Any) -> None:
    """Owner references collect the children; only the status lock is ours to drop.

    optional=True: kopf adds no finalizer for it, so deletion never waits for the operator.
    """
    _status_locks.pop((str(body.metadata.namespace), str(body.metadata.name)), None)


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@kopf.on.event("", "v1", "pods", labels=CHILD_LABELS)
def on_child_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    owner = body.metadata.labels[OWNER_LABEL]
    refresh_status(memo.kube, str(body.metadata.namespace), owner)


def reconcile(kube: Kube, body: kopf.Body, prices: PriceSheet, *, raise_on_invalid: bool) -> None:
    """Place the model, make the children match, then report how far reality is from it."""
    try:
        md = ModelDeployment.from_body(body)
    except ValidationError as error:
        _report_unplaceable(kube, body, describe(error), "InvalidSpec", raise_on_invalid)
        return
    try:
        decision = plan_deployment(md, _inventory(kube, md), prices)
    except PlanInputError as error:
        _report_unplaceable(kube, body, str(error), "InvalidSpec", raise_on_invalid)
        return
    if isinstance(decision, str):
        # Not permanent: nodes may be added; the periodic reconcile plans again.
        _report_unplaceable(kube, body, decision, "NoFeasiblePlacement", raise_on_invalid=False)
        return
    try:
        for child in children(md, decision):
            if kube.apply(child) is None:
                return  # the namespace (and this ModelDeployment with it) is being deleted
    except DynamicApiError as error:
        raise kopf.TemporaryError(f"applying children failed: {error}", delay=10) from error
    refresh_status(kube, md.metadata.namespace, md.metadata.name, decision, md.metadata.generation)


def _inventory(kube: Kube, md: ModelDeployment) -> Inventory:
    """GPU pools and their free GPUs, not counting this deployment's own pods."""
    own = selector_labels(md)
    pods = [
        pod
        for pod in kube.list("v1", "Pod")
        if not (
            (pod.get("metadata") or {}).get("namespace") == md.metadata.namespace
            and own.items() <= ((pod.get("metadata") or {}).get("labels") or {}).items()
        )
    ]
    return parse_inventory(kube.list("v1", "Node"), pods)


def refresh_status(
    kube: Kube,
    namespace: str,
    name: str,
    placement: PlacementStatus | None = None,
    generation: int | None = None,
) -> None:
    """Recompute the status from the children and write it if it changed.

    Between reconciles (child events) the placement and generation of the last reconcile hold.
    """
    with _status_locks[(namespace, name)]:
        body = kube.get(API_VERSION, KIND, name, namespace)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return
        try:
            md = ModelDeployment.from_body(body)
        except ValidationError:
            return  # reconcile reports invalid specs; there is nothing to observe
        if placement is None:
            if unplaceable(md):
                return  # the last reconcile's verdict stands until the spec or cluster changes
            placement, generation = md.status.placement, md.status.observed_generation
        if placement is None:
            return  # not placed yet: the reconcile reports
        observed = _observe(kube, md)
        desired = compute_status(md, observed, placement, generation, now=_now())
        if _write_if_changed(kube, md.status, desired, namespace, name):
            _announce(body, md.status, desired)


def record_scale(kube: Kube, namespace: str, name: str, replicas: int, reason: str) -> bool:
    """The autoscaler's decision into status, with an Event; False if nothing was written."""
    with _status_locks[(namespace, name)]:
        body = kube.get(API_VERSION, KIND, name, namespace)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return False
        try:
            md = ModelDeployment.from_body(body)
        except ValidationError:
            return False
        desired = md.status.model_copy(
            update={
                "desired_replicas": replicas,
                "last_scale_time": _now(),
                "last_scale_reason": reason,
                "seen_spec_replicas": md.spec.replicas
                if md.status.seen_spec_replicas is None
                else md.status.seen_spec_replicas,
            }
        )
        if not _write_if_changed(kube, md.status, desired, namespace, name):
            return False
        _announce(body, md.status, desired)
        return True


def _announce(body: Any, old: ModelDeploymentStatus, new: ModelDeploymentStatus) -> None:
    """A Kubernetes Event on the ModelDeployment for each change worth telling (announcements)."""
    for news in announcements(old, new):
        kopf.event(
            kopf.Body(cast(kopf.RawBody, body)),
            type=news.type,
            reason=news.reason,
            message=news.message,
        )


def _observe(kube: Kube, md: ModelDeployment) -> Observed:
    namespace, name = md.metadata.namespace, md.metadata.name
    deployment = kube.get("apps/v1", "Deployment", name, namespace)
    pods = kube.list("v1", "Pod", namespace, label_selector=selector_string(md))
    waiting = any(
        c.get("type") == "PodScheduled" and c.get("status") == "False"
        for p in pods
        for c in (p.get("status") or {}).get("conditions") or []
    )
    # Nodes are read only to explain unschedulable pods: most reconciles never need them.
    nodes = kube.list("v1", "Node") if waiting else []
    return Observed(deployment=deployment, pods=pods, nodes=nodes)


def _report_unplaceable(
    kube: Kube, body: kopf.Body, message: str, reason: str, raise_on_invalid: bool
) -> None:
    namespace, name = str(body.metadata.namespace), str(body.metadata.name)
    with _status_locks[(namespace, name)]:
        previous = ModelDeploymentStatus.model_validate(own_status(body.get("status")))
        generation = int(body.metadata.get("generation") or 0)
        desired = invalid_spec_status(generation, previous, message, now=_now(), reason=reason)
        if _write_if_changed(kube, previous, desired, namespace, name):
            _announce(body, previous, desired)
    if raise_on_invalid:
        raise kopf.PermanentError(f"{reason}: {message}")


def _write_if_changed(
    kube: Kube,
    previous: ModelDeploymentStatus,
    desired: ModelDeploymentStatus,
    namespace: str,
    name: str,
) -> bool:
    before = previous.model_dump(by_alias=True, exclude_none=True, mode="json")
    after = desired.model_dump(by_alias=True, exclude_none=True, mode="json")
    if before == after:
        return False
    return kube.apply_model_deployment_status(namespace, name, after)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
