"""The placement of a ModelDeployment: its spec mapped onto the planner, kept stable over time.

A running deployment keeps its GPUs while the spec fields the planner reads are unchanged (the
previous placement is pinned), so other workloads filling or freeing pools never make it
migrate, and a replica count change never moves it; any other spec re-plans. The placement
carries the digest of the request it was planned for: it is reused for that request only.

With spec.expectedLoad the choice is the cheapest fleet for that load within the SLO
(plan/fleet.py); it is made, like any placement, when the deployment is created or the spec
changes, and kept while it runs. The load the engines report is not used: moving a running
deployment when its traffic changes is not done yet (docs/concepts.md, "Placement").
"""

from __future__ import annotations

import hashlib

from modelfleet.api.types import ModelDeployment, PlacementStatus
from modelfleet.catalog.models import default_models
from modelfleet.plan.fleet import CapacityModel
from modelfleet.plan.inventory import Inventory
from modelfleet.plan.planner import Placement, place
from modelfleet.plan.prices import PriceSheet
from modelfleet.plan.request import PlacementRequest, request_from_manifest


def plan_deployment(
    md: ModelDeployment,
    inventory: Inventory,
    prices: PriceSheet,
    capacity: CapacityModel | None = None,
) -> PlacementStatus | str:
    """The placement to run with, or the reason there is none (raises PlanInputError).

    `capacity` (perf.capacity.option_capacity) sizes the fleet of a spec with expectedLoad
    (ValueError from the planner without it)."""
    spec = md.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    request = request_from_manifest({"spec": spec})
    digest = request_digest(request)
    previous = md.status.placement
    keep = previous is not None and previous.spec_hash == digest
    if keep and previous is not None:
        request = request.model_copy(
            update={"gpu_product": previous.gpu_product, "gpu_count": previous.gpus_per_replica}
        )
    placement = place(request, inventory, prices, capacity=capacity)
    if placement.feasible:
        chosen = _status_of(placement).model_copy(update={"spec_hash": digest})
        if keep and previous is not None:
            # The pinned re-check confirms the fit; the reason for the choice is the original one.
            return chosen.model_copy(update={"message": previous.message})
        return chosen
    pinned = md.spec.gpu.product != "auto" and md.spec.gpu.count is not None
    unknown = md.spec.architecture is None and default_models().lookup(md.spec.model) is None
    if pinned and unknown:
        count = md.spec.gpu.count or 1
        return PlacementStatus(
            gpu_product=md.spec.gpu.product,
            gpus_per_replica=count,
            tensor_parallel=count,
            kv_cache_dtype=request.kv_cache_dtype,
            message=f"{md.spec.model} is not in the catalog: running on the pinned "
            f"{count}x {md.spec.gpu.product} without a memory check (give spec.architecture "
            "for one)",
            spec_hash=digest,
        )
    return placement.message


# Fields that only matter with a load: left out of the digest without one, so a deployment
# placed before they existed keeps its digest, and an SLO change without a load moves nothing.
LOAD_FIELDS = frozenset({"load", "ttft_seconds", "tpot_seconds"})


def request_digest(request: PlacementRequest) -> str:
    """Same request, same digest: its JSON (fields in declaration order), then SHA-256."""
    exclude = set(LOAD_FIELDS) if request.load is None else None
    canonical = request.model_dump_json(exclude_none=False, exclude=exclude)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _status_of(placement: Placement) -> PlacementStatus:
    chosen = placement.chosen
    assert chosen is not None  # feasible placements always carry their choice
    return PlacementStatus(
        gpu_product=chosen.gpu_product,
        gpu_label=chosen.label_key,
        gpus_per_replica=chosen.gpus,
        tensor_parallel=placement.tensor_parallel or chosen.gpus,
        quantization=chosen.quantization,
        quantized=placement.quantized,
        max_context_length=placement.max_context_length,
        kv_cache_dtype=placement.kv_cache_dtype,
        estimated_memory_gib=placement.estimated_memory_gib
        and round(placement.estimated_memory_gib, 1),
        hourly_cost_per_replica=chosen.hourly_cost and round(chosen.hourly_cost, 4),
        message=placement.message,
    )
