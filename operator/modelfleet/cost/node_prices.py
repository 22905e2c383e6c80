"""USD per GPU-hour of each GPU node: the price sheet, or the node's own annotation.

Negotiated, reserved and spot prices differ node by node, so an admin may annotate a node with
its price per GPU-hour:

    kubectl annotate node gpu-7 modelfleet.dev/gpu-hourly-usd=1.85

The annotation wins over the price sheet (on-demand or spot). A value that is not a plain
non-negative decimal number is never used: the node is priced from the sheet and the problem is
reported (`NodePrice.problem`), since a typo must not quietly change the bill. Nodes are plain
dicts as `kubectl get -o yaml` prints them; product, spot and GPU count are read exactly as the
planner's inventory reads them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modelfleet.catalog.gpus import GPUCatalog, default_gpus
from modelfleet.plan.inventory import GPU_RESOURCE, parse_inventory
from modelfleet.plan.prices import PriceSheet

GPU_HOURLY_ANNOTATION = "modelfleet.dev/gpu-hourly-usd"
_DECIMAL = re.compile(r"(\d+(\.\d*)?|\.\d+)")

PriceSource = Literal["annotation", "price sheet", "unknown"]


@dataclass(frozen=True)
class NodePrice:
    """What one GPU node costs per GPU-hour, and where the number came from."""

    node: str
    product: str | None  # GPU product label value; None when no label names one
    gpus: int  # GPUs billed: capacity (unhealthy GPUs are paid for too), else as the inventory
    usd_per_gpu_hour: float | None  # None: no annotation and a product the sheet cannot price
    source: PriceSource
    problem: str | None = None  # an invalid annotation, reported and not used

    @property
    def hourly(self) -> float | None:
        """The whole node's GPUs per hour."""
        return None if self.usd_per_gpu_hour is None else self.usd_per_gpu_hour * self.gpus


def parse_gpu_hourly(value: str) -> float:
    """A price annotation's value: a plain decimal number >= 0 (no units, signs or exponents)."""
    text = value.strip()
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"must be a plain number of USD per GPU-hour, e.g. 2.49, got {value!r}")
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number of USD per GPU-hour, got {value!r}")
    return number


def _gpu_count(node: Mapping[str, Any], key: str) -> int | None:
    try:
        return int(str(((node.get("status") or {}).get(key) or {}).get(GPU_RESOURCE)).strip())
    except ValueError:
        return None


def node_price(
    node: Mapping[str, Any], sheet: PriceSheet, gpus: GPUCatalog | None = None
) -> NodePrice | None:
    """The node's price per GPU-hour; None for a node without GPUs."""
    metadata = node.get("metadata") or {}
    name = str(metadata.get("name", "?"))
    capacity = _gpu_count(node, "capacity")
    billed = node
    if capacity is not None:  # read product and spot as the inventory does, counting capacity
        status = {**(node.get("status") or {}), "allocatable": {GPU_RESOURCE: str(capacity)}}
        billed = {**node, "status": status}
    inventory = parse_inventory([billed], (), gpus or default_gpus())
    product: str | None = None
    sheet_price: float | None = None
    if inventory.pools:
        pool = inventory.pools[0]
        product, count = pool.product, pool.nodes[0].allocatable
        sheet_price = sheet.per_gpu_hour(pool.product, pool.gpu, pool.spot)
    else:  # GPUs without a product label: only an annotation prices them
        count = capacity if capacity is not None else _gpu_count(node, "allocatable") or 0
    if count <= 0:
        return None
    raw = (metadata.get("annotations") or {}).get(GPU_HOURLY_ANNOTATION)
    problem = None
    if raw is not None:
        try:
            return NodePrice(name, product, count, parse_gpu_hourly(str(raw)), "annotation")
        except ValueError as error:
            fallback = (
                f"priced from the price sheet ({sheet_price:g} USD per GPU-hour)"
                if sheet_price is not None
                else "left unpriced"
            )
            problem = f"node {name}: annotation {GPU_HOURLY_ANNOTATION} {error}; {fallback}"
    source: PriceSource = "price sheet" if sheet_price is not None else "unknown"
    return NodePrice(name, product, count, sheet_price, source, problem)


def node_prices(
    nodes: Iterable[Mapping[str, Any]], sheet: PriceSheet, gpus: GPUCatalog | None = None
) -> dict[str, NodePrice]:
    """Every GPU node's price, by node name."""
    catalog = gpus or default_gpus()
    prices = (node_price(node, sheet, catalog) for node in nodes)
    return {price.node: price for price in prices if price is not None}
