"""Node pools of the simulated cluster: a validated inventory file and the Node objects it renders.

The Nodes look like GPU nodes after NVIDIA's GPU feature discovery ran, so the real scheduler
enforces `nvidia.com/gpu` capacity, GPU product selectors and the GPU taint.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
POOL_LABEL = "modelfleet.dev/pool"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}
PODS_PER_NODE = "110"

DnsLabel = Annotated[
    str, StringConstraints(max_length=50, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
]


class NodePool(BaseModel):
    """`count` identical nodes; GPU pools set all three GPU fields, CPU-only pools none."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: DnsLabel
    count: int = Field(ge=1, le=100)
    cpu: str = Field(pattern=r"^[0-9]+(m)?$")
    memory: str = Field(pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)?$")
    gpu_product: str | None = Field(default=None, alias="gpuProduct", min_length=1)
    gpu_memory_mib: int | None = Field(default=None, alias="gpuMemoryMiB", ge=1)
    gpus_per_node: int | None = Field(default=None, alias="gpusPerNode", ge=1, le=16)

    @model_validator(mode="after")
    def _gpu_fields_together(self) -> NodePool:
        gpu_fields = (self.gpu_product, self.gpu_memory_mib, self.gpus_per_node)
        if any(field is not None for field in gpu_fields) and None in gpu_fields:
            raise ValueError("a GPU pool needs gpuProduct, gpuMemoryMiB and gpusPerNode together")
        return self

    @property
    def has_gpus(self) -> bool:
        return self.gpus_per_node is not None

    def node_names(self) -> list[str]:
        return [f"{self.name}-{index}" for index in range(self.count)]


class NodeInventory(BaseModel):
    """The whole inventory file: a list of pools with distinct names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pools: list[NodePool] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_pool_names(self) -> NodeInventory:
        names = [pool.name for pool in self.pools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"pool names must be unique, repeated: {', '.join(duplicates)}")
        return self


def parse_inventory(text: str) -> NodeInventory:
    """Parse inventory YAML; raises pydantic.ValidationError naming the offending field."""
    return NodeInventory.model_validate(yaml.safe_load(text))


def load_inventory(path: Path | None = None) -> NodeInventory:
    """Read an inventory file, or the packaged default inventory when `path` is None."""
    if path is None:
        text = resources.files(__package__).joinpath("default-nodes.yaml").read_text()
    else:
        text = path.read_text()
    return parse_inventory(text)


def render_node(pool: NodePool, node_name: str) -> dict[str, Any]:
    """A Node manifest that kwok manages and the scheduler sees as a real GPU node."""
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": node_name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        POOL_LABEL: pool.name,
    }
    resources_: dict[str, str] = {"cpu": pool.cpu, "memory": pool.memory, "pods": PODS_PER_NODE}
    spec: dict[str, Any] = {}
    if pool.has_gpus:
        labels |= {
            "nvidia.com/gpu.product": str(pool.gpu_product),
            "nvidia.com/gpu.memory": str(pool.gpu_memory_mib),
            "nvidia.com/gpu.count": str(pool.gpus_per_node),
            "nvidia.com/gpu.present": "true",
        }
        resources_[GPU_RESOURCE] = str(pool.gpus_per_node)
        spec["taints"] = [dict(GPU_TAINT)]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake"},
            "labels": labels,
        },
        "spec": spec,
        "status": {"capacity": dict(resources_), "allocatable": dict(resources_)},
    }


def render_nodes(inventory: NodeInventory) -> list[dict[str, Any]]:
    """Every Node of every pool, named `<pool>-<index>`."""
    return [render_node(pool, name) for pool in inventory.pools for name in pool.node_names()]
