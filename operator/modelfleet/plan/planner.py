"""The planner: the cheapest feasible (GPU product, GPU count, quantization) for one replica.

place() enumerates every pool of the inventory (within the pins) x GPU counts 1/2/4/8 that fit
on one node x the quantizations the request allows, checks each against the memory model and
tensor-parallel rules, prices the feasible ones, and chooses the cheapest per hour (ties: more
memory headroom, then fewer GPUs). When the cheapest has no node with enough free GPUs for a
replica, the next cheapest feasible option with free capacity is chosen, and the message says so.
Every rejected option carries a one-line reason.

With a load in the request (spec.expectedLoad), "cheapest" means the cheapest fleet for that
load instead (plan/fleet.py): each feasible option's replica capacity within the SLO, from the
`capacity` model the caller passes (perf.capacity.option_capacity), gives the replicas the load
needs and their cost per hour; an option whose replica cannot meet the TTFT target for the
load's prompts is rejected with that reason. Ties: fewer GPUs in the fleet, then as above.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from modelfleet.catalog.gpus import GIB, GPU
from modelfleet.catalog.models import ModelArch, ModelCatalog, default_models
from modelfleet.plan.fleet import CapacityModel, Fleet, Load, ReplicaCapacity, fleet_for
from modelfleet.plan.inventory import Inventory, Pool
from modelfleet.plan.memory import (
    MemoryEstimate,
    Quantization,
    estimate,
    tensor_parallel_problem,
    weight_dtype,
)
from modelfleet.plan.prices import PriceSheet
from modelfleet.plan.request import PlacementRequest
from modelfleet.plan.throughput import Throughput, roofline, usd_per_million_tokens

GPU_COUNTS = (1, 2, 4, 8)


@dataclass(frozen=True)
class Option:
    """One candidate: `gpus` GPUs of one pool's product, weights in `quantization`."""

    gpu_product: str  # node label value
    label_key: str  # node label it is the value of
    gpu_name: str | None  # catalog name
    spot: bool
    gpus: int
    quantization: str  # weight dtype: the requested quantization or the published dtype
    memory: MemoryEstimate | None  # None when the GPU memory is unknown
    hourly_cost: float | None  # USD per replica-hour
    throughput: Throughput | None
    free_replicas: int  # replicas that fit in the pool's free GPUs now
    reason: str | None  # why it is rejected; None when feasible
    gpu: GPU | None = field(default=None, compare=False, repr=False)  # the catalog GPU
    capacity: ReplicaCapacity | None = None  # one replica within the SLO, with a load only
    fleet: Fleet | None = None  # the replicas the load needs, when feasible with a load

    @property
    def feasible(self) -> bool:
        return self.reason is None

    @property
    def display(self) -> str:
        return f"{self.gpus}x {self.gpu_name or self.gpu_product}"

    @property
    def fleet_gpus(self) -> int | None:
        return self.fleet.replicas * self.gpus if self.fleet else None

    @property
    def usd_per_million_tokens(self) -> float | None:
        """USD per 1M output tokens of one replica at full use (its roofline decode rate)."""
        if self.hourly_cost is None or self.throughput is None:
            return None
        return usd_per_million_tokens(self.hourly_cost, self.throughput.decode_tokens_per_s)

    def as_dict(self) -> dict[str, Any]:
        tokens = self.throughput.decode_tokens_per_s if self.throughput else None
        return {
            "gpuProduct": self.gpu_product,
            "gpuName": self.gpu_name,
            "spot": self.spot,
            "gpus": self.gpus,
            "quantization": self.quantization,
            "neededGiB": _round(self.memory.needed_gib if self.memory else None),
            "availableGiB": _round(self.memory.capacity_gib if self.memory else None),
            "feasible": self.feasible,
            "freeReplicas": self.free_replicas,
            "hourlyCost": _round(self.hourly_cost, 4),
            "decodeTokensPerSecond": _round(tokens, 0),
            "usdPerMillionOutputTokens": _round(self.usd_per_million_tokens, 4),
            "requestsPerSecondPerReplica": _round(
                self.capacity.requests_per_s if self.capacity else None, 4
            ),
            "ttftAloneSeconds": _round(self.capacity.ttft_alone_s if self.capacity else None, 3),
            "replicasForLoad": self.fleet.replicas if self.fleet else None,
            "fleetHourlyCost": _round(self.fleet.hourly_cost if self.fleet else None, 4),
            "fleetUsdPerMillionOutputTokens": _round(
                self.fleet.usd_per_million_output_tokens if self.fleet else None, 4
            ),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Placement:
    """The plan for one replica. `options` lists every candidate considered, cheapest first."""

    feasible: bool
    model: str
    message: str  # one line for a status condition: the choice, the fall-through, or the reason
    options: tuple[Option, ...] = ()
    chosen: Option | None = None
    capacity_available: bool = False  # a node has enough free GPUs for one more replica
    max_context_length: int | None = None
    gpu_memory_utilization: float = 0.9
    kv_cache_dtype: str = "auto"
    quantized: bool = False  # weights differ from the published dtype: pass --quantization
    load: Load | None = None  # the load the fleet is sized for; None: chosen per replica
    ttft_seconds: float | None = None  # the TTFT target the fleet meets, with a load

    @property
    def basis(self) -> Literal["fleet", "replica"]:
        """What the choice minimised: the fleet's cost for the load, or one replica's."""
        return "replica" if self.load is None else "fleet"

    @property
    def fleet(self) -> Fleet | None:
        return self.chosen.fleet if self.chosen else None

    @property
    def gpu_product(self) -> str | None:
        return self.chosen.gpu_product if self.chosen else None

    @property
    def gpu_label_key(self) -> str | None:
        return self.chosen.label_key if self.chosen else None

    @property
    def gpus_per_replica(self) -> int | None:
        return self.chosen.gpus if self.chosen else None

    @property
    def tensor_parallel(self) -> int | None:
        return self.gpus_per_replica

    @property
    def nodes_per_replica(self) -> int | None:
        return 1 if self.chosen else None  # single-node replicas only, for now

    @property
    def quantization(self) -> str | None:
        return self.chosen.quantization if self.chosen else None

    @property
    def estimated_memory_gib(self) -> float | None:
        return self.chosen.memory.needed_gib if self.chosen and self.chosen.memory else None

    @property
    def hourly_cost_per_replica(self) -> float | None:
        return self.chosen.hourly_cost if self.chosen else None

    @property
    def reason(self) -> str | None:
        return None if self.feasible else self.message

    def as_dict(self) -> dict[str, Any]:
        return {
            "feasible": self.feasible,
            "model": self.model,
            "gpuProduct": self.gpu_product,
            "gpuLabel": self.gpu_label_key,
            "gpusPerReplica": self.gpus_per_replica,
            "nodesPerReplica": self.nodes_per_replica,
            "tensorParallel": self.tensor_parallel,
            "quantization": self.quantization,
            "quantized": self.quantized,
            "maxContextLength": self.max_context_length,
            "kvCacheDtype": self.kv_cache_dtype,
            "gpuMemoryUtilization": self.gpu_memory_utilization,
            "estimatedMemoryGiB": _round(self.estimated_memory_gib),
            "hourlyCostPerReplica": _round(self.hourly_cost_per_replica, 4),
            "capacityAvailable": self.capacity_available,
            "basis": self.basis,
            "load": self.load.model_dump(by_alias=True) if self.load else None,
            "ttftSeconds": self.ttft_seconds,
            "replicasForLoad": self.fleet.replicas if self.fleet else None,
            "fleetHourlyCost": _round(self.fleet.hourly_cost if self.fleet else None, 4),
            "message": self.message,
            "reason": self.reason,
            "options": [option.as_dict() for option in self.options],
        }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _gib(value: float) -> str:
    return f"{value / GIB:.0f} GiB"


def _matches(pool: Pool, pin: str) -> bool:
    names = {pool.product}
    if pool.gpu is not None:
        gpu = pool.gpu
        names |= {gpu.name, *gpu.product_labels, *gpu.gke_accelerator, *gpu.karpenter_gpu_names}
    return pin.lower() in {name.lower() for name in names}


def _quantizations(arch: ModelArch, request: PlacementRequest) -> list[Quantization | None]:
    if request.quantization == "auto":
        extra: list[Quantization | None] = ["fp8"] if arch.native_dtype in ("bf16", "fp16") else []
        return [None, *extra]
    return [request.quantization]


def _option(
    arch: ModelArch,
    request: PlacementRequest,
    pool: Pool,
    gpus: int,
    quantization: Quantization | None,
    max_context: int,
    prices: PriceSheet,
) -> Option:
    memory = None
    if pool.memory_bytes is not None:
        memory = estimate(
            arch,
            gpus=gpus,
            gpu_memory_bytes=pool.memory_bytes,
            max_context=max_context,
            quantization=quantization,
            kv_cache_dtype=request.kv_cache_dtype,
            utilization=request.gpu_memory_utilization,
            overhead_gib=request.overhead_gib,
        )
    per_gpu = prices.per_gpu_hour(pool.product, pool.gpu, pool.spot)
    hourly = None if per_gpu is None else per_gpu * gpus
    name = f"{gpus}x {pool.display_name}"
    reason: str | None = None
    if gpus > pool.gpus_per_node:
        reason = (
            f"needs {gpus} GPUs on one node, {pool.product} nodes have at most {pool.gpus_per_node}"
        )
    elif memory is None:
        reason = (
            f"GPU memory of {pool.product} unknown: no nvidia.com/gpu.memory label and "
            "not in the catalog"
        )
    elif request.engine != "llamacpp" and (problem := tensor_parallel_problem(arch, gpus)):
        reason = problem
    elif not memory.fits:
        reason = f"needs {_gib(memory.needed)}, {name} gives {_gib(memory.capacity)}"
    elif hourly is None:
        reason = f"no price for {pool.product}: add it to the price sheet"
    throughput = None
    if reason is None and memory is not None and pool.gpu is not None:
        throughput = roofline(
            arch,
            pool.gpu,
            memory,
            max_context=max_context,
            quantization=quantization,
            kv_cache_dtype=request.kv_cache_dtype,
        )
    return Option(
        gpu_product=pool.product,
        label_key=pool.label_key,
        gpu_name=pool.gpu.name if pool.gpu else None,
        spot=pool.spot,
        gpus=gpus,
        quantization=weight_dtype(arch, quantization),
        memory=memory,
        hourly_cost=hourly,
        throughput=throughput,
        free_replicas=pool.free_replicas(gpus) if gpus <= pool.gpus_per_node else 0,
        reason=reason,
        gpu=pool.gpu,
    )


def _sort_key(option: Option) -> tuple[float, float, int, str, str]:
    headroom = option.memory.headroom if option.memory else float("-inf")
    cost = option.hourly_cost if option.hourly_cost is not None else float("inf")
    return (cost, -headroom, option.gpus, option.gpu_product, option.quantization)


def _fleet_key(option: Option) -> tuple[float, int, float, float, int, str, str]:
    if option.fleet is None or option.fleet_gpus is None:
        return (float("inf"), 0, *_sort_key(option))
    return (option.fleet.hourly_cost, option.fleet_gpus, *_sort_key(option))


def _with_fleet(
    arch: ModelArch, option: Option, request: PlacementRequest, capacity: CapacityModel
) -> Option:
    """A feasible option sized for request.load, or rejected when a replica misses the SLO."""
    assert request.load is not None and option.hourly_cost is not None
    replica = capacity(arch, option, request)
    if replica.reason is not None or replica.requests_per_s <= 0:
        return replace(option, capacity=replica, reason=replica.reason or "serves nothing")
    return replace(
        option, capacity=replica, fleet=fleet_for(option.hourly_cost, replica, request.load)
    )


def _costs(option: Option) -> str:
    """What the choice compared: the fleet's cost with a load, else one replica's."""
    if option.fleet is None:
        return f"{option.display} at ${option.hourly_cost:.2f}/h"
    fleet = option.fleet
    plural = "s" if fleet.replicas != 1 else ""
    return f"{fleet.replicas} replica{plural} of {option.display} at ${fleet.hourly_cost:.2f}/h"


def _why(chosen: Option, options: list[Option], request: PlacementRequest) -> str:
    """With a load: the load, the SLO, and how the cheapest replica would have done."""
    load = request.load
    if load is None:
        return "; no load known, so the cheapest replica"
    assert chosen.fleet is not None
    text = (
        f" for {load.describe()} within TTFT {request.ttft_seconds:g} s "
        f"({chosen.fleet.capacity.requests_per_s:.3g} requests/s a replica, "
        f"${chosen.fleet.usd_per_million_output_tokens:.2f} per 1M output tokens)"
    )
    by_replica = [o for o in options if o.hourly_cost is not None and o.capacity is not None]
    if by_replica:
        cheapest = min(by_replica, key=_sort_key)
        if cheapest is not chosen and cheapest.fleet is not None:
            text += f"; the cheapest replica would take {_costs(cheapest)}"
        elif cheapest is not chosen:
            text += f"; the cheapest replica, {cheapest.display}, misses the SLO: {cheapest.reason}"
    return text


def place(
    request: PlacementRequest,
    inventory: Inventory,
    prices: PriceSheet,
    models: ModelCatalog | None = None,
    *,
    capacity: CapacityModel | None = None,
) -> Placement:
    """Choose the cheapest feasible placement (pure; see the module docstring).

    `capacity` is needed when the request has a load (ValueError otherwise)."""
    arch = request.architecture or (models or default_models()).lookup(request.model)
    load = request.load
    if load is not None and capacity is None:
        raise ValueError("a request with a load needs a capacity model to size its fleet")
    common: dict[str, Any] = {
        "model": request.model,
        "gpu_memory_utilization": request.gpu_memory_utilization,
        "kv_cache_dtype": request.kv_cache_dtype,
        "load": load,
        "ttft_seconds": request.ttft_seconds if load is not None else None,
    }
    if arch is None:
        return Placement(
            feasible=False,
            message=f"model {request.model} is not in the catalog: give its architecture "
            "inline in spec.architecture (paramsB, layers, hidden, attentionHeads, kvHeads, "
            "maxContext from its config.json; see kubectl explain md.spec.architecture)",
            **common,
        )
    max_context = request.max_context_length or arch.max_context
    common["max_context_length"] = max_context
    if max_context > arch.max_context:
        return Placement(
            feasible=False,
            message=f"maxContextLength {max_context} exceeds the {arch.max_context} tokens "
            f"{arch.id} supports",
            **common,
        )
    if load is not None and load.prompt_tokens + load.output_tokens > max_context:
        return Placement(
            feasible=False,
            message=f"expectedLoad: {load.prompt_tokens:,} prompt + {load.output_tokens:,} "
            f"output tokens exceed the maxContextLength of {max_context:,}",
            **common,
        )
    pools = [
        pool
        for pool in inventory.pools
        if request.gpu_product is None or _matches(pool, request.gpu_product)
    ]
    if not pools:
        where = f"{request.gpu_product} nodes" if request.gpu_product else "GPU nodes"
        return Placement(feasible=False, message=f"no {where} in the cluster", **common)

    options: list[Option] = []
    for pool in pools:
        counts = [request.gpu_count] if request.gpu_count else GPU_COUNTS
        for gpus in counts:
            if request.gpu_count is None and gpus > pool.gpus_per_node:
                continue
            for quantization in _quantizations(arch, request):
                options.append(
                    _option(arch, request, pool, gpus, quantization, max_context, prices)
                )
    if load is not None and capacity is not None:
        options = [
            _with_fleet(arch, option, request, capacity) if option.feasible else option
            for option in options
        ]
        options.sort(key=lambda option: (not option.feasible, *_fleet_key(option)))
    else:
        options.sort(key=lambda option: (not option.feasible, *_sort_key(option)))

    feasible = [option for option in options if option.feasible]
    if not feasible:
        missed = [option for option in options if option.capacity is not None]
        if missed:
            closest = min(missed, key=lambda o: o.capacity.ttft_alone_s if o.capacity else 0.0)
            others = len(missed) - 1
            return Placement(
                feasible=False,
                message=f"{arch.id} fits, but no replica meets the SLO for "
                f"{load.describe() if load else 'the load'}: {closest.display}: "
                f"{closest.reason}"
                + (f" ({others} other{'s' if others != 1 else ''} miss it too)" if others else ""),
                options=tuple(options),
                **common,
            )
        closest = max(options, key=lambda o: (o.memory.capacity if o.memory else -1.0, -o.gpus))
        others = len(options) - 1
        suffix = f" ({others} other option{'s' if others != 1 else ''} rejected too)"
        return Placement(
            feasible=False,
            message=f"{arch.id} fits nowhere: {closest.display}: {closest.reason}"
            + (suffix if others else ""),
            options=tuple(options),
            **common,
        )
    cheapest = feasible[0]
    chosen = next((option for option in feasible if option.free_replicas > 0), None)
    what = "the cheapest fleet" if load is not None else "the cheapest that fits"
    if chosen is None:
        chosen = cheapest
        message = (
            f"{_costs(cheapest)}, but no feasible pool has "
            f"{cheapest.gpus} free GPUs on one node: the replica waits for capacity"
        )
    elif chosen is cheapest:
        message = f"{_costs(chosen)}, {what}"
    else:
        message = (
            f"{_costs(chosen)}: {what}, {_costs(cheapest)}, has no node with "
            f"{cheapest.gpus} free GPUs"
        )
    if chosen.memory is not None:
        message += (
            f" (needs {_gib(chosen.memory.needed)} of {_gib(chosen.memory.capacity)}, "
            f"{chosen.quantization})"
        )
    message += _why(chosen, options, request)
    return Placement(
        feasible=True,
        message=message,
        options=tuple(options),
        chosen=chosen,
        capacity_available=chosen.free_replicas > 0,
        quantized=chosen.quantization != arch.native_dtype,
        **common,
    )
