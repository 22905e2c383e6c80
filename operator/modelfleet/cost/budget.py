"""Money budgets: a deployment's own `maxHourly`, and a namespace budget shared among deployments.

Own budget (`spec.budget.maxHourly`, USD per hour, every replica including a rollout's surge):
the replica count never exceeds floor(maxHourly / per-replica hourly), whoever asks (autoscaler
or `kubectl scale`). The steady state may use the whole budget; a rollout then replaces pods
instead of surging (`surge_allowed`), since a surge replica would go over it.

Namespace budget (the Namespace's annotation modelfleet.dev/max-hourly-usd, which only cluster
admins can set; `share_namespace_budget`), USD per hour over every deployment of the namespace:

1. Minimums first, in creation order (oldest first; then namespace/name): each deployment takes
   its minReplicas while the money left pays for them. The first one the money does not cover
   takes what is left (part of its minimum, maybe none), and every newer one waits with none:
   like a ResourceQuota, a new deployment cannot push out serving ones, the namespace's users
   cannot spend past the admins' budget by raising minReplicas, and raising the budget never
   takes a minimum away (a newer, cheaper deployment does not jump the queue, or it would lose
   its replicas again when the budget grows enough for the older one). Short deployments are
   marked `below_min`.
2. Only when every minimum is met, the rest is shared in equal parts of money, one replica at a
   time: the deployment that has spent least above its minimum (ties: creation order) gets its
   next replica if it still needs one and the money left pays for it; one that can no longer
   afford a replica drops out. So shares are equal up to one replica's price, and no money is
   left that could pay for a needed replica of anyone. A share never exceeds a deployment's
   need (the count it would run without the namespace budget) nor its own maxHourly.

Budgets are caps: where one conflicts with minReplicas, the budget wins and the deployment is
marked below its minimum. A replica of zero price costs nothing and is never limited.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelfleet.api.types import PlacementStatus
from modelfleet.cost.allocation import Owner
from modelfleet.cost.node_prices import node_price, parse_gpu_hourly
from modelfleet.plan.prices import PriceSheet

# Float slack so that 3 replicas at 0.7 fit a budget of 2.1.
_EPSILON = 1e-9


def max_replicas_within(per_replica_hourly: float, max_hourly: float | None) -> int | None:
    """Replicas a budget pays for; None when there is no budget or a replica costs nothing."""
    if max_hourly is None or per_replica_hourly <= 0:
        return None
    return max(math.floor(max_hourly / per_replica_hourly + _EPSILON), 0)


@dataclass(frozen=True)
class BudgetCap:
    replicas: int  # the count to run
    limited: bool  # the budget lowered the wanted count
    reason: str  # one line with the numbers, for BudgetLimited and its Event


def cap_replicas(wanted: int, per_replica_hourly: float, max_hourly: float | None) -> BudgetCap:
    """`wanted` (autoscaler or manual scale) capped by the deployment's own maxHourly."""
    limit = max_replicas_within(per_replica_hourly, max_hourly)
    if limit is None or wanted <= limit:
        return BudgetCap(wanted, False, "")
    return BudgetCap(
        limit,
        True,
        f"maxHourly {max_hourly:.2f} USD/h pays for {limit} replica(s) at "
        f"{per_replica_hourly:.2f} USD/h each; {wanted} wanted",
    )


def surge_allowed(
    replicas: int,
    per_replica_hourly: float,
    max_hourly: float | None,
    surge: int = 1,
    namespace_headroom: float | None = None,
) -> bool:
    """May a rollout add `surge` replicas above `replicas`? Else it replaces pods one by one.

    `namespace_headroom`: the namespace budget minus what the namespace's pods cost per hour
    now (None without a namespace budget).
    """
    extra = surge * per_replica_hourly
    if extra <= 0:
        return True
    if max_hourly is not None and (replicas + surge) * per_replica_hourly > max_hourly + _EPSILON:
        return False
    return namespace_headroom is None or extra <= namespace_headroom + _EPSILON


@dataclass(frozen=True)
class BudgetClaim:
    """What one deployment asks of a namespace budget."""

    owner: Owner
    created: float  # creation time (unix seconds): older deployments keep their minimum first
    per_replica_hourly: float  # USD per replica-hour
    min_replicas: int
    need: int  # replicas it would run without the namespace budget
    max_hourly: float | None = None  # its own spec.budget.maxHourly


