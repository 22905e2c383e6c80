"""Right-sizing (pure): memory model, cluster inventory, price sheet, roofline and planner.

No kopf, no kubernetes client, no I/O: callers pass Node/Pod dicts, price overrides and the
request in, and get a Placement back.
"""

from modelfleet.plan.inventory import (
    GPUNode,
    Inventory,
    Pool,
    hypothetical_inventory,
    parse_inventory,
)
from modelfleet.plan.memory import MemoryEstimate, Quantization, estimate
from modelfleet.plan.planner import Option, Placement, place
from modelfleet.plan.prices import PriceSheet, PriceSheetError, parse_price_overrides
from modelfleet.plan.request import PlacementRequest
from modelfleet.plan.throughput import Throughput, roofline

__all__ = [
    "GPUNode",
    "Inventory",
    "MemoryEstimate",
    "Option",
    "Placement",
    "PlacementRequest",
    "Pool",
    "PriceSheet",
    "PriceSheetError",
    "Quantization",
    "Throughput",
    "estimate",
    "hypothetical_inventory",
    "parse_inventory",
    "parse_price_overrides",
    "place",
    "roofline",
]
