"""The planner: cheapest feasible placement, pins, fall-through, explained rejections."""

from typing import Any

import pytest

from modelfleet.catalog import ModelArch
from modelfleet.plan import (
    Inventory,
    PlacementRequest,
    PriceSheet,
    PriceSheetError,
    parse_inventory,
    parse_price_overrides,
    place,
)

# product label -> (nvidia.com/gpu.memory MiB, GPUs per node); default prices from the catalog:
# L4 0.70, A100-80GB 2.00, H100 3.00, H200 4.00 USD per GPU-hour.
POOLS = {
    "NVIDIA-L4": (23034, 4),
    "NVIDIA-A100-SXM4-80GB": (81920, 8),
    "NVIDIA-H100-80GB-HBM3": (81559, 8),
    "NVIDIA-H200": (143771, 8),
}


def node(name: str, product: str, **labels: str) -> dict[str, Any]:
    memory, gpus = POOLS[product]
    return {
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"nvidia.com/gpu.product": product, "nvidia.com/gpu.memory": str(memory)}
            | labels,
        },
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}},
    }


def pod(node_name: str, gpus: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "kind": "Pod",
        "spec": {
            "nodeName": node_name,
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
        "status": {"phase": phase},
    }


def cluster(pods: list[dict[str, Any]] | None = None) -> Inventory:
    nodes = [node(f"{p.lower()}-0", p) for p in POOLS] + [
        {"metadata": {"name": "cpu-0"}, "status": {"allocatable": {"cpu": "16"}}}
    ]
    return parse_inventory(nodes, pods or [])


@pytest.mark.parametrize(
    ("request_fields", "product", "gpus", "hourly"),
    [
        # 7B at 32k needs 17.4 GiB: one L4 (20.2 GiB usable) at $0.70 is the cheapest
        ({"model": "r1-distill-qwen-7b", "max_context_length": 32768}, "NVIDIA-L4", 1, 0.70),
        # at the full 128k it needs 22.7 GiB: 2x L4 ($1.40) beats 1x A100 ($2.00)
        ({"model": "r1-distill-qwen-7b"}, "NVIDIA-L4", 2, 1.40),
        # ... but with an fp8 KV cache (7 -> 3.5 GiB) it needs 19.2 GiB: one L4 again
        ({"model": "r1-distill-qwen-7b", "kv_cache_dtype": "fp8"}, "NVIDIA-L4", 1, 0.70),
        # 72B bf16 ~148 GiB: 2x H200 ($8, 253 GiB) and 4x A100 ($8, 4 x 80 x 0.9 = 288 GiB)
        # cost the same; the tie goes to more headroom
        ({"model": "qwen2.5-72b"}, "NVIDIA-A100-SXM4-80GB", 4, 8.00),
        # R1 fp8 648 GiB: only 8x H200 (1011 GiB) holds it
        ({"model": "deepseek-r1"}, "NVIDIA-H200", 8, 32.00),
        # pins honoured even when dearer
        (
            {"model": "llama-3.1-8b", "gpu_product": "NVIDIA-H100-80GB-HBM3"},
            "NVIDIA-H100-80GB-HBM3",
            1,
            3.00,
        ),
        ({"model": "llama-3.1-8b", "gpu_product": "h200", "gpu_count": 2}, "NVIDIA-H200", 2, 8.0),
        ({"model": "llama-3.1-8b", "gpu_product": "auto", "gpu_count": 4}, "NVIDIA-L4", 4, 2.80),
        # quantization pin: R1 in awq (369e9 B = 344 GiB + 10.7 KV + 12) fits 8x A100 (576 GiB)
        ({"model": "deepseek-r1", "quantization": "awq"}, "NVIDIA-A100-SXM4-80GB", 8, 16.00),
        (
            {"model": "deepseek-r1", "quantization": "awq", "gpu_product": "NVIDIA-H100-80GB-HBM3"},
            "NVIDIA-H100-80GB-HBM3",
            8,
            24.00,
        ),
    ],
)
def test_cheapest_feasible(
    request_fields: dict[str, Any], product: str, gpus: int, hourly: float
) -> None:
    placement = place(PlacementRequest(**request_fields), cluster(), PriceSheet())
    assert placement.feasible, placement.message
    assert (placement.gpu_product, placement.gpus_per_replica) == (product, gpus)
    assert placement.hourly_cost_per_replica == pytest.approx(hourly)
    assert placement.nodes_per_replica == 1
    assert placement.capacity_available


def test_an_inline_architecture_replaces_the_catalog() -> None:
    # "llama-3.1-8b" told to be a 70B: the inline numbers win (131.5 GiB of weights + 2.5 KV
    # + 3 overhead): 2x A100 (144 GiB), not 1x L4
    big = ModelArch(
        id="llama-3.1-8b",
        params_b=70.6,
        layers=80,
        hidden=8192,
        attention_heads=64,
        kv_heads=8,
        head_dim=128,
        max_context=8192,
    )
    placement = place(
        PlacementRequest(model="llama-3.1-8b", architecture=big), cluster(), PriceSheet()
    )
    assert (placement.gpu_product, placement.gpus_per_replica) == ("NVIDIA-A100-SXM4-80GB", 2)
    assert placement.max_context_length == 8192


def test_the_kv_cache_dtype_is_reported() -> None:
    request = PlacementRequest(model="r1-distill-qwen-7b", kv_cache_dtype="fp8")
    assert place(request, cluster(), PriceSheet()).as_dict()["kvCacheDtype"] == "fp8"


def test_auto_quantization_may_choose_fp8() -> None:
    # Qwen2.5-72B in fp8: 72.7e9 B = 67.7 GiB + 10 GiB KV(32k) + 1.5 = 79.2 GiB
    #   -> $4/h options beat bf16 at $8: 1x H200 (126 GiB, headroom 47) and 2x A100
    #   (2 x 80 x 0.9 = 144 GiB, needs 80.7, headroom 63): the tie goes to more headroom
    placement = place(
        PlacementRequest(model="qwen2.5-72b", quantization="auto"), cluster(), PriceSheet()
    )
    assert (placement.gpu_product, placement.gpus_per_replica) == ("NVIDIA-A100-SXM4-80GB", 2)
    assert placement.hourly_cost_per_replica == 4.0
    assert placement.quantization == "fp8" and placement.quantized


def test_price_overrides_change_the_choice() -> None:
    prices = parse_price_overrides({"NVIDIA-H200": 1.5})  # 2x H200 = $3 < 4x A100 = $8
    placement = place(PlacementRequest(model="qwen2.5-72b"), cluster(), prices)
    assert (placement.gpu_product, placement.gpus_per_replica) == ("NVIDIA-H200", 2)


def test_infeasible_is_explained() -> None:
    placement = place(
        PlacementRequest(model="deepseek-r1", gpu_product="NVIDIA-H100-80GB-HBM3"),
        cluster(),
        PriceSheet(),
    )
    assert not placement.feasible
    assert placement.gpu_product is None
    # 8 x 81,559 MiB x 0.9 = 573 GiB < 648 GiB (see test_memory)
    assert "needs 648 GiB, 8x H100-80GB gives 573 GiB" in placement.message
    assert all(option.reason for option in placement.options)
    assert placement.as_dict()["reason"] == placement.message


@pytest.mark.parametrize(
    ("request_fields", "reason"),
    [
        (
            {"model": "r1-distill-qwen-7b", "gpu_product": "NVIDIA-L4", "gpu_count": 8},
            "needs 8 GPUs on one node, NVIDIA-L4 nodes have at most 4",
        ),
        (
            {"model": "r1-distill-qwen-7b", "gpu_product": "NVIDIA-H200", "gpu_count": 8},
            "tensor parallel 8 does not divide 28 attention heads",
        ),
        ({"model": "acme/unknown"}, "not in the catalog: give its architecture inline in spec"),
        ({"model": "llama-3.1-8b", "gpu_product": "NVIDIA-B200"}, "no NVIDIA-B200 nodes"),
        ({"model": "llama-3.1-8b", "max_context_length": 200_000}, "exceeds the 131072"),
    ],
)
def test_rejections(request_fields: dict[str, Any], reason: str) -> None:
    placement = place(PlacementRequest(**request_fields), cluster(), PriceSheet())
    assert not placement.feasible
    assert reason in placement.message


def test_full_pool_falls_through_to_next_cheapest() -> None:
    # one L4 node with all 4 GPUs used: the 7B goes to the next cheapest, 1x A100
    pods = [pod("nvidia-l4-0", 3), pod("nvidia-l4-0", 1), pod("nvidia-l4-0", 4, "Succeeded")]
    placement = place(
        PlacementRequest(model="r1-distill-qwen-7b", max_context_length=32768),
        cluster(pods),
        PriceSheet(),
    )
    assert (placement.gpu_product, placement.gpus_per_replica) == ("NVIDIA-A100-SXM4-80GB", 1)
    assert "1x L4 at $0.70/h, has no node with 1 free GPUs" in placement.message
    assert placement.capacity_available


def test_no_free_capacity_anywhere_keeps_the_cheapest_and_says_so() -> None:
    pods = [pod("nvidia-h200-0", 8)]
    placement = place(PlacementRequest(model="deepseek-r1"), cluster(pods), PriceSheet())
    assert placement.feasible and not placement.capacity_available
    assert placement.gpu_product == "NVIDIA-H200"
    assert "waits for capacity" in placement.message


def test_inventory_recognises_gke_and_karpenter_and_spot() -> None:
    nodes = [
        {
            "metadata": {
                "name": "gke",
                "labels": {
                    "cloud.google.com/gke-accelerator": "nvidia-l4",
                    "cloud.google.com/gke-spot": "true",
                },
            },
            "status": {"capacity": {"nvidia.com/gpu": "2"}},
        },
        {
            "metadata": {
                "name": "aws",
                "labels": {
                    "karpenter.k8s.aws/instance-gpu-name": "a100",
                    "karpenter.k8s.aws/instance-gpu-memory": "81920",
                    "karpenter.k8s.aws/instance-gpu-count": "8",
                },
            }
        },
        {
            "metadata": {"name": "cordoned", "labels": {"nvidia.com/gpu.product": "NVIDIA-L4"}},
            "spec": {"unschedulable": True},
            "status": {"allocatable": {"nvidia.com/gpu": "4"}},
        },
        {"metadata": {"name": "mystery"}, "status": {"allocatable": {"nvidia.com/gpu": "1"}}},
    ]
    inventory = parse_inventory(nodes)
    by_node = {pool.nodes[0].name: pool for pool in inventory.pools}
    assert by_node["gke"].gpu is not None and by_node["gke"].gpu.name == "L4"
    assert by_node["gke"].spot and by_node["gke"].free_gpus == 2
    assert by_node["aws"].gpu is not None and by_node["aws"].gpu.name == "A100-80GB"
    assert by_node["aws"].gpus_per_node == 8 and by_node["aws"].memory_mib == 81920
    assert by_node["cordoned"].free_gpus == 0  # catalog memory: 24 GiB = 24576 MiB
    assert by_node["cordoned"].memory_mib == 24 * 1024
    assert inventory.ignored == ("mystery: has nvidia.com/gpu but no GPU product label",)
    # spot node without a spot price: priced on-demand; with one: the spot price
    gke = by_node["gke"]
    assert PriceSheet().per_gpu_hour(gke.product, gke.gpu, gke.spot) == 0.70
    spot = parse_price_overrides({"NVIDIA-L4": {"onDemand": 0.6, "spot": 0.25}})
    assert spot.per_gpu_hour(gke.product, gke.gpu, gke.spot) == 0.25


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"NVIDIA-L4": "cheap"}, "prices.NVIDIA-L4: must be a number of USD per GPU-hour"),
        ({"NVIDIA-L4": -1}, "prices.NVIDIA-L4: must be a finite number >= 0"),
        ({"NVIDIA-L4": {"spot": True}}, "prices.NVIDIA-L4.spot: must be a number"),
        ({"NVIDIA-L4": {"reserved": 1}}, "prices.NVIDIA-L4: unknown field(s) reserved"),
        ([1, 2], "prices: must be a mapping"),
    ],
)
def test_price_override_errors(data: Any, error: str) -> None:
    with pytest.raises(PriceSheetError) as raised:
        parse_price_overrides(data)
    assert any(line.startswith(error) for line in raised.value.errors), raised.value.errors
