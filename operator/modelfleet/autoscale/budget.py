"""The budgets of one deployment, from what the operator sees of its namespace (pure).

`budget_for` turns a ModelDeployment, its placement, the GPU nodes, the price sheet, the
namespace budget and the namespace's other ModelDeployments (slim copies from a watch, see
`slim`) into the `Budget` that caps its replica count (cost/budget.py). Each other deployment
claims a share of the namespace budget (`claim_of`) with:

- created: its creationTimestamp (older ones keep their minimum first);
- per-replica hourly: the dearest node its placement can land on (`replica_hourly`);
- minimum: `budget_min_replicas` (minReplicas, or one replica without autoscaling);
- need: what it would run without the namespace budget: the autoscaler's latest count before
  any budget when this operator has one (`wants`), else the count status records;
- its own maxHourly.

A deployment without a placement runs nothing and claims nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modelfleet.api.types import ModelDeployment, PlacementStatus
from modelfleet.autoscale.count import budget_min_replicas, replica_count
from modelfleet.autoscale.policy import AutoscalerState, Decision
from modelfleet.cost.budget import (
    Budget,
    BudgetClaim,
    NamespaceBudget,
    replica_hourly,
)
from modelfleet.plan.prices import PriceSheet

# What the namespace's sharing reads of each ModelDeployment; everything else is dropped.
_STATUS_KEPT = ("desiredReplicas", "seenSpecReplicas", "placement")


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ModelDeployment reduced to what `claim_of` reads (for a watch index)."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    return {
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "generation", "creationTimestamp")
            if key in meta
        },
        "spec": dict(body.get("spec") or {}),
        "status": {key: status[key] for key in _STATUS_KEPT if key in status},
    }


def created(timestamp: str | None) -> float:
    """creationTimestamp as unix seconds; a missing or odd one counts as the newest."""
    try:
        return datetime.fromisoformat(str(timestamp)).timestamp()
    except ValueError:
        return float("inf")


def claim_of(
    body: Mapping[str, Any],
    nodes: Iterable[Mapping[str, Any]],
    sheet: PriceSheet,
    wants: Mapping[str, int],
) -> tuple[BudgetClaim, float] | None:
    """Another deployment's claim on the namespace budget, and USD per hour it runs now."""
    try:
        md = ModelDeployment.from_body(body)
    except ValidationError:
        return None  # reconcile reports it InvalidSpec; it claims nothing
    placement = md.status.placement
    if placement is None:
        return None
    price = replica_hourly(placement, nodes, sheet)
    need = replica_count(md.spec, md.status).replicas
    if md.spec.autoscaled and md.metadata.name in wants:
        need = wants[md.metadata.name]
    own = md.spec.budget.max_hourly if md.spec.budget is not None else None
    claim = BudgetClaim(
        (md.metadata.namespace, md.metadata.name),
        created(md.metadata.creation_timestamp),
        price,
        budget_min_replicas(md.spec),
        need,
        own,
    )
    return claim, (md.status.desired_replicas or 0) * price


def budget_for(
    md: ModelDeployment,
    placement: PlacementStatus,
    nodes: Sequence[Mapping[str, Any]],
    sheet: PriceSheet,
    namespace_budget: float | None = None,
    neighbours: Iterable[Mapping[str, Any]] = (),
    wants: Mapping[str, int] | None = None,
) -> Budget:
    """The Budget of `md` placed on `placement`; `neighbours` may include `md` itself (skipped).

    `wants`: the autoscalers' latest counts before any budget, by deployment name.
    """
    wants = wants or {}
    name = md.metadata.name
    own = md.spec.budget.max_hourly if md.spec.budget is not None else None
    autoscaler_wants = wants.get(name) if md.spec.autoscaled else None
    if own is None and namespace_budget is None:
        return Budget(0.0, autoscaler_wants=autoscaler_wants)  # no budget: nothing to price
    price = replica_hourly(placement, nodes, sheet)
    if namespace_budget is None:
        return Budget(price, own, autoscaler_wants=autoscaler_wants)
    others = []
    others_hourly = 0.0
    for body in neighbours:
        if (body.get("metadata") or {}).get("name") == name:
            continue
        found = claim_of(body, nodes, sheet, wants)
        if found is not None:
            others.append(found[0])
            others_hourly += found[1]
    space = NamespaceBudget(
        namespace_budget,
        (md.metadata.namespace, name),
        created(md.metadata.creation_timestamp),
        md.status.desired_replicas or 0,
        tuple(others),
        others_hourly,
    )
    return Budget(price, own, space, autoscaler_wants)


def within_budget(
    decision: Decision,
    budget: Budget,
    min_replicas: int,
    current: int,
    before: AutoscalerState | None,
) -> Decision:
    """The autoscaler's decision capped by the budgets: never a count above the cap.

    A decision the cap brings back to the current count is no change (nothing is recorded), and
    the policy's memory does not take it for a scale: a capped decision holds without flapping.
    """
    if not budget.applies:
        return decision
    cap = budget.cap(decision.replicas, min_replicas)
    if not cap.limited:
        return decision
    state = decision.state
    if cap.replicas == current:
        state = replace(
            state,
            last_scale_time=None if before is None else before.last_scale_time,
            last_scale_up_time=None if before is None else before.last_scale_up_time,
        )
    reason = f"{cap.reason} (autoscaler: {decision.reason})"
    return replace(
        decision,
        replicas=cap.replicas,
        changed=cap.replicas != current,
        reason=reason,
        state=state,
        held_by="Budget",
    )
