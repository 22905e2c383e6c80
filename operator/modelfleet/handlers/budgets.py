"""What the budgets read between API calls: the namespace budgets and every ModelDeployment.

A namespace budget is an annotation on the Namespace object, which only cluster admins can
change (Namespaces are cluster-scoped: the default admin and edit roles of a namespace grant
nothing on them):

    kubectl annotate namespace team-a modelfleet.dev/max-hourly-usd=20

Two kopf indexes over the watches answer every read a budget needs, so no reconcile lists the
cluster (docs/cost.md, Budgets):
- budget_namespaces: each annotated Namespace's raw value, by namespace name;
- budget_deployments: every ModelDeployment, slimmed (autoscale/budget.py `slim`), by namespace.
`wants` keeps each autoscaler's latest count before any budget, in memory like the autoscaler's
own state: a namespace budget shares by what deployments want, while status records what they
got. A new leader starts without it and uses status until each autoscaler has decided once.

A change that can move other deployments' shares (a deployment's counts, placement or budget;
the namespace's annotation) makes their resync due now (handlers/schedule.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from modelfleet.api.types import GROUP, PLURAL, VERSION
from modelfleet.autoscale.budget import slim
from modelfleet.cost.budget import NAMESPACE_BUDGET_ANNOTATION, parse_namespace_budget
from modelfleet.plan.prices import PriceSheet

log = logging.getLogger(__name__)

Key = tuple[str, str]

# The autoscalers' latest counts before any budget; written and read in the event loop only.
wants: dict[Key, int] = {}
# Namespaces whose invalid budget annotation was already logged, by value.
_reported: dict[str, str] = {}


@kopf.index("", "v1", "namespaces")
def budget_namespaces(body: kopf.Body, **_: Any) -> dict[str, str] | None:
    value = (body.metadata.annotations or {}).get(NAMESPACE_BUDGET_ANNOTATION)
    return None if value is None else {str(body.metadata.name): str(value)}


@kopf.index(GROUP, VERSION, PLURAL)
def budget_deployments(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {str(body.metadata.namespace): slim(body)}


@dataclass(frozen=True)
class BudgetInputs:
    """Plain copies of what one deployment's budget reads (taken in the event loop)."""

    prices: PriceSheet = field(default_factory=PriceSheet)
    namespace_budget: float | None = None
    neighbours: list[dict[str, Any]] = field(default_factory=list)  # the namespace's MDs, slim
    wants: dict[str, int] = field(default_factory=dict)  # by deployment name


def take(indexes: kopf.Memo, key: Key) -> BudgetInputs:
    namespace = key[0]
    prices = indexes.get("prices") or PriceSheet()
    raw = list(indexes.budget_namespaces.get(namespace, []))
    budget = _parse(namespace, raw[0]) if raw else None
    if budget is None:
        return BudgetInputs(prices, wants=_wants_of(namespace))
    return BudgetInputs(
        prices,
        budget,
        list(indexes.budget_deployments.get(namespace, [])),
        _wants_of(namespace),
    )


def _wants_of(namespace: str) -> dict[str, int]:
    return {name: count for (space, name), count in wants.items() if space == namespace}


def _parse(namespace: str, value: str) -> float | None:
    """The annotation's USD per hour; an invalid one is logged once and not used."""
    try:
        budget = parse_namespace_budget(value)
    except ValueError as error:
        if _reported.get(namespace) != value:
            _reported[namespace] = value
            log.warning(
                "namespace %s: annotation %s %s; no namespace budget applies",
                namespace,
                NAMESPACE_BUDGET_ANNOTATION,
                error,
            )
        return None
    _reported.pop(namespace, None)
    return budget


def has_budget(indexes: Mapping[str, Any], namespace: str) -> bool:
    return bool(indexes["budget_namespaces"].get(namespace))


def forget(key: Key) -> None:
    wants.pop(key, None)


def claim_digest(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What another deployment's share depends on, from one ModelDeployment."""
    slimmed = slim(body)
    spec, status = slimmed["spec"], slimmed["status"]
    return (
        spec.get("replicas"),
        spec.get("minReplicas"),
        spec.get("maxReplicas"),
        repr(spec.get("budget")),
        status.get("desiredReplicas"),
        repr(status.get("placement")),
    )
