"""Small builders of ModelDeployments and observed objects for table-driven tests."""

from __future__ import annotations

from typing import Any

from modelfleet.api.types import ModelDeployment, PlacementStatus


def model_deployment(
    generation: int = 1, status: dict[str, Any] | None = None, **spec: Any
) -> ModelDeployment:
    body = {
        "metadata": {
            "name": "qwen",
            "namespace": "team-a",
            "uid": "uid-1",
            "generation": generation,
        },
        "spec": {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": "NVIDIA-L4"}, **spec},
        "status": status or {},
    }
    return ModelDeployment.from_body(body)


def deployment(
    replicas: int,
    ready: int,
    updated: int | None = None,
    generation: int = 1,
    observed_generation: int = 1,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "qwen", "generation": generation},
        "status": {
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas if updated is None else updated,
            "observedGeneration": observed_generation,
            "conditions": conditions or [],
        },
    }


def pod(phase: str = "Running", unschedulable: str = "", waiting: str = "") -> dict[str, Any]:
    conditions = []
    if unschedulable:
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
            }
        )
    statuses = []
    if waiting:
        statuses.append(
            {"name": "engine", "state": {"waiting": {"reason": waiting, "message": "back-off"}}}
        )
    return {
        "metadata": {"name": "qwen-abc"},
        "status": {"phase": phase, "conditions": conditions, "containerStatuses": statuses},
    }


def node(product: str | None, gpus: int = 0) -> dict[str, Any]:
    labels = {"nvidia.com/gpu.product": product} if product else {}
    allocatable = {"cpu": "16", "nvidia.com/gpu": str(gpus)} if product else {"cpu": "16"}
    return {
        "metadata": {"name": f"{product}-0", "labels": labels},
        "status": {"allocatable": allocatable},
    }


def placement(product: str = "NVIDIA-L4", gpus: int = 1, **extra: Any) -> PlacementStatus:
    return PlacementStatus(
        gpu_product=product, gpus_per_replica=gpus, tensor_parallel=gpus, **extra
    )


def gpu_node(
    name: str, product: str = "NVIDIA-L4", gpus: int = 4, price: str | None = None
) -> dict[str, Any]:
    """A GPU node as the gpu_nodes index keeps it, priced by annotation when `price` is set."""
    annotations = {"modelfleet.dev/gpu-hourly-usd": price} if price is not None else {}
    return {
        "metadata": {
            "name": name,
            "labels": {"nvidia.com/gpu.product": product},
            "annotations": annotations,
        },
        "status": {"capacity": {"nvidia.com/gpu": str(gpus)}},
    }
