"""Budgets as the operator applies them: the capped replica count, BudgetLimited, the rollout
strategy, the per-replica price for a budget, and namespace claims from ModelDeployments."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.autoscale.budget import budget_for, claim_of, slim, within_budget
from modelfleet.autoscale.count import budget_min_replicas, replica_count
from modelfleet.autoscale.policy import AutoscalerState, Decision
from modelfleet.cost.budget import (
    Budget,
    BudgetCap,
    BudgetClaim,
    NamespaceBudget,
    parse_namespace_budget,
    replica_hourly,
)
from modelfleet.plan.prices import PriceSheet
from modelfleet.render.children import REPLACE, SURGE, deployment, rollout_strategy
from modelfleet.status.conditions import Observed, announcements, compute_status
from tests.unit.factories import gpu_node, model_deployment, placement

NOW = "2026-11-28T12:00:00Z"
L4 = 0.7  # the price sheet's USD per L4 GPU-hour
SHEET = PriceSheet()


# --- the per-replica price for a budget ------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "gpus", "fallback", "expected"),
    [
        pytest.param([gpu_node("a"), gpu_node("b")], 1, None, L4, id="sheet"),
        pytest.param([gpu_node("a"), gpu_node("b", price="1.85")], 1, None, 1.85, id="dearest"),
        pytest.param([gpu_node("a", price="0.30")], 2, None, 0.6, id="annotation-below-sheet"),
        pytest.param([gpu_node("a"), gpu_node("b", price="9", gpus=1)], 2, None, 1.4,
                     id="a-node-too-small-is-no-landing-place"),
        pytest.param([gpu_node("h", product="NVIDIA-H200")], 1, 0.9, 0.9,
                     id="no-node-of-the-product-placement-price"),
        pytest.param([gpu_node("a", price="$2")], 1, None, L4, id="bad-annotation-sheet"),
        pytest.param([], 1, None, 0.0, id="unpriced"),
    ],
)  # fmt: skip
def test_replica_hourly(
    nodes: list[dict[str, Any]], gpus: int, fallback: float | None, expected: float
) -> None:
    where = placement(gpus=gpus, hourly_cost_per_replica=fallback)
    assert replica_hourly(where, nodes, SHEET) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("20", 20.0), ("2.5", 2.5), ("0", 0.0)]
)
def test_namespace_budget_annotation(value: str | None, expected: float | None) -> None:
    assert parse_namespace_budget(value) == expected


@pytest.mark.parametrize("value", ["$20", "20 USD", "-1", "1e3", ""])
def test_a_bad_namespace_budget_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="plain number of USD per hour for the whole namespace"):
        parse_namespace_budget(value)


# --- the capped replica count ----------------------------------------------------------------

OWN_2_80 = Budget(L4, max_hourly=2.8)  # pays for 4


@pytest.mark.parametrize(
    ("spec", "status", "budget", "replicas", "limited", "manual"),
    [
        pytest.param({"replicas": 6}, {}, None, 6, None, False, id="no-budget"),
        pytest.param({"replicas": 6}, {}, Budget(L4), 6, None, False, id="unset-budget"),
        pytest.param({"replicas": 3}, {}, OWN_2_80, 3, False, False, id="within"),
        pytest.param({"replicas": 6}, {}, OWN_2_80, 4, True, False, id="spec-replicas-capped"),
        pytest.param(
            {"replicas": 6, "maxReplicas": 8},
            {"desiredReplicas": 3, "seenSpecReplicas": 3},
            OWN_2_80,
            4,
            True,
            True,
            id="kubectl-scale-capped",
        ),
        pytest.param(
            {"replicas": 1, "maxReplicas": 8},
            {"desiredReplicas": 7, "seenSpecReplicas": 1},
            OWN_2_80,
            4,
            True,
            False,
            id="budget-lowered-under-the-autoscalers-count",
        ),
        pytest.param(
            {"replicas": 3, "minReplicas": 3, "maxReplicas": 8},
            {},
            Budget(L4, max_hourly=1.4),
            2,
            True,
            False,
            id="budget-wins-over-minReplicas",
        ),
        pytest.param({"replicas": 6}, {}, Budget(0.0, max_hourly=1.0), 6, False, False,
                     id="free-replicas-never-limited"),
    ],
)  # fmt: skip
def test_replica_count_under_a_budget(
    spec: dict[str, Any],
    status: dict[str, Any],
    budget: Budget | None,
    replicas: int,
    limited: bool | None,
    manual: bool,
) -> None:
    md = model_deployment(status=status, **spec)
    count = replica_count(md.spec, md.status, budget)
    assert count.replicas == replicas
    assert count.manual_scale is manual
    assert (None if count.budget is None else count.budget.limited) is limited


def test_a_capped_manual_scale_says_so() -> None:
    md = model_deployment(
        status={"desiredReplicas": 3, "seenSpecReplicas": 3}, replicas=6, maxReplicas=8
    )
    count = replica_count(md.spec, md.status, OWN_2_80)
    assert count.reason == "spec.replicas changed: manual scale to 6, capped at 4 by the budget"


@pytest.mark.parametrize(
    ("spec", "minimum"),
    [
        ({"replicas": 3}, 1),
        ({"replicas": 0}, 0),
        ({"replicas": 3, "maxReplicas": 5}, 1),
        ({"replicas": 3, "minReplicas": 2, "maxReplicas": 5}, 2),
        ({"replicas": 3, "minReplicas": 0, "maxReplicas": 5}, 0),
    ],
)
def test_the_minimum_a_namespace_budget_serves_first(spec: dict[str, Any], minimum: int) -> None:
    assert budget_min_replicas(model_deployment(**spec).spec) == minimum


# --- the namespace budget as one deployment sees it -------------------------------------------


def space(budget: float, current: int, *others: tuple[int, int, int], held: float = 0.0) -> Any:
    """A namespace budget with older deployments given as (min, need, running) at 1 USD/h."""
    claims = tuple(
        BudgetClaim(("ns", f"old-{i}"), float(i), 1.0, minimum, need)
        for i, (minimum, need, _) in enumerate(others)
    )
    running = held or sum(float(run) for _, _, run in others)
    return NamespaceBudget(budget, ("ns", "me"), 100.0, current, claims, running)


@pytest.mark.parametrize(
    ("namespace", "wanted", "expected"),
    [
        pytest.param(space(10, 2, (1, 4, 4)), 6, BudgetCap(6, False, ""), id="room-for-both"),
        pytest.param(
            space(6, 3, (1, 3, 3)),
            6,
            BudgetCap(
                3,
                True,
                "namespace budget 6.00 USD/h shared in equal parts: 3 of 6 replica(s) at "
                "1.00 USD/h each",
            ),
            id="equal-parts",
        ),
        pytest.param(
            space(6, 1, (1, 6, 5)),
            6,
            BudgetCap(
                1,
                True,
                "namespace budget 6.00 USD/h: 1.00 USD/h not held by other deployments pays for "
                "1 replica(s) at 1.00 USD/h each until they shrink to their share (3 here); "
                "6 wanted",
            ),
            id="grows-only-into-money-others-released",
        ),
        pytest.param(space(4, 3, (1, 4, 3)), 3, BudgetCap(2, True, (
            "namespace budget 4.00 USD/h shared in equal parts: 2 of 3 replica(s) at "
            "1.00 USD/h each")), id="budget-lowered-shrinks-to-the-share"),
        pytest.param(space(1, 0, (1, 1, 1)), 1, BudgetCap(0, True, (
            "namespace budget 1.00 USD/h cannot also pay for this deployment's minReplicas 1 "
            "at 1.00 USD/h each (older deployments keep theirs first): 0 kept")),
            id="older-keeps-its-minimum"),
    ],
)  # fmt: skip
def test_namespace_cap(namespace: NamespaceBudget, wanted: int, expected: BudgetCap) -> None:
    assert Budget(1.0, namespace=namespace).cap(wanted, 1) == expected


def test_own_budget_inside_a_namespace_budget_names_maxHourly() -> None:
    budget = Budget(1.0, max_hourly=2.0, namespace=space(10, 0, (1, 1, 1)))
    assert budget.cap(5, 1) == BudgetCap(
        2, True, "maxHourly 2.00 USD/h pays for 2 replica(s) at 1.00 USD/h each; 5 wanted"
    )


# --- the rollout strategy --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "budget", "strategy"),
    [
        pytest.param(4, None, SURGE, id="no-budget"),
        pytest.param(3, OWN_2_80, SURGE, id="room-for-one-more"),
        pytest.param(4, OWN_2_80, REPLACE, id="budget-full-replace"),
        pytest.param(4, Budget(0.0, max_hourly=2.8), SURGE, id="free-replicas"),
        pytest.param(2, Budget(1.0, namespace=space(4, 2, (1, 2, 2))), REPLACE,
                     id="namespace-full-replace"),
        pytest.param(2, Budget(1.0, namespace=space(5, 2, (1, 2, 2))), SURGE,
                     id="namespace-headroom-surge"),
    ],
)  # fmt: skip
def test_rollout_strategy(replicas: int, budget: Budget | None, strategy: dict[str, int]) -> None:
    assert rollout_strategy(replicas, budget) == {
        "type": "RollingUpdate",
        "rollingUpdate": strategy,
    }


def test_the_rendered_deployment_is_capped_and_replaces() -> None:
    md = model_deployment(replicas=6)
    rendered = deployment(md, placement(hourly_cost_per_replica=L4), OWN_2_80)
    assert rendered["spec"]["replicas"] == 4
    assert rendered["spec"]["strategy"]["rollingUpdate"] == REPLACE


# --- BudgetLimited ---------------------------------------------------------------------------


def budget_condition(
    spec: dict[str, Any], status: dict[str, Any], budget: Budget | None
) -> tuple[str, str, str] | None:
    md = model_deployment(status=status, **spec)
    computed = compute_status(md, Observed(deployment=None), placement(), 1, NOW, budget)
    found = computed.condition("BudgetLimited")
    return None if found is None else (found.status, found.reason, found.message)


HELD = {
    "type": "BudgetLimited",
    "status": "True",
    "reason": "BudgetLimited",
    "message": "maxHourly 2.80 USD/h pays for 4 replica(s) at 0.70 USD/h each; 6 wanted",
    "lastTransitionTime": NOW,
}
AUTOSCALED = {"replicas": 1, "maxReplicas": 8}
AT_FOUR = {"desiredReplicas": 4, "seenSpecReplicas": 1}


@pytest.mark.parametrize(
    ("spec", "status", "budget", "expected"),
    [
        pytest.param({"replicas": 6}, {}, None, None, id="no-budget-no-condition"),
        pytest.param(
            {"replicas": 6},
            {},
            OWN_2_80,
            ("True", "BudgetLimited", HELD["message"]),
            id="capped",
        ),
        pytest.param(
            {"replicas": 3},
            {},
            OWN_2_80,
            (
                "False",
                "WithinBudget",
                "3 replica(s) at 0.70 USD/h each (2.10 USD/h) within maxHourly 2.80 USD/h",
            ),
            id="within",
        ),
        pytest.param(
            AUTOSCALED,
            AT_FOUR,
            Budget(L4, max_hourly=2.8, autoscaler_wants=7),
            ("True", "BudgetLimited", "maxHourly 2.80 USD/h pays for 4 replica(s) at 0.70 USD/h "
             "each; 7 wanted"),
            id="the-autoscaler-wants-more",
        ),
        pytest.param(
            AUTOSCALED,
            {**AT_FOUR, "conditions": [HELD]},
            Budget(L4, max_hourly=2.8, autoscaler_wants=7),
            ("True", "BudgetLimited", HELD["message"]),
            id="held-at-the-cap-keeps-its-message",
        ),
        pytest.param(
            AUTOSCALED,
            {**AT_FOUR, "conditions": [HELD]},
            Budget(L4, max_hourly=2.8),
            ("True", "BudgetLimited", HELD["message"]),
            id="held-after-a-restart",
        ),
        pytest.param(
            AUTOSCALED,
            {**AT_FOUR, "conditions": [HELD]},
            Budget(L4, max_hourly=2.8, autoscaler_wants=4),
            ("False", "WithinBudget", "4 replica(s) at 0.70 USD/h each (2.80 USD/h) within "
             "maxHourly 2.80 USD/h"),
            id="load-fell-to-the-cap",
        ),
    ],
)  # fmt: skip
def test_budget_limited_condition(
    spec: dict[str, Any],
    status: dict[str, Any],
    budget: Budget | None,
    expected: tuple[str, str, str] | None,
) -> None:
    assert budget_condition(spec, status, budget) == expected


def test_a_capped_count_is_recorded_and_announced_once() -> None:
    md = model_deployment(replicas=6)
    first = compute_status(md, Observed(deployment=None), placement(), 1, NOW, OWN_2_80)
    assert first.desired_replicas == 4
    [warning] = [a for a in announcements(md.status, first) if a.reason == "BudgetLimited"]
    assert (warning.type, warning.message) == ("Warning", HELD["message"])
    again = model_deployment(replicas=6, status=first.model_dump(by_alias=True, mode="json"))
    second = compute_status(again, Observed(deployment=None), placement(), 1, NOW, OWN_2_80)
    assert second == first  # steady state: nothing to write
    assert not [a for a in announcements(first, second) if a.reason == "BudgetLimited"]
    raised = compute_status(again, Observed(deployment=None), placement(), 1, NOW, Budget(L4, 7.0))
    assert raised.desired_replicas == 6
    assert [(a.type, a.reason) for a in announcements(first, raised)][-1] == (
        "Normal",
        "WithinBudget",
    )


# --- the autoscaler under a budget -----------------------------------------------------------

BEFORE = AutoscalerState(observing_since=0.0, last_time=10.0, last_busy=10.0)
AFTER = AutoscalerState(
    observing_since=0.0, last_time=20.0, last_busy=20.0, last_scale_time=20.0,
    last_scale_up_time=20.0,
)  # fmt: skip


@pytest.mark.parametrize(
    ("wanted", "current", "budget", "replicas", "changed", "scaled"),
    [
        pytest.param(6, 2, None, 6, True, True, id="no-budget"),
        pytest.param(3, 2, OWN_2_80, 3, True, True, id="within"),
        pytest.param(6, 2, OWN_2_80, 4, True, True, id="capped-up-to-the-cap"),
        pytest.param(6, 4, OWN_2_80, 4, False, False, id="capped-decision-holds"),
        pytest.param(6, 5, OWN_2_80, 4, True, True, id="above-the-cap-comes-down"),
    ],
)
def test_the_autoscaler_never_decides_above_the_cap(
    wanted: int, current: int, budget: Budget | None, replicas: int, changed: bool, scaled: bool
) -> None:
    decision = Decision(wanted, wanted != current, f"queue: {current} -> {wanted}", AFTER)
    capped = within_budget(decision, budget or Budget(L4), 1, current, BEFORE)
    assert (capped.replicas, capped.changed) == (replicas, changed)
    assert (capped.state.last_scale_time == AFTER.last_scale_time) is scaled
    if capped.replicas != wanted:
        assert capped.reason.startswith("maxHourly 2.80 USD/h pays for 4 replica(s)")
        assert capped.reason.endswith(f"(autoscaler: queue: {current} -> {wanted})")


# --- claims from the namespace's ModelDeployments ---------------------------------------------


def body(
    name: str, created: str, spec: dict[str, Any], status: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "creationTimestamp": created,
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kopf": "x"},
        },
        "spec": {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": "NVIDIA-L4"}, **spec},
        "status": status
        if status is not None
        else {
            "desiredReplicas": spec.get("replicas", 1),
            "placement": {"gpuProduct": "NVIDIA-L4", "gpusPerReplica": 1, "tensorParallel": 1},
            "conditions": [],
        },
    }


NODES = [gpu_node("a"), gpu_node("b", price="0.9")]  # the dearest L4: 0.9 USD/h


@pytest.mark.parametrize(
    ("neighbour", "wants", "expected"),
    [
        pytest.param(
            body("static", "2026-01-01T00:00:00Z", {"replicas": 3}),
            {},
            (BudgetClaim(("team-a", "static"), 1767225600.0, 0.9, 1, 3), 2.7),
            id="static",
        ),
        pytest.param(
            body("auto", "2026-01-01T00:00:00Z", {"replicas": 1, "minReplicas": 2,
                 "maxReplicas": 9, "budget": {"maxHourly": 5}}),
            {},
            (BudgetClaim(("team-a", "auto"), 1767225600.0, 0.9, 2, 2, 5.0), 0.9),
            id="autoscaled-needs-its-count",
        ),
        pytest.param(
            body("auto", "2026-01-01T00:00:00Z", {"replicas": 2, "maxReplicas": 9}),
            {"auto": 7},
            (BudgetClaim(("team-a", "auto"), 1767225600.0, 0.9, 1, 7), 1.8),
            id="autoscaled-needs-what-its-autoscaler-wants",
        ),
        pytest.param(body("new", "2026-01-01T00:00:00Z", {"replicas": 2}, {}), {}, None,
                     id="unplaced-claims-nothing"),
        pytest.param(body("bad", "2026-01-01T00:00:00Z", {"replicas": -1}), {}, None,
                     id="invalid-claims-nothing"),
    ],
)  # fmt: skip
def test_claim_of(
    neighbour: dict[str, Any], wants: dict[str, int], expected: tuple[BudgetClaim, float] | None
) -> None:
    found = claim_of(slim(neighbour), NODES, SHEET, wants)
    assert found == (None if expected is None else (expected[0], pytest.approx(expected[1])))


def test_slim_keeps_only_what_claims_read() -> None:
    slimmed = slim(body("static", "2026-01-01T00:00:00Z", {"replicas": 3}))
    assert slimmed["metadata"] == {
        "name": "static",
        "namespace": "team-a",
        "creationTimestamp": "2026-01-01T00:00:00Z",
    }
    assert set(slimmed["status"]) == {"desiredReplicas", "placement"}


def test_budget_for_shares_with_the_others_and_skips_itself() -> None:
    older = body("older", "2026-01-01T00:00:00Z", {"replicas": 4})
    md = model_deployment(replicas=4)
    me = body("qwen", "2026-02-01T00:00:00Z", {"replicas": 4})
    md = md.model_copy(
        update={
            "metadata": md.metadata.model_copy(
                update={"creation_timestamp": "2026-02-01T00:00:00Z"}
            )
        }
    )
    budget = budget_for(md, placement(), NODES, SHEET, 3.6, [slim(older), slim(me)])
    assert budget.per_replica_hourly == pytest.approx(0.9)
    assert budget.namespace is not None
    assert [claim.owner for claim in budget.namespace.others] == [("team-a", "older")]
    assert budget.namespace.others_hourly == pytest.approx(3.6)
    # 3.60 USD/h pays for 4 replicas: equal parts are 2 and 2, but the older one runs 4 now,
    # so the newer one starts with none and grows as the older one shrinks.
    assert budget.cap(4, 1).replicas == 0
    shrunk = [slim(body("older", "2026-01-01T00:00:00Z", {"replicas": 4}, {
        "desiredReplicas": 2,
        "placement": {"gpuProduct": "NVIDIA-L4", "gpusPerReplica": 1, "tensorParallel": 1},
    }))]  # fmt: skip
    assert budget_for(md, placement(), NODES, SHEET, 3.6, shrunk).cap(4, 1).replicas == 2
    assert budget_for(md, placement(), NODES, SHEET, None, shrunk).namespace is None
