"""Budgets: a deployment's own maxHourly, surge under a tight budget, namespace sharing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelfleet.cost.budget import (
    BudgetCap,
    BudgetClaim,
    BudgetShare,
    cap_replicas,
    max_replicas_within,
    share_namespace_budget,
    surge_allowed,
)


@pytest.mark.parametrize(
    ("per_replica", "max_hourly", "expected"),
    [
        (0.7, 2.1, 3),  # float slack: 2.1 / 0.7 = 2.9999999999999996
        (0.7, 2.0, 2),
        (0.7, 0.5, 0),
        (0.7, None, None),
        (0.0, 1.0, None),  # free replicas are never limited
    ],
)
def test_max_replicas_within(per_replica: float, max_hourly: float | None, expected: int) -> None:
    assert max_replicas_within(per_replica, max_hourly) == expected


@pytest.mark.parametrize(
    ("wanted", "max_hourly", "expected"),
    [
        pytest.param(3, None, BudgetCap(3, False, ""), id="no-budget"),
        pytest.param(3, 2.8, BudgetCap(3, False, ""), id="within"),
        pytest.param(
            6,
            2.8,
            BudgetCap(
                4, True, "maxHourly 2.80 USD/h pays for 4 replica(s) at 0.70 USD/h each; 6 wanted"
            ),
            id="autoscaler-or-kubectl-scale-capped",
        ),
        pytest.param(
            1,
            0.5,
            BudgetCap(
                0, True, "maxHourly 0.50 USD/h pays for 0 replica(s) at 0.70 USD/h each; 1 wanted"
            ),
            id="budget-below-one-replica",
        ),
    ],
)
def test_cap_replicas(wanted: int, max_hourly: float | None, expected: BudgetCap) -> None:
    assert cap_replicas(wanted, 0.7, max_hourly) == expected


@pytest.mark.parametrize(
    ("replicas", "max_hourly", "surge", "headroom", "allowed"),
    [
        pytest.param(3, None, 1, None, True, id="no-budget"),
        pytest.param(3, 2.8, 1, None, True, id="room-for-the-surge"),
        pytest.param(4, 2.8, 1, None, False, id="tight-budget-replaces"),
        pytest.param(3, 2.8, 2, None, False, id="two-surge-too-many"),
        pytest.param(3, None, 1, 0.7, True, id="namespace-headroom-exact"),
        pytest.param(3, None, 1, 0.69, False, id="namespace-headroom-short"),
        pytest.param(3, 2.8, 1, 0.0, False, id="own-fits-namespace-does-not"),
        pytest.param(3, 2.8, 0, 0.0, True, id="no-surge-asked"),
    ],
)
def test_surge_allowed(
    replicas: int, max_hourly: float | None, surge: int, headroom: float | None, allowed: bool
) -> None:
    assert surge_allowed(replicas, 0.7, max_hourly, surge, headroom) is allowed


def claim(
    name: str,
    created: float,
    price: float,
    min_replicas: int,
    need: int,
    max_hourly: float | None = None,
) -> BudgetClaim:
    return BudgetClaim(("ns", name), created, price, min_replicas, need, max_hourly)


# (budget, claims, {name: (replicas, below_min, limited)})
CASES = [
    pytest.param(
        100.0,
        [claim("a", 1, 1.0, 1, 3), claim("b", 2, 2.0, 1, 2)],
        {"a": (3, False, False), "b": (2, False, False)},
        id="ample-budget-everyone-gets-their-need",
    ),
    pytest.param(
        3.0,
        [claim("a", 1, 2.0, 1, 1), claim("b", 2, 2.0, 1, 1)],
        {"a": (1, False, False), "b": (0, True, True)},
        id="below-sum-of-minimums-older-keeps-its-minimum",
    ),
    pytest.param(
        3.0,
        [claim("b", 2, 2.0, 1, 1), claim("a", 1, 2.0, 1, 1)],
        {"a": (1, False, False), "b": (0, True, True)},
        id="below-minimums-creation-order-not-list-order",
    ),
    pytest.param(
        5.0,
        [claim("a", 1, 2.0, 2, 2), claim("b", 2, 3.0, 1, 1), claim("c", 3, 1.0, 1, 1)],
        {"a": (2, False, False), "b": (0, True, True), "c": (0, True, True)},
        id="below-minimums-newer-wait-behind-the-first-short-one",
    ),
    pytest.param(
        5.0,
        [claim("a", 1, 2.0, 3, 3), claim("b", 2, 1.0, 1, 1)],
        {"a": (2, True, True), "b": (0, True, True)},
        id="below-minimums-the-short-one-takes-part-of-its-minimum",
    ),
    pytest.param(
        5.0,
        [claim("a", 1, 1.0, 1, 4), claim("b", 2, 2.0, 3, 3), claim("c", 3, 0.0, 1, 2)],
        {"a": (1, False, True), "b": (2, True, True), "c": (2, False, False)},
        id="below-minimums-nothing-shared-above-minimums-free-still-runs",
    ),
    pytest.param(
        1.0,
        [claim("a", 1, 2.0, 2, 4)],
        {"a": (0, True, True)},
        id="budget-below-one-replica",
    ),
    pytest.param(
        0.0,
        [claim("a", 1, 0.0, 1, 5), claim("b", 2, 1.0, 1, 1)],
        {"a": (5, False, False), "b": (0, True, True)},
        id="zero-budget-free-replicas-still-run",
    ),
    pytest.param(
        10.0,
        [claim("a", 1, 1.0, 0, 10), claim("b", 2, 1.0, 0, 10)],
        {"a": (5, False, True), "b": (5, False, True)},
        id="equal-parts",
    ),
    pytest.param(
        12.0,
        [claim("a", 1, 1.0, 0, 100), claim("b", 2, 3.0, 0, 100)],
        {"a": (6, False, True), "b": (2, False, True)},
        id="equal-money-not-equal-replicas",
    ),
    pytest.param(
        10.0,
        [claim("a", 1, 4.0, 2, 2), claim("b", 2, 1.0, 1, 10)],
        {"a": (2, False, False), "b": (2, False, True)},
        id="minimums-first-then-the-rest",
    ),
    pytest.param(
        10.0,
        [claim("a", 1, 1.0, 0, 10, max_hourly=2.0), claim("b", 2, 1.0, 0, 10)],
        {"a": (2, False, True), "b": (8, False, True)},
        id="own-budget-caps-the-share-the-rest-goes-to-others",
    ),
    pytest.param(
        10.0,
        [claim("a", 1, 1.0, 0, 1), claim("b", 2, 1.0, 0, 20)],
        {"a": (1, False, False), "b": (9, False, True)},
        id="need-caps-the-share-the-rest-goes-to-others",
    ),
    pytest.param(
        5.0,
        [claim("a", 1, 3.0, 0, 5), claim("b", 2, 3.0, 0, 5)],
        {"a": (1, False, True), "b": (0, False, True)},
        id="money-for-one-replica-goes-to-the-older",
    ),
    pytest.param(
        100.0,
        [claim("a", 1, 2.0, 3, 3, max_hourly=5.0)],
        {"a": (2, True, True)},
        id="own-budget-below-its-minimum-budget-wins",
    ),
    pytest.param(
        10.0,
        [claim("a", 1, 1.0, 2, 0)],
        {"a": (2, False, False)},
        id="need-below-minimum-keeps-minimum",
    ),
    pytest.param(5.0, [], {}, id="no-deployments"),
]


@pytest.mark.parametrize(("budget", "claims", "expected"), CASES)
def test_share_namespace_budget(
    budget: float, claims: list[BudgetClaim], expected: dict[str, tuple[int, bool, bool]]
) -> None:
    shared = share_namespace_budget(budget, claims)
    got = {
        owner[1]: (share.replicas, share.below_min, share.limited)
        for owner, share in shared.shares.items()
    }
    assert got == expected
    for share in shared.shares.values():
        assert bool(share.reason) == share.limited


def test_reasons_say_which_budget_and_the_numbers() -> None:
    shared = share_namespace_budget(
        5.0, [claim("old", 1, 2.0, 1, 1), claim("new", 2, 2.0, 2, 3), claim("newest", 3, 0.5, 1, 1)]
    )
    reasons = {owner[1]: share.reason for owner, share in shared.shares.items()}
    assert reasons["old"] == ""
    assert reasons["new"] == (
        "namespace budget 5.00 USD/h cannot also pay for this deployment's minReplicas 2 at "
        "2.00 USD/h each (older deployments keep theirs first): 1 kept"
    )
    assert reasons["newest"].endswith("(older deployments keep theirs first): 0 kept")
    assert shared.allocated == pytest.approx(4.0)
    assert shared.unallocated == pytest.approx(1.0)  # waits for the older minimum, never jumps it
    capped = share_namespace_budget(10.0, [claim("capped", 0, 1.0, 0, 4, max_hourly=1.0)])
    assert capped.shares[("ns", "capped")].reason == (
        "maxHourly 1.00 USD/h pays for 1 replica(s) at 1.00 USD/h each; 4 wanted"
    )


def test_equal_parts_reason() -> None:
    shared = share_namespace_budget(4.0, [claim("a", 1, 1.0, 0, 3), claim("b", 2, 1.0, 0, 3)])
    assert shared.shares[("ns", "a")].reason == (
        "namespace budget 4.00 USD/h shared in equal parts: 2 of 3 replica(s) at 1.00 USD/h each"
    )


claims = st.lists(
    st.builds(
        BudgetClaim,
        owner=st.tuples(st.just("ns"), st.text("abcdefgh", min_size=1, max_size=4)),
        created=st.integers(0, 5).map(float),
        per_replica_hourly=st.sampled_from([0.0, 0.35, 0.7, 1.0, 2.5, 5.6, 20.0]),
        min_replicas=st.integers(0, 3),
        need=st.integers(0, 12),
        max_hourly=st.one_of(st.none(), st.floats(0, 60)),
    ),
    max_size=6,
    unique_by=lambda c: c.owner,
)


def _own_capped(share: BudgetShare, claims: list[BudgetClaim]) -> bool:
    c = next(c for c in claims if c.owner == share.owner)
    return share.replicas == max_replicas_within(c.per_replica_hourly, c.max_hourly)


@settings(max_examples=400, deadline=None, database=None)
@given(st.floats(0, 100), claims)
def test_sharing_never_overspends_and_leaves_no_usable_money(
    budget: float, claims: list[BudgetClaim]
) -> None:
    shared = share_namespace_budget(budget, claims)
    assert shared.allocated <= budget + 1e-6
    for c in claims:
        share = shared.shares[c.owner]
        own = max_replicas_within(c.per_replica_hourly, c.max_hourly)
        assert 0 <= share.replicas <= max(c.need, c.min_replicas)
        assert own is None or share.replicas <= own
        # a deployment short of what it needs could not have had one more replica, unless it
        # waits behind an older deployment's unmet minimum
        waiting = any(s.below_min and not _own_capped(s, claims) for s in shared.shares.values())
        if share.limited and (own is None or share.replicas < own) and not waiting:
            assert c.per_replica_hourly > shared.unallocated - 1e-6


@settings(max_examples=200, deadline=None, database=None)
@given(st.floats(0, 100), claims)
def test_raising_the_budget_never_takes_a_minimum_away(
    budget: float, claims: list[BudgetClaim]
) -> None:
    """Minimums are monotone in the budget (shares above them need not be: one more replica of
    an expensive deployment may take two of a cheap one's equal share)."""
    small = share_namespace_budget(budget, claims)
    large = share_namespace_budget(budget + 10, claims)
    for c in claims:
        kept = min(small.shares[c.owner].replicas, c.min_replicas)
        assert large.shares[c.owner].replicas >= kept