@dataclass(frozen=True)
class BudgetShare:
    owner: Owner
    replicas: int  # at most this many
    hourly: float  # replicas x per-replica hourly
    below_min: bool  # fewer than minReplicas: the budget could not pay for them
    limited: bool  # fewer than needed
    reason: str  # one line with the numbers; empty when not limited


@dataclass(frozen=True)
class NamespaceShare:
    budget: float
    shares: dict[Owner, BudgetShare]

    @property
    def allocated(self) -> float:
        return sum(share.hourly for share in self.shares.values())

    @property
    def unallocated(self) -> float:
        return max(self.budget - self.allocated, 0.0)


def share_namespace_budget(budget: float, claims: Sequence[BudgetClaim]) -> NamespaceShare:
    """Replicas per deployment under a namespace budget (USD per hour); the rule is above."""
    ordered = sorted(claims, key=lambda claim: (claim.created, claim.owner))
    left = max(budget, 0.0)
    replicas: dict[Owner, int] = {}
    wanted: dict[Owner, int] = {}  # replicas each may still get above its minimum
    short = False  # a minimum was not met: newer ones wait, and nothing is shared above minimums
    for claim in ordered:
        price = claim.per_replica_hourly
        own = max_replicas_within(price, claim.max_hourly)
        target = claim.min_replicas if own is None else min(claim.min_replicas, own)
        minimum = target
        if price > 0:
            minimum = 0 if short else min(target, math.floor(left / price + _EPSILON))
            short = short or minimum < target
        replicas[claim.owner] = minimum
        left -= minimum * price
        ceiling = max(claim.need, claim.min_replicas)
        wanted[claim.owner] = max((ceiling if own is None else min(ceiling, own)) - minimum, 0)
    if short:
        wanted = {
            claim.owner: wanted[claim.owner] if claim.per_replica_hourly <= 0 else 0
            for claim in ordered
        }

    spent = dict.fromkeys(replicas, 0.0)
    price_of = {claim.owner: claim.per_replica_hourly for claim in ordered}
    rank = {claim.owner: index for index, claim in enumerate(ordered)}
    for owner, price in price_of.items():
        if price <= 0:  # free replicas: all it needs, at no cost
            replicas[owner] += wanted[owner]
            wanted[owner] = 0
    queue = [(0.0, rank[owner], owner) for owner in replicas if wanted[owner] > 0]
    heapq.heapify(queue)
    while queue:
        _, index, owner = heapq.heappop(queue)
        price = price_of[owner]
        if price > left + _EPSILON:
            continue  # cannot afford another: the money left only shrinks
        replicas[owner] += 1
        wanted[owner] -= 1
        spent[owner] += price
        left -= price
        if wanted[owner] > 0:
            # rounded, so equal spending ties on creation order despite float sums
            heapq.heappush(queue, (round(spent[owner], 9), index, owner))

    return NamespaceShare(
        budget, {claim.owner: _share(budget, claim, replicas[claim.owner]) for claim in ordered}
    )


def _share(budget: float, claim: BudgetClaim, replicas: int) -> BudgetShare:
    price = claim.per_replica_hourly
    need = max(claim.need, claim.min_replicas)
    below_min = replicas < claim.min_replicas
    limited = replicas < need
    own = max_replicas_within(price, claim.max_hourly)
    reason = ""
    if limited:
        if own is not None and replicas == own:
            reason = (
                f"maxHourly {claim.max_hourly:.2f} USD/h pays for {own} replica(s) at "
                f"{price:.2f} USD/h each; {need} wanted"
            )
        elif below_min:
            reason = (
                f"namespace budget {budget:.2f} USD/h cannot also pay for this deployment's "
                f"minReplicas {claim.min_replicas} at {price:.2f} USD/h each (older deployments "
                f"keep theirs first): {replicas} kept"
            )
        else:
            reason = (
                f"namespace budget {budget:.2f} USD/h shared in equal parts: {replicas} of "
                f"{need} replica(s) at {price:.2f} USD/h each"
            )
    return BudgetShare(claim.owner, replicas, replicas * price, below_min, limited, reason)


# --- One deployment's budgets, as a reconcile or the autoscaler applies them -----------------

NAMESPACE_BUDGET_ANNOTATION = "modelfleet.dev/max-hourly-usd"


def parse_namespace_budget(value: str | None) -> float | None:
    """The Namespace annotation's USD per hour; None when absent. A plain decimal number >= 0,
    like the node price annotation; anything else raises ValueError (never used as a budget)."""
    if value is None:
        return None
    try:
        return parse_gpu_hourly(value)
    except ValueError:
        raise ValueError(
            f"must be a plain number of USD per hour for the whole namespace, e.g. 20, "
            f"got {value!r}"
        ) from None


