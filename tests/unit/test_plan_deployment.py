"""A ModelDeployment's placement: automatic, pinned, kept stable, or explained."""

from typing import Any

import pytest

from modelfleet.api.types import PlacementStatus
from modelfleet.catalog.gpus import default_gpus
from modelfleet.plan.deployment import plan_deployment, request_digest
from modelfleet.plan.inventory import Inventory, hypothetical_inventory
from modelfleet.plan.prices import PriceSheet
from modelfleet.plan.request import request_from_manifest
from tests.architectures import PHI_4
from tests.unit.factories import model_deployment

# One empty 8-GPU node of every catalog GPU but the T4 (2x T4 ties 1x L4 at $0.70/h).
EVERY_GPU = Inventory(
    pools=tuple(p for p in hypothetical_inventory(default_gpus()).pools if p.product != "Tesla-T4"),
    ignored=(),
)


def decide(
    generation: int = 1, status: dict[str, Any] | None = None, **spec: Any
) -> PlacementStatus | str:
    md = model_deployment(generation=generation, status=status, **spec)
    return plan_deployment(md, EVERY_GPU, PriceSheet())


def test_auto_picks_the_cheapest_gpu_that_fits() -> None:
    # 7.6B bf16 at 32k: about 17 GiB; one L4 (20 GiB usable at 0.9) is the cheapest that fits.
    chosen = decide(
        model="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        gpu={"product": "auto"},
        maxContextLength=32768,
    )
    assert isinstance(chosen, PlacementStatus)
    assert (chosen.gpu_product, chosen.gpus_per_replica, chosen.tensor_parallel) == (
        "NVIDIA-L4",
        1,
        1,
    )
    assert chosen.max_context_length == 32768
    assert chosen.hourly_cost_per_replica == 0.7
    assert "cheapest that fits" in chosen.message


def test_pins_are_honoured() -> None:
    chosen = decide(
        model="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        maxContextLength=32768,
        gpu={"product": "NVIDIA-H100-80GB-HBM3", "count": 2},
    )
    assert isinstance(chosen, PlacementStatus)
    assert (chosen.gpu_product, chosen.gpus_per_replica) == ("NVIDIA-H100-80GB-HBM3", 2)


SERVING_SPEC = {
    "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "gpu": {"product": "auto"},
    "maxContextLength": 32768,
}


def _earlier(spec: dict[str, Any]) -> dict[str, Any]:
    """Status of a deployment placed on an A100 (when the L4s were full) for `spec`."""
    digest = request_digest(request_from_manifest({"spec": spec}))
    return {
        "observedGeneration": 3,
        "placement": {
            "gpuProduct": "NVIDIA-A100-SXM4-80GB",
            "gpusPerReplica": 1,
            "tensorParallel": 1,
            "message": "1x A100-80GB: L4 was full",
            "specHash": digest,
        },
    }


@pytest.mark.parametrize(
    ("change", "generation", "expected"),
    [
        # unchanged spec, even after a resync at a newer generation: stay where it runs
        ({}, 3, "NVIDIA-A100-SXM4-80GB"),
        ({}, 4, "NVIDIA-A100-SXM4-80GB"),
        # a replica count is no reason to move GPUs
        ({"replicas": 3}, 4, "NVIDIA-A100-SXM4-80GB"),
        # a field the planner reads: planned afresh (the L4s are free now)
        ({"maxContextLength": 16384}, 4, "NVIDIA-L4"),
        ({"kvCacheDtype": "fp8"}, 4, "NVIDIA-L4"),
        # a pin on GPUs this cluster lacks: never the old GPUs (issue 9, item 2)
        ({"gpu": {"product": "Tesla-T4", "count": 2}}, 4, None),
        ({"gpu": {"product": "Tesla-T4", "count": 2}}, 3, None),
    ],
)
def test_a_placement_is_reused_only_for_the_request_that_produced_it(
    change: dict[str, Any], generation: int, expected: str | None
) -> None:
    earlier = _earlier(SERVING_SPEC)
    decision = decide(generation=generation, status=earlier, **{**SERVING_SPEC, **change})
    if expected is None:
        assert isinstance(decision, str), decision
        return
    assert isinstance(decision, PlacementStatus)
    assert decision.gpu_product == expected
    assert decision.spec_hash == request_digest(
        request_from_manifest({"spec": {**SERVING_SPEC, **change}})
    )
    if expected == "NVIDIA-A100-SXM4-80GB":
        assert decision.message == "1x A100-80GB: L4 was full"  # the original reason stands


