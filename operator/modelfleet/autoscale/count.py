"""How many replicas to run: spec.replicas, or the autoscaler's count kept in status.

With autoscaling on (maxReplicas set), the count lives in status.desiredReplicas, which only
the operator writes, so re-applying the user's YAML (GitOps, another field manager) never resets
it. spec.replicas is the starting count, and a later change to it (kubectl scale, an edit) is
taken once as a manual scale; status.seenSpecReplicas remembers the value last taken.

Budgets cap the count last, whoever asked for it (cost/budget.py `Budget.cap`): the capped count
is the one the Deployment gets and status records, and `budget` keeps what was held back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from modelfleet.api.types import ModelDeploymentSpec, ModelDeploymentStatus
from modelfleet.cost.budget import Budget, BudgetCap


@dataclass(frozen=True)
class ReplicaCount:
    replicas: int
    seen_spec_replicas: int | None  # None when autoscaling is off
    manual_scale: bool  # spec.replicas changed since the autoscaler last took it
    budget: BudgetCap | None = None  # set when a budget applies; .limited: it lowered the count
    wanted: int | None = None  # the count before the budget (set with `budget`)

    @property
    def reason(self) -> str:
        if self.budget is not None and self.budget.limited:
            return (
                f"spec.replicas changed: manual scale to {self.wanted}, capped at "
                f"{self.replicas} by the budget"
            )
        return f"spec.replicas changed: manual scale to {self.replicas}"


def replica_count(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, budget: Budget | None = None
) -> ReplicaCount:
    """The count to run; with a budget, capped by it (see `Budget.cap`)."""
    count = _uncapped(spec, status)
    if budget is None or not budget.applies:
        return count
    capped = budget.cap(count.replicas, budget_min_replicas(spec))
    return replace(count, replicas=capped.replicas, budget=capped, wanted=count.replicas)


def budget_min_replicas(spec: ModelDeploymentSpec) -> int:
    """The minimum a namespace budget serves first: minReplicas with autoscaling, else one
    replica (none when spec.replicas is 0), like the autoscaler's default minimum."""
    if spec.max_replicas is not None:
        return spec.min_replicas_or_default
    return min(spec.replicas, 1)


def _uncapped(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> ReplicaCount:
    if spec.max_replicas is None:
        return ReplicaCount(spec.replicas, None, manual_scale=False)
    low, high = spec.min_replicas_or_default, spec.max_replicas
    seen = status.seen_spec_replicas
    if seen is None or status.desired_replicas is None:
        # Autoscaling just turned on (or a new object): start from spec.replicas.
        return ReplicaCount(clamp(spec.replicas, low, high), spec.replicas, manual_scale=False)
    if spec.replicas != seen:
        return ReplicaCount(clamp(spec.replicas, low, high), spec.replicas, manual_scale=True)
    # The bounds apply at once, e.g. when the user lowers maxReplicas.
    return ReplicaCount(clamp(status.desired_replicas, low, high), seen, manual_scale=False)


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))
