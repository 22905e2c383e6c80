"""USD per GPU-hour per node: the price sheet, or the node's own annotation."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.cost.node_prices import (
    GPU_HOURLY_ANNOTATION,
    NodePrice,
    node_price,
    node_prices,
    parse_gpu_hourly,
)
from modelfleet.plan.prices import PriceSheet, parse_price_overrides


def node(
    name: str = "gpu-1",
    product: str | None = "NVIDIA-L4",
    capacity: int | None = 4,
    allocatable: int | None = None,
    annotation: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    all_labels = {**({"nvidia.com/gpu.product": product} if product else {}), **(labels or {})}
    status: dict[str, Any] = {}
    if capacity is not None:
        status["capacity"] = {"nvidia.com/gpu": str(capacity)}
    if allocatable is not None:
        status["allocatable"] = {"nvidia.com/gpu": str(allocatable)}
    metadata: dict[str, Any] = {"name": name, "labels": all_labels}
    if annotation is not None:
        metadata["annotations"] = {GPU_HOURLY_ANNOTATION: annotation}
    return {"metadata": metadata, "status": status}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2.49", 2.49), (" 1.85 ", 1.85), ("0", 0.0), ("3", 3.0), (".5", 0.5), ("7.", 7.0)],
)
def test_annotation_values_taken(value: str, expected: float) -> None:
    assert parse_gpu_hourly(value) == expected


@pytest.mark.parametrize(
    "value", ["", "abc", "-1", "+2", "$2.49", "2,49", "1e3", "nan", "inf", "2.49/h", "1_000"]
)
def test_annotation_values_refused(value: str) -> None:
    with pytest.raises(ValueError, match="USD per GPU-hour"):
        parse_gpu_hourly(value)


SHEET = parse_price_overrides({"NVIDIA-H100-80GB-HBM3": {"onDemand": 2.49, "spot": 1.2}})
SPOT = {"karpenter.sh/capacity-type": "spot"}


@pytest.mark.parametrize(
    ("obj", "sheet", "expected"),
    [
        pytest.param(
            node(),
            PriceSheet(),
            NodePrice("gpu-1", "NVIDIA-L4", 4, 0.70, "price sheet"),
            id="catalog-default",
        ),
        pytest.param(
            node(product="NVIDIA-H100-80GB-HBM3", capacity=8),
            SHEET,
            NodePrice("gpu-1", "NVIDIA-H100-80GB-HBM3", 8, 2.49, "price sheet"),
            id="sheet-override",
        ),
        pytest.param(
            node(product="NVIDIA-H100-80GB-HBM3", capacity=8, labels=SPOT),
            SHEET,
            NodePrice("gpu-1", "NVIDIA-H100-80GB-HBM3", 8, 1.2, "price sheet"),
            id="spot-node-sheet-spot-price",
        ),
        pytest.param(
            node(annotation="0.41"),
            PriceSheet(),
            NodePrice("gpu-1", "NVIDIA-L4", 4, 0.41, "annotation"),
            id="annotation-wins",
        ),
        pytest.param(
            node(product="NVIDIA-H100-80GB-HBM3", capacity=8, labels=SPOT, annotation="0.95"),
            SHEET,
            NodePrice("gpu-1", "NVIDIA-H100-80GB-HBM3", 8, 0.95, "annotation"),
            id="annotation-wins-over-spot",
        ),
        pytest.param(
            node(annotation="cheap"),
            PriceSheet(),
            NodePrice(
                "gpu-1",
                "NVIDIA-L4",
                4,
                0.70,
                "price sheet",
                "node gpu-1: annotation modelfleet.dev/gpu-hourly-usd must be a plain number of "
                "USD per GPU-hour, e.g. 2.49, got 'cheap'; priced from the price sheet (0.7 USD "
                "per GPU-hour)",
            ),
            id="invalid-annotation-reported-not-used",
        ),
        pytest.param(
            node(capacity=8, allocatable=7),
            PriceSheet(),
            NodePrice("gpu-1", "NVIDIA-L4", 8, 0.70, "price sheet"),
            id="unhealthy-gpu-still-billed",
        ),
        pytest.param(
            node(capacity=None, allocatable=2),
            PriceSheet(),
            NodePrice("gpu-1", "NVIDIA-L4", 2, 0.70, "price sheet"),
            id="allocatable-when-no-capacity",
        ),
        pytest.param(
            node(product="NVIDIA-Mystery-9000"),
            PriceSheet(),
            NodePrice("gpu-1", "NVIDIA-Mystery-9000", 4, None, "unknown"),
            id="unknown-product-unpriced",
        ),
        pytest.param(
            node(product="NVIDIA-Mystery-9000"),
            parse_price_overrides({"NVIDIA-Mystery-9000": 3.3}),
            NodePrice("gpu-1", "NVIDIA-Mystery-9000", 4, 3.3, "price sheet"),
            id="unknown-product-priced-by-sheet",
        ),
        pytest.param(
            node(product=None, annotation="1.1"),
            PriceSheet(),
            NodePrice("gpu-1", None, 4, 1.1, "annotation"),
            id="no-product-label-annotation-prices-it",
        ),
        pytest.param(
            node(product=None, annotation="x"),
            PriceSheet(),
            NodePrice(
                "gpu-1",
                None,
                4,
                None,
                "unknown",
                "node gpu-1: annotation modelfleet.dev/gpu-hourly-usd must be a plain number of "
                "USD per GPU-hour, e.g. 2.49, got 'x'; left unpriced",
            ),
            id="no-product-bad-annotation-unpriced",
        ),
    ],
)
def test_node_price(obj: dict[str, Any], sheet: PriceSheet, expected: NodePrice) -> None:
    assert node_price(obj, sheet) == expected


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(node(product=None, capacity=None), id="cpu-node"),
        pytest.param(node(capacity=0), id="labelled-but-no-gpus"),
    ],
)
def test_nodes_without_gpus_have_no_price(obj: dict[str, Any]) -> None:
    assert node_price(obj, PriceSheet()) is None


def test_node_prices_by_name_and_hourly() -> None:
    prices = node_prices(
        [node("a", annotation="0.5"), node("b"), node("cpu", product=None, capacity=None)],
        PriceSheet(),
    )
    assert sorted(prices) == ["a", "b"]
    assert prices["a"].hourly == pytest.approx(2.0)
    assert prices["b"].hourly == pytest.approx(2.8)
