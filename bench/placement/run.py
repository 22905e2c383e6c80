"""Placement benchmark: the planner's choice against a brute-force optimum (issue 3).

Each case draws a random inventory (a random subset of the catalog GPUs that have a
nvidia.com/gpu.product label, 1/2/4/8 GPUs per node, 1-3 nodes, random used GPUs, now and then a
cordoned node), a random price sheet (every catalog price times 0.5-2.0, given to the planner as
PriceSheet overrides) and a random request (a catalog model, maxContextLength 4096, 32768 or the
model's maximum, quantization None or "auto").

The brute force shares only memory.estimate with the planner: it enumerates every
(pool, GPU count 1/2/4/8 that fits on one node, quantization the request allows), applies its own
copy of the tensor-parallel rule, prices each option from the catalog price times the drawn
factor, and takes the cheapest feasible option with a node that has enough free GPUs for one
replica, else the cheapest feasible option (the planner's documented rule). Ties on cost are not
broken: the planner's tie-breaks (headroom, then fewer GPUs) cannot change the cost ratio.

Prints the cases run, the cases feasible for both, feasibility disagreements (must be 0), the
worst and mean cost ratio planner / optimum, and the time per placement. Exits 1 on a
feasibility or capacity disagreement or a ratio other than 1: above 1 the planner missed the
optimum, below 1 the brute force is wrong.

    .venv/bin/python bench/placement/run.py [--cases N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass

from modelfleet.catalog.gpus import GFD_PRODUCT_LABEL, GPU, default_gpus
from modelfleet.catalog.models import ModelArch, default_models
from modelfleet.plan.inventory import GPUNode, Inventory, Pool
from modelfleet.plan.memory import Quantization, estimate
from modelfleet.plan.planner import place
from modelfleet.plan.prices import Price, PriceSheet
from modelfleet.plan.request import PlacementRequest

COUNTS = (1, 2, 4, 8)
EPS = 1e-9


@dataclass(frozen=True)
class Case:
    request: PlacementRequest
    arch: ModelArch
    inventory: Inventory
    prices: PriceSheet
    per_gpu: dict[str, float]  # pool product -> USD per GPU-hour, computed here, not by PriceSheet


@dataclass(frozen=True)
class Best:
    cost: float  # USD per replica-hour
    label: str  # "4x H100-80GB fp8"
    free: bool  # a node has enough free GPUs for one replica


def draw_case(rng: random.Random) -> Case:
    gpus = [gpu for gpu in default_gpus().gpus if gpu.product_labels and gpu.price_usd_hour]
    chosen = [gpu for gpu in gpus if rng.random() < 0.5] or [rng.choice(gpus)]
    factors = {gpu.name: rng.uniform(0.5, 2.0) for gpu in gpus}
    pools = []
    per_gpu: dict[str, float] = {}
    for gpu in chosen:
        product = rng.choice(gpu.product_labels)
        per_node = rng.choice(COUNTS)
        nodes = tuple(
            GPUNode(
                f"{gpu.name.lower()}-{index}",
                per_node,
                rng.choice([0, 0, per_node, rng.randint(0, per_node)]),
                rng.random() > 0.1,
            )
            for index in range(rng.randint(1, 3))
        )
        pools.append(Pool(GFD_PRODUCT_LABEL, product, gpu, gpu.memory_gib * 1024, False, nodes))
        per_gpu[product] = _price(gpu) * factors[gpu.name]
    prices = PriceSheet(
        {gpu.name.lower(): Price(on_demand=_price(gpu) * factors[gpu.name]) for gpu in gpus}
    )
    arch = rng.choice(default_models().models)
    request = PlacementRequest(
        model=arch.id,
        max_context_length=rng.choice([4096, 32768, arch.max_context]),
        quantization=rng.choice([None, "auto"]),
    )
    return Case(request, arch, Inventory(tuple(pools)), prices, per_gpu)


def _price(gpu: GPU) -> float:
    assert gpu.price_usd_hour is not None
    return gpu.price_usd_hour


def tensor_parallel_ok(arch: ModelArch, gpus: int) -> bool:
    """vLLM's rule, restated: heads split evenly; KV heads split evenly or are replicated."""
    if gpus == 1:
        return True
    kv = arch.kv_heads if arch.kv_heads is not None else arch.attention_heads
    kv_ok = arch.mla is not None or kv % gpus == 0 or gpus % kv == 0
    return arch.attention_heads % gpus == 0 and kv_ok