def test_a_placement_without_a_digest_is_planned_afresh() -> None:
    earlier = _earlier(SERVING_SPEC)
    del earlier["placement"]["specHash"]
    decision = decide(generation=3, status=earlier, **SERVING_SPEC)
    assert isinstance(decision, PlacementStatus)
    assert decision.gpu_product == "NVIDIA-L4"


def test_an_unknown_model_runs_where_it_is_pinned_without_a_memory_check() -> None:
    chosen = decide(model="acme/private-13b", gpu={"product": "NVIDIA-L4", "count": 2})
    assert isinstance(chosen, PlacementStatus)
    assert (chosen.gpu_product, chosen.gpus_per_replica) == ("NVIDIA-L4", 2)
    assert "not in the catalog" in chosen.message
    assert "without a memory check (give spec.architecture for one)" in chosen.message


def test_infeasible_and_unknown_unpinned_models_are_explained() -> None:
    too_big = decide(
        model="deepseek-ai/DeepSeek-R1", gpu={"product": "NVIDIA-H100-80GB-HBM3", "count": 8}
    )
    assert isinstance(too_big, str)
    assert "8x H100-80GB gives 576 GiB" in too_big
    unknown = decide(model="acme/private-13b", gpu={"product": "auto"})
    assert isinstance(unknown, str)
    assert "not in the catalog: give its architecture inline in spec.architecture" in unknown


def test_an_inline_architecture_is_right_sized_like_a_catalog_model() -> None:
    # 14.7e9 x 2 B = 27.4 GiB + KV 204,800 B x 16,384 = 3.1 GiB + 2 x 1.5: 2x L4 at $1.40/h
    chosen = decide(model="microsoft/phi-4", gpu={"product": "auto"}, architecture=PHI_4)
    assert isinstance(chosen, PlacementStatus)
    assert (chosen.gpu_product, chosen.gpus_per_replica, chosen.max_context_length) == (
        "NVIDIA-L4",
        2,
        16384,
    )
    assert chosen.estimated_memory_gib == 33.5
    assert chosen.kv_cache_dtype == "auto"


def test_an_inline_architecture_is_checked_even_where_it_is_pinned() -> None:
    # pinned on one L4 (22 GiB usable) the 27 GiB of weights do not fit: explained, not run
    pinned = decide(
        model="microsoft/phi-4", gpu={"product": "NVIDIA-L4", "count": 1}, architecture=PHI_4
    )
    assert isinstance(pinned, str)
    assert "microsoft/phi-4 fits nowhere: 1x L4: needs 32 GiB, 1x L4 gives 22 GiB" in pinned


def test_an_inline_architecture_wins_over_the_catalog() -> None:
    tiny = {**PHI_4, "paramsB": 1, "maxContext": 4096}
    chosen = decide(model="deepseek-ai/DeepSeek-R1", gpu={"product": "auto"}, architecture=tiny)
    assert isinstance(chosen, PlacementStatus)
    assert (chosen.gpu_product, chosen.gpus_per_replica, chosen.quantization) == (
        "NVIDIA-L4",
        1,
        "bf16",
    )


def test_an_fp8_kv_cache_reaches_the_status_and_fits_a_smaller_gpu() -> None:
    spec = {"model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "gpu": {"product": "auto"}}
    auto = decide(**spec)
    fp8 = decide(**spec, kvCacheDtype="fp8")
    assert isinstance(auto, PlacementStatus) and isinstance(fp8, PlacementStatus)
    # the full 128k context: 22.7 GiB needs 2x L4; with fp8 KV 19.2 GiB fits one
    assert (auto.gpus_per_replica, auto.kv_cache_dtype) == (2, "auto")
    assert (fp8.gpu_product, fp8.gpus_per_replica, fp8.kv_cache_dtype) == ("NVIDIA-L4", 1, "fp8")
    assert fp8.hourly_cost_per_replica == 0.7
