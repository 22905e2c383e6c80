"""The cheapest fleet for a load (issue 12): replica capacity within the SLO, fleet cost, choice.

The capacity (perf/capacity.py) is checked against the simulator it reads (ReplicaEngine with
Poisson arrivals); the planner's choice with the DeepSeek-R1 example of the issue.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelfleet.api.types import PlacementStatus
from modelfleet.catalog.gpus import default_gpus
from modelfleet.catalog.models import default_models
from modelfleet.perf.capacity import option_capacity, replica_capacity
from modelfleet.perf.engine import EngineProfile, ReplicaEngine, Request, profile_for_placement
from modelfleet.plan.deployment import plan_deployment, request_digest
from modelfleet.plan.fleet import DEFAULT_TTFT_SECONDS, Load, ReplicaCapacity, fleet_for
from modelfleet.plan.inventory import hypothetical_inventory
from modelfleet.plan.planner import Placement, place
from modelfleet.plan.prices import PriceSheet
from modelfleet.plan.request import PlacementRequest, PlanInputError, request_from_manifest
from tests.unit.factories import model_deployment

R1 = "deepseek-ai/DeepSeek-R1"
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
EVERY_GPU = hypothetical_inventory(default_gpus())


def load(rps: float, prompt: int, output: int) -> Load:
    return Load(requests_per_second=rps, prompt_tokens=prompt, output_tokens=output)


@pytest.mark.parametrize(
    ("hourly", "capacity", "rps", "replicas", "fleet_hourly", "per_million"),
    [
        # 8 requests/s of 1,000 output tokens = 8,000 tokens/s = 28.8M tokens an hour
        (32.0, 10.0, 8.0, 1, 32.0, 32 / 28.8),
        (22.0, 1.8, 8.0, 5, 110.0, 110 / 28.8),  # ceil(4.44)
        (22.0, 2.0, 8.0, 4, 88.0, 88 / 28.8),  # exactly 4: no fifth replica
        (44.0, 100.0, 0.01, 1, 44.0, 44 / (0.01 * 3600 * 1000) * 1e6),  # at least one
    ],
)
def test_fleet_for(
    hourly: float,
    capacity: float,
    rps: float,
    replicas: int,
    fleet_hourly: float,
    per_million: float,
) -> None:
    fleet = fleet_for(hourly, ReplicaCapacity(capacity, 0.1), load(rps, 2000, 1000))
    assert fleet.replicas == replicas
    assert fleet.hourly_cost == pytest.approx(fleet_hourly)
    assert fleet.usd_per_million_output_tokens == pytest.approx(per_million)


def test_a_replica_that_serves_nothing_has_no_fleet() -> None:
    with pytest.raises(ValueError, match="serves nothing"):
        fleet_for(1.0, ReplicaCapacity(0.0, 9.0, reason="slow"), load(1, 10, 10))


def _profile(model: str, gpu: str, count: int, context: int) -> EngineProfile:
    return profile_for_placement(model, gpu, count, quantization=None, max_context=context)


def attainment(
    profile: EngineProfile, rate: float, prompt: int, output: int, ttft: float, seed: int
) -> float:
    """Share of requests with TTFT <= ttft in 900 simulated seconds (the first 10% warm up)."""
    rng = random.Random(seed)
    engine = ReplicaEngine(profile)
    arrivals: dict[str, float] = {}
    now = 0.0
    while True:
        now += rng.expovariate(rate)
        if now > 900:
            break
        arrivals[str(len(arrivals))] = now
        engine.submit(Request(str(len(arrivals) - 1), now, prompt, output))
    firsts = {e.request_id: e.time for e in engine.advance(900 + 3600) if e.kind == "first_token"}
    counted = [key for key, at in arrivals.items() if at > 90]
    return sum(firsts[key] - arrivals[key] <= ttft for key in counted) / len(counted)


SIMULATED = [
    # model, GPU, count, max context, prompt, output, what bounds the capacity
    (R1, "NVIDIA-B200", 4, 65536, 2000, 1000, "kv cache"),
    (R1, "NVIDIA-H200", 8, 65536, 2000, 1000, "headroom"),
    (R1, "NVIDIA-H200", 8, 65536, 500, 4000, "headroom"),
    (LLAMA_8B, "NVIDIA-L4", 1, 32768, 1000, 200, "kv cache"),
    (LLAMA_8B, "NVIDIA-H100-80GB-HBM3", 1, 32768, 4000, 300, "headroom"),
    (LLAMA_8B, "NVIDIA-H100-80GB-HBM3", 1, 32768, 300, 600, "headroom"),
    (LLAMA_8B, "NVIDIA-L40S", 1, 32768, 2000, 500, "headroom"),
]


@pytest.mark.parametrize(
    ("model", "gpu", "count", "context", "prompt", "output", "limit"), SIMULATED
)
def test_the_capacity_holds_in_the_simulator(
    model: str, gpu: str, count: int, context: int, prompt: int, output: int, limit: str
) -> None:
    """At the capacity the simulated replica meets the 2 s TTFT for >= 98% of requests (two
    seeds); at 1.5x it does not: the estimate is neither optimistic nor far too cautious."""
    profile = _profile(model, gpu, count, context)
    capacity = replica_capacity(profile, prompt, output, 2.0)
    assert capacity.reason is None
    assert capacity.limit == limit
    for seed in (1, 2):
        assert attainment(profile, capacity.requests_per_s, prompt, output, 2.0, seed) >= 0.98
    assert attainment(profile, 1.5 * capacity.requests_per_s, prompt, output, 2.0, 1) < 0.99


def test_a_prompt_too_long_for_the_ttft_alone_is_no_candidate() -> None:
    # 30,000 prompt tokens of Llama-8B on one L4 take 15 steps of 2,048 tokens, ~1 s each.
    profile = _profile(LLAMA_8B, "NVIDIA-L4", 1, 32768)
    capacity = replica_capacity(profile, 30_000, 100, 2.0)
    assert capacity.requests_per_s == 0
    assert capacity.ttft_alone_s > 2.0
    assert capacity.reason is not None
    assert "30,000-token prompt alone, over the 2 s target" in capacity.reason
    assert replica_capacity(profile, 30_000, 100, 60.0).requests_per_s > 0


def test_a_tpot_target_below_one_sequence_step_is_no_candidate() -> None:
    profile = _profile(LLAMA_8B, "NVIDIA-L4", 1, 32768)
    capacity = replica_capacity(profile, 500, 100, 2.0, tpot_seconds=0.001)
    assert capacity.requests_per_s == 0
    assert capacity.reason is not None and "TPOT" in capacity.reason


@pytest.mark.parametrize(("loose", "tight"), [(4.0, 2.0), (2.0, 0.5)])
def test_a_looser_ttft_target_never_serves_less(loose: float, tight: float) -> None:
    profile = _profile(LLAMA_8B, "NVIDIA-L40S", 1, 32768)
    assert (
        replica_capacity(profile, 2000, 300, loose).requests_per_s
        >= replica_capacity(profile, 2000, 300, tight).requests_per_s
    )


def test_a_tpot_target_lowers_the_capacity() -> None:
    profile = _profile(LLAMA_8B, "NVIDIA-H100-80GB-HBM3", 1, 32768)
    free = replica_capacity(profile, 300, 600, 2.0)
    bound = replica_capacity(profile, 300, 600, 2.0, tpot_seconds=0.015)
    assert 0 < bound.requests_per_s < free.requests_per_s
    assert bound.limit == "tpot" and bound.step_s <= 0.015


def r1(**fields: Any) -> PlacementRequest:
    return PlacementRequest(model=R1, max_context_length=65536, **fields)


def plan(request: PlacementRequest) -> Placement:
    return place(request, EVERY_GPU, PriceSheet(), capacity=option_capacity)


def test_deepseek_r1_without_a_load_is_the_cheapest_replica() -> None:
    # The issue as found: 4x B200 at $22/h (2,048 tokens/s, $2.98 per 1M at full use) over
    # 8x H200 at $32/h (9,241 tokens/s, $0.96 per 1M).
    placement = plan(r1())
    assert placement.chosen is not None and placement.basis == "replica"
    assert placement.chosen.display == "4x B200"
    by_name = {option.display: option for option in placement.options if option.feasible}
    assert by_name["4x B200"].usd_per_million_tokens == pytest.approx(2.984, abs=1e-3)
    assert by_name["8x H200"].usd_per_million_tokens == pytest.approx(0.962, abs=1e-3)
    assert "no load known, so the cheapest replica" in placement.message


@pytest.mark.parametrize(
    ("rps", "prompt", "output", "chosen", "replicas", "fleet_hourly"),
    [
        # Light: one 4x B200 replica (1.82 requests/s within 2 s TTFT) is enough and cheapest.
        (1.0, 2000, 1000, "4x B200", 1, 22.0),
        # The issue's case under real traffic: 8 requests/s of 2,000 + 1,000 tokens. 4x B200
        # holds ~300 GiB of KV less than 8x H200: 1.82 requests/s a replica, 5 replicas,
        # $110/h ($3.82 per 1M output tokens); one 8x H200 serves 10.8: $32/h ($1.11 per 1M).
        (8.0, 2000, 1000, "8x H200", 1, 32.0),
        (16.0, 2000, 1000, "8x H200", 2, 64.0),  # 8x B200 (15.3 a replica) would be 2 x $44
        # Long outputs at scale: 8x B200's KV and bandwidth win ($0.76 per 1M output tokens).
        (8.0, 1000, 4000, "8x B200", 2, 88.0),
    ],
)
def test_deepseek_r1_fleet_for_a_load(
    rps: float, prompt: int, output: int, chosen: str, replicas: int, fleet_hourly: float
) -> None:
    placement = plan(r1(load=load(rps, prompt, output)))
    assert placement.chosen is not None and placement.fleet is not None
    assert placement.basis == "fleet"
    assert placement.chosen.display == chosen
    assert placement.fleet.replicas == replicas
    assert placement.fleet.hourly_cost == pytest.approx(fleet_hourly)
    assert "the cheapest fleet" in placement.message
    fleets = [option.fleet.hourly_cost for option in placement.options if option.fleet]
    assert placement.fleet.hourly_cost == min(fleets)


def test_the_issue_example_costs_three_times_as_much_on_the_cheapest_replica() -> None:
    placement = plan(r1(load=load(8, 2000, 1000)))
    by_name = {option.display: option for option in placement.options if option.fleet}
    b200, h200 = by_name["4x B200"].fleet, by_name["8x H200"].fleet
    assert b200 is not None and h200 is not None
    assert (b200.replicas, b200.hourly_cost) == (5, 110.0)
    assert b200.usd_per_million_output_tokens == pytest.approx(3.819, abs=1e-3)
    assert h200.usd_per_million_output_tokens == pytest.approx(1.111, abs=1e-3)
    assert b200.hourly_cost / h200.hourly_cost > 3
    assert "the cheapest replica would take 5 replicas of 4x B200 at $110.00/h" in (
        placement.message
    )


def test_options_that_miss_the_ttft_are_rejected_with_the_reason() -> None:
    request = PlacementRequest(
        model=LLAMA_8B, max_context_length=32768, load=load(0.5, 30_000, 100)
    )
    placement = plan(request)
    assert placement.chosen is not None and placement.chosen.gpu_name != "L4"
    l4 = next(o for o in placement.options if o.display == "1x L4")
    assert not l4.feasible and l4.reason is not None
    assert "prompt alone, over the 2 s target" in l4.reason


def test_no_option_meets_the_ttft() -> None:
    request = PlacementRequest(
        model=LLAMA_8B,
        max_context_length=32768,
        load=load(0.5, 30_000, 100),
        ttft_seconds=0.01,
    )
    placement = plan(request)
    assert not placement.feasible
    assert placement.message.startswith(
        f"{LLAMA_8B} fits, but no replica meets the SLO for 0.5 requests/s"
    )


def test_a_load_longer_than_the_context_is_refused() -> None:
    placement = plan(r1(load=load(1, 60_000, 10_000)))
    assert not placement.feasible
    assert "exceed the maxContextLength of 65,536" in placement.message


def test_a_load_without_a_capacity_model_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="capacity model"):
        place(r1(load=load(1, 10, 10)), EVERY_GPU, PriceSheet())


def test_pins_still_hold_with_a_load() -> None:
    placement = plan(r1(load=load(8, 2000, 1000), gpu_product="NVIDIA-B200", gpu_count=4))
    assert placement.chosen is not None and placement.fleet is not None
    assert (placement.chosen.display, placement.fleet.replicas) == ("4x B200", 5)


def test_as_dict_has_the_fleet() -> None:
    data = plan(r1(load=load(8, 2000, 1000))).as_dict()
    assert data["basis"] == "fleet"
    assert data["load"] == {"requestsPerSecond": 8.0, "promptTokens": 2000, "outputTokens": 1000}
    assert (data["replicasForLoad"], data["fleetHourlyCost"]) == (1, 32.0)
    first = data["options"][0]
    assert first["replicasForLoad"] == 1
    assert math.isclose(first["fleetUsdPerMillionOutputTokens"], 1.1111, abs_tol=1e-4)
    assert first["requestsPerSecondPerReplica"] > 8


# -- the spec: expectedLoad and the SLO, the digest, the operator's placement -------------------

R1_SPEC: dict[str, Any] = {"model": R1, "gpu": {"product": "auto"}, "maxContextLength": 65536}
ISSUE_LOAD = {"requestsPerSecond": 8, "promptTokens": 2000, "outputTokens": 1000}


def test_the_manifest_gives_the_load_and_the_slo() -> None:
    request = request_from_manifest(
        {
            "spec": {
                **R1_SPEC,
                "expectedLoad": ISSUE_LOAD,
                "slo": {"ttftSeconds": 1.5, "tpotSeconds": 0.05},
            }
        }
    )
    assert request.load == load(8, 2000, 1000)
    assert (request.ttft_seconds, request.tpot_seconds) == (1.5, 0.05)
    assert request_from_manifest({"spec": R1_SPEC}).ttft_seconds == DEFAULT_TTFT_SECONDS == 2.0


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (
            {"expectedLoad": {**ISSUE_LOAD, "requestsPerSecond": 0}},
            "spec.expectedLoad.requestsPerSecond",
        ),
        ({"expectedLoad": {"requestsPerSecond": 1}}, "spec.expectedLoad.promptTokens"),
        ({"expectedLoad": {**ISSUE_LOAD, "burst": 2}}, "spec.expectedLoad.burst"),
        ({"slo": {"ttftSeconds": -1}}, "spec.slo.ttftSeconds"),
        ({"slo": "fast"}, "spec.slo: must be an object"),
    ],
)
def test_bad_load_and_slo_fields_are_named(spec: dict[str, Any], error: str) -> None:
    with pytest.raises(PlanInputError) as raised:
        request_from_manifest({"spec": {**R1_SPEC, **spec}})
    assert any(line.startswith(error) for line in raised.value.errors), raised.value.errors


@pytest.mark.parametrize(
    ("request_", "digest"),
    [
        # Digests from before the load fields existed (main at 0cf4ce2): a running deployment
        # without a load keeps its digest, so an upgrade moves nothing.
        (PlacementRequest(model=R1, max_context_length=65536), "77935a0f6cc5f15e"),
        (
            PlacementRequest(
                model="Qwen/Qwen2.5-7B-Instruct", gpu_product="NVIDIA-L4", quantization="auto"
            ),
            "dcc94680811ea783",
        ),
        # an SLO without a load changes nothing the planner does: same digest
        (PlacementRequest(model=R1, max_context_length=65536, ttft_seconds=1), "77935a0f6cc5f15e"),
    ],
)
def test_digest_without_a_load_is_unchanged(request_: PlacementRequest, digest: str) -> None:
    assert request_digest(request_) == digest


def test_a_load_is_part_of_the_digest() -> None:
    base = r1(load=load(8, 2000, 1000))
    assert request_digest(base) != request_digest(r1())
    assert request_digest(base) != request_digest(r1(load=load(9, 2000, 1000)))
    assert request_digest(base) != request_digest(base.model_copy(update={"ttft_seconds": 1.0}))


def decide(status: dict[str, Any] | None = None, **spec: Any) -> PlacementStatus | str:
    md = model_deployment(generation=2, status=status, **spec)
    return plan_deployment(md, EVERY_GPU, PriceSheet(), option_capacity)


def test_the_operator_places_for_the_expected_load_and_says_why() -> None:
    fleet = decide(**R1_SPEC, expectedLoad=ISSUE_LOAD)
    assert isinstance(fleet, PlacementStatus)
    assert (fleet.gpu_product, fleet.gpus_per_replica) == ("NVIDIA-H200", 8)
    assert fleet.message.startswith(
        "1 replica of 8x H200 at $32.00/h, the cheapest fleet (needs 641 GiB of 1015 GiB, fp8) "
        "for 8 requests/s of 2,000 prompt + 1,000 output tokens within TTFT 2 s"
    )
    replica = decide(**R1_SPEC)
    assert isinstance(replica, PlacementStatus)
    assert (replica.gpu_product, replica.gpus_per_replica) == ("NVIDIA-B200", 4)
    assert replica.message.endswith("; no load known, so the cheapest replica")


def test_a_running_deployment_keeps_its_placement_until_the_load_in_its_spec_changes() -> None:
    spec = {**R1_SPEC, "expectedLoad": ISSUE_LOAD}
    digest = request_digest(request_from_manifest({"spec": spec}))
    earlier = {
        "placement": {
            "gpuProduct": "NVIDIA-B200",
            "gpusPerReplica": 4,
            "tensorParallel": 4,
            "message": "placed earlier",
            "specHash": digest,
        }
    }
    kept = decide(status=earlier, **spec)
    assert isinstance(kept, PlacementStatus)
    assert (kept.gpu_product, kept.gpus_per_replica, kept.message) == (
        "NVIDIA-B200",
        4,
        "placed earlier",
    )
    changed = decide(
        status=earlier, **{**spec, "expectedLoad": {**ISSUE_LOAD, "outputTokens": 999}}
    )
    assert isinstance(changed, PlacementStatus)
    assert (changed.gpu_product, changed.gpus_per_replica) == ("NVIDIA-H200", 8)


def test_the_operator_without_a_capacity_model_refuses_a_load() -> None:
    md = model_deployment(**R1_SPEC, expectedLoad=ISSUE_LOAD)
    with pytest.raises(ValueError, match="capacity model"):
        plan_deployment(md, EVERY_GPU, PriceSheet())


# -- never a crash, never nonsense -----------------------------------------------------------


GPUS = [gpu for gpu in default_gpus().gpus if gpu.product_labels]


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    count=st.sampled_from([1, 2, 4, 8]),
    prompt=st.integers(1, 40_000),
    output=st.integers(1, 20_000),
    ttft=st.floats(0.01, 30),
    tpot=st.none() | st.floats(0.001, 1),
)
def test_capacity_is_total_and_sane(
    data: st.DataObject, count: int, prompt: int, output: int, ttft: float, tpot: float | None
) -> None:
    """Any catalog model on any GPU that holds it, any request size and targets: a capacity
    >= 0, a reason exactly when it is 0, and a fleet for any load when it is above 0."""
    model = data.draw(st.sampled_from(default_models().models))
    gpu = data.draw(st.sampled_from(GPUS))
    try:
        profile = _profile(model.id, gpu.product_labels[0], count, min(model.max_context, 32768))
    except ValueError:
        return  # does not fit: the planner never asks
    capacity = replica_capacity(profile, prompt, output, ttft, tpot)
    assert capacity.requests_per_s >= 0 and math.isfinite(capacity.requests_per_s)
    assert (capacity.reason is None) == (capacity.requests_per_s > 0)
    if capacity.requests_per_s > 0:
        assert capacity.ttft_alone_s <= ttft
        assert tpot is None or capacity.step_s <= tpot
        fleet = fleet_for(1.0, capacity, load(3.0, prompt, output))
        assert fleet.replicas >= 1
        assert fleet.replicas * capacity.requests_per_s >= 3.0 * (1 - 1e-9)