def replica_hourly(
    placement: PlacementStatus, nodes: Iterable[Mapping[str, Any]], sheet: PriceSheet
) -> float:
    """USD per hour of one replica for a budget: the dearest node it can land on.

    The Deployment selects nodes by GPU product only, so the scheduler may pick any node of the
    product with enough GPUs; pricing at the dearest one (node annotation or price sheet) means
    its choice never overruns the budget. Without such a priced node, the placement's own
    price; 0 when nothing prices it (then no budget limits it).
    """
    dearest: float | None = None
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        if labels.get(placement.gpu_label) != placement.gpu_product:
            continue
        price = node_price(node, sheet)
        if (
            price is None
            or price.usd_per_gpu_hour is None
            or price.gpus < placement.gpus_per_replica
        ):
            continue
        dearest = max(dearest or 0.0, price.usd_per_gpu_hour)
    if dearest is not None:
        return dearest * placement.gpus_per_replica
    return placement.hourly_cost_per_replica or 0.0


@dataclass(frozen=True)
class NamespaceBudget:
    """The namespace budget and what the namespace's other deployments ask of it."""

    budget: float  # USD per hour, the Namespace's annotation
    owner: Owner  # this deployment
    created: float  # its creation time (unix seconds)
    current: int  # replicas it runs now (status.desiredReplicas)
    others: tuple[BudgetClaim, ...] = ()
    others_hourly: float = 0.0  # what the other deployments run now, USD per hour


@dataclass(frozen=True)
class Budget:
    """Every money limit on one deployment's replica count, read once per reconcile."""

    per_replica_hourly: float  # USD per replica-hour for a budget (replica_hourly); 0: unpriced
    max_hourly: float | None = None  # spec.budget.maxHourly
    namespace: NamespaceBudget | None = None
    autoscaler_wants: int | None = None  # the autoscaler's latest count before any budget

    @property
    def applies(self) -> bool:
        return self.max_hourly is not None or self.namespace is not None

    def cap(self, wanted: int, min_replicas: int) -> BudgetCap:
        """`wanted` replicas under the own and the namespace budget.

        Under a namespace budget the count is the deployment's share (share_namespace_budget,
        with `wanted` as its need); it grows past what it runs now only into money the other
        deployments do not hold now, so the namespace never runs above its budget while one
        deployment shrinks to its share and another grows to its own.
        """
        price = self.per_replica_hourly
        own = cap_replicas(wanted, price, self.max_hourly)
        space = self.namespace
        if space is None or price <= 0:
            return own
        me = BudgetClaim(space.owner, space.created, price, min_replicas, wanted, self.max_hourly)
        share = share_namespace_budget(space.budget, (*space.others, me)).shares[space.owner]
        free = space.budget - space.others_hourly
        room = max(space.current, math.floor(free / price + _EPSILON))
        if room >= share.replicas or wanted <= room:
            return BudgetCap(min(wanted, share.replicas), share.limited, share.reason)
        return BudgetCap(
            room,
            True,
            f"namespace budget {space.budget:.2f} USD/h: {max(free, 0.0):.2f} USD/h not held "
            f"by other deployments pays for {room} replica(s) at {price:.2f} USD/h each until "
            f"they shrink to their share ({share.replicas} here); {wanted} wanted",
        )

    def surge_allowed(self, replicas: int) -> bool:
        """May a rollout of `replicas` surge one replica above them? Else it replaces."""
        space = self.namespace
        headroom = None
        if space is not None:
            headroom = space.budget - space.others_hourly - replicas * self.per_replica_hourly
        return surge_allowed(
            replicas, self.per_replica_hourly, self.max_hourly, namespace_headroom=headroom
        )

    def within(self, wanted: int) -> str:
        """One line with the numbers when `wanted` fits (BudgetLimited=False)."""
        price = self.per_replica_hourly
        parts = []
        if self.max_hourly is not None:
            parts.append(f"maxHourly {self.max_hourly:.2f} USD/h")
        if self.namespace is not None:
            parts.append(f"the namespace budget {self.namespace.budget:.2f} USD/h")
        return (
            f"{wanted} replica(s) at {price:.2f} USD/h each ({wanted * price:.2f} USD/h) "
            f"within {' and '.join(parts)}"
        )
