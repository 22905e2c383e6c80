"""A ModelDeployment's placement: automatic, pinned, kept stable, or explained."""

from typing import Any

from modelfleet.api.types import PlacementStatus
from modelfleet.catalog.gpus import default_gpus
from modelfleet.plan.deployment import plan_deployment
from modelfleet.plan.inventory import Inventory, hypothetical_inventory
from modelfleet.plan.prices import PriceSheet
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


def test_a_running_deployment_keeps_its_placement_while_the_spec_is_unchanged() -> None:
    earlier = {
        "observedGeneration": 3,
        "placement": {
            "gpuProduct": "NVIDIA-A100-SXM4-80GB",
            "gpusPerReplica": 1,
            "tensorParallel": 1,
            "message": "1x A100-80GB: L4 was full",
        },
    }
    spec = {
        "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        "gpu": {"product": "auto"},
        "maxContextLength": 32768,
    }
    kept = decide(generation=3, status=earlier, **spec)
    assert isinstance(kept, PlacementStatus)
    assert (kept.gpu_product, kept.message) == (
        "NVIDIA-A100-SXM4-80GB",
        "1x A100-80GB: L4 was full",
    )
    replanned = decide(generation=4, status=earlier, **spec)
    assert isinstance(replanned, PlacementStatus)
    assert replanned.gpu_product == "NVIDIA-L4"


def test_an_unknown_model_runs_where_it_is_pinned_without_a_memory_check() -> None:
    chosen = decide(model="acme/private-13b", gpu={"product": "NVIDIA-L4", "count": 2})
    assert isinstance(chosen, PlacementStatus)
    assert (chosen.gpu_product, chosen.gpus_per_replica) == ("NVIDIA-L4", 2)
    assert "not in the catalog" in chosen.message


def test_infeasible_and_unknown_unpinned_models_are_explained() -> None:
    too_big = decide(
        model="deepseek-ai/DeepSeek-R1", gpu={"product": "NVIDIA-H100-80GB-HBM3", "count": 8}
    )
    assert isinstance(too_big, str)
    assert "8x H100-80GB gives 576 GiB" in too_big
    unknown = decide(model="acme/private-13b", gpu={"product": "auto"})
    assert isinstance(unknown, str)
    assert "not in the catalog" in unknown
