"""CPU and memory of an engine container: derived from the model and engine, overridable.

The rule (docs/pods.md):

- memory request = memory limit = the weights one replica holds (all of them, at the placed
  weight format: the engine reads every shard through host memory while loading) + the
  /dev/shm volume (memory-backed, so charged to the container) + the engine's own host memory
  (Python, the CUDA runtime, tokenizer). Equal request and limit: the scheduler reserves what
  loading needs, and the engine is never the first evicted when a node runs short.
- CPU request = the engine's base cores + cores per GPU (one tensor-parallel worker per GPU);
  no CPU limit, since throttling the scheduler loop of an engine costs latency while idle cores
  of the node cost nothing.
- A model whose size is unknown (not in the catalog, no spec.architecture) counts
  UNKNOWN_WEIGHTS_GIB_PER_GPU per GPU.

spec.resources replaces any of the four; a request given without its limit keeps the limit
at least as high (memory: the limit follows the request), a limit given alone caps the request.
"""

from __future__ import annotations

import math
from typing import Any, get_args

from modelfleet.api.pod import canonical_quantity, parse_quantity
from modelfleet.api.types import ModelDeployment, PlacementStatus
from modelfleet.catalog.gpus import GIB
from modelfleet.catalog.models import ModelArch, default_models
from modelfleet.plan.memory import Quantization, weights_bytes
from modelfleet.render.engines import profile

SHM_PER_GPU_GIB = 8
UNKNOWN_WEIGHTS_GIB_PER_GPU = 16


def shm_gib(gpus: int) -> int:
    """Size of the memory-backed /dev/shm volume: NCCL and the engine's worker processes."""
    return SHM_PER_GPU_GIB * gpus


def weights_gib(md: ModelDeployment, placement: PlacementStatus) -> int:
    """GiB of weights one replica loads, rounded up."""
    arch = _architecture(md)
    if arch is None:
        return UNKNOWN_WEIGHTS_GIB_PER_GPU * placement.gpus_per_replica
    quantization = placement.quantization if placement.quantized else None
    chosen: Quantization | None = (
        quantization if quantization in get_args(Quantization) else None  # type: ignore[assignment]
    )
    return math.ceil(weights_bytes(arch, chosen) / GIB)


def _architecture(md: ModelDeployment) -> ModelArch | None:
    if md.spec.architecture is not None:
        fields = md.spec.architecture.model_dump(by_alias=True, exclude_none=True, mode="json")
        return ModelArch.model_validate({"id": md.spec.model, **fields})
    return default_models().lookup(md.spec.model)


def derived(md: ModelDeployment, placement: PlacementStatus) -> dict[str, dict[str, str]]:
    """The default requests and limits, before spec.resources."""
    engine = profile(md.spec.engine)
    gpus = placement.gpus_per_replica
    memory = weights_gib(md, placement) + shm_gib(gpus) + engine.host_overhead_gib
    cpu = engine.cpu_base + engine.cpu_per_gpu * gpus
    return {
        "requests": {"cpu": str(cpu), "memory": f"{memory}Gi"},
        "limits": {"memory": f"{memory}Gi"},
    }


def container_resources(
    md: ModelDeployment, placement: PlacementStatus, gpu_resource: str
) -> dict[str, Any]:
    """The container's resources: derived CPU and memory, spec.resources over them, and the
    placement's GPUs (never overridable)."""
    base = derived(md, placement)
    given = md.spec.resources
    wanted_requests = given.requests if given and given.requests else None
    wanted_limits = given.limits if given and given.limits else None
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for resource in ("cpu", "memory"):
        request = getattr(wanted_requests, resource, None)
        limit = getattr(wanted_limits, resource, None)
        default_request = base["requests"][resource]
        if request is None:
            request = default_request
            if limit is not None and parse_quantity(limit) < parse_quantity(default_request):
                request = limit  # a limit given alone caps the default request
        if limit is None and resource == "memory":
            limit = max(request, base["limits"]["memory"], key=parse_quantity)
            if wanted_requests is not None and wanted_requests.memory is not None:
                limit = request  # the memory limit follows a given request
        requests[resource] = request
        if limit is not None:
            limits[resource] = limit
    gpus = str(placement.gpus_per_replica)
    return {
        "requests": {**_canonical(requests), gpu_resource: gpus},
        "limits": {**_canonical(limits), gpu_resource: gpus},
    }


def _canonical(quantities: dict[str, str]) -> dict[str, str]:
    return {name: canonical_quantity(value) for name, value in quantities.items()}