def brute_force(case: Case) -> tuple[Best, Best] | None:
    """(the optimum, the cheapest feasible option ignoring free capacity), None if none fits."""
    request, arch = case.request, case.arch
    quantizations: list[Quantization | None] = [None]
    if request.quantization == "auto" and arch.native_dtype in ("bf16", "fp16"):
        quantizations.append("fp8")
    max_context = request.max_context_length or arch.max_context
    feasible: list[Best] = []
    for pool in case.inventory.pools:
        per_node = max(node.allocatable for node in pool.nodes)
        free = [node.allocatable - node.used if node.schedulable else 0 for node in pool.nodes]
        assert pool.gpu is not None
        for count in COUNTS:
            if count > per_node or not tensor_parallel_ok(arch, count):
                continue
            for quantization in quantizations:
                memory = estimate(
                    arch,
                    gpus=count,
                    gpu_memory_bytes=pool.gpu.memory_gib * 2**30,
                    max_context=max_context,
                    quantization=quantization,
                    kv_cache_dtype=request.kv_cache_dtype,
                    utilization=request.gpu_memory_utilization,
                    overhead_gib=request.overhead_gib,
                )
                if memory.fits:
                    feasible.append(
                        Best(
                            count * case.per_gpu[pool.product],
                            f"{count}x {pool.gpu.name} {quantization or arch.native_dtype}",
                            any(f >= count for f in free),
                        )
                    )
    if not feasible:
        return None
    with_room = [best for best in feasible if best.free]
    cheapest = min(feasible, key=lambda best: best.cost)
    return min(with_room or feasible, key=lambda best: best.cost), cheapest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Compare the planner's placement with a brute-force optimum over random "
        "inventories, price sheets and requests; print the worst and mean cost ratio."
    )
    parser.add_argument("--cases", type=int, default=2000, help="random cases (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    feasible_both = 0
    ratios: list[tuple[float, int, str, str]] = []  # ratio, case, planner choice, optimum
    disagreements: list[str] = []
    capacity_mismatches: list[str] = []
    fall_through = 0
    premiums: list[float] = []  # optimum / cheapest feasible, when the cheapest had no room
    elapsed = 0.0
    for index in range(args.cases):
        case = draw_case(rng)
        start = time.perf_counter()
        placement = place(case.request, case.inventory, case.prices)
        elapsed += time.perf_counter() - start
        found = brute_force(case)
        best = found[0] if found else None
        if placement.feasible != (best is not None):
            disagreements.append(
                f"case {index}: {case.request.model} ctx {case.request.max_context_length} "
                f"q {case.request.quantization}: planner "
                f"{'feasible' if placement.feasible else 'infeasible'} ({placement.message}), "
                f"brute force {best.label if best else 'infeasible'}"
            )
            continue
        if best is None or placement.chosen is None:
            continue
        feasible_both += 1
        chosen = placement.chosen
        assert chosen.hourly_cost is not None
        ratios.append((chosen.hourly_cost / best.cost, index, chosen.display, best.label))
        if placement.capacity_available != best.free:
            capacity_mismatches.append(
                f"case {index}: planner capacity {placement.capacity_available}, "
                f"brute force {best.free}"
            )
        if not best.free:
            fall_through += 1
        elif found and best.cost > found[1].cost * (1 + EPS):
            premiums.append(best.cost / found[1].cost)

    print(f"cases run:                 {args.cases} (seed {args.seed})")
    print(f"feasible by both:          {feasible_both}")
    print(f"  of which no free node:   {fall_through} (cheapest feasible, waits for capacity)")
    if premiums:
        print(
            f"  of which a pricier pool: {len(premiums)} (cheapest full; optimum/cheapest "
            f"mean {statistics.fmean(premiums):.3f}, worst {max(premiums):.3f})"
        )
    print(f"feasibility disagreements: {len(disagreements)}")
    for line in disagreements[:5]:
        print(f"  {line}")
    print(f"capacity disagreements:    {len(capacity_mismatches)}")
    for line in capacity_mismatches[:5]:
        print(f"  {line}")
    if ratios:
        worst = max(ratios)
        best_ratio = min(ratios)
        mean = statistics.fmean(ratio for ratio, *_ in ratios)
        print(f"cost ratio planner/optimum: worst {worst[0]:.6f}, mean {mean:.6f}")
        if worst[0] > 1 + EPS:
            print(f"  worst: case {worst[1]}: planner {worst[2]}, optimum {worst[3]}")
        if best_ratio[0] < 1 - EPS:
            print(
                f"  planner cheaper than the optimum (brute force wrong): case {best_ratio[1]}: "
                f"planner {best_ratio[2]}, optimum {best_ratio[3]}"
            )
    per_placement = elapsed / max(args.cases, 1)
    print(f"time per placement:        {per_placement * 1e3:.3f} ms")
    failed = (
        bool(disagreements)
        or bool(capacity_mismatches)
        or any(abs(ratio - 1) > EPS for ratio, *_ in ratios)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
