"""Cluster GPU inventory from Node and Pod objects (plain dicts, as `kubectl get -o yaml` prints).

A node's GPU product comes from the first label present of: nvidia.com/gpu.product (GPU feature
discovery), cloud.google.com/gke-accelerator (GKE), karpenter.k8s.aws/instance-gpu-name
(Karpenter on AWS). Its per-GPU memory from nvidia.com/gpu.memory or
karpenter.k8s.aws/instance-gpu-memory (MiB), else the catalog. GPU counts from
status.allocatable / status.capacity `nvidia.com/gpu`, else nvidia.com/gpu.count or
karpenter.k8s.aws/instance-gpu-count. A cordoned or NotReady node offers no free GPUs.
Nodes are grouped into pools of the same (label, product, per-GPU memory, spot).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfleet.catalog.gpus import (
    GFD_COUNT_LABEL,
    GFD_MEMORY_LABEL,
    GFD_PRODUCT_LABEL,
    GPU,
    KARPENTER_GPU_COUNT_LABEL,
    KARPENTER_GPU_MEMORY_LABEL,
    PRODUCT_LABELS,
    GPUCatalog,
    default_gpus,
)

GPU_RESOURCE = "nvidia.com/gpu"
SPOT_LABELS = {
    "karpenter.sh/capacity-type": "spot",
    "cloud.google.com/gke-spot": "true",
    "eks.amazonaws.com/capacityType": "SPOT",
}


@dataclass(frozen=True)
class GPUNode:
    name: str
    allocatable: int  # GPUs the scheduler may hand out
    used: int  # GPUs requested by non-terminated pods bound to the node
    schedulable: bool  # Ready and not cordoned

    @property
    def free(self) -> int:
        return max(self.allocatable - self.used, 0) if self.schedulable else 0


@dataclass(frozen=True)
class Pool:
    """Nodes with the same GPU product, per-GPU memory and capacity type."""

    label_key: str  # the node label that names the product (use it in a nodeSelector)
    product: str  # its value, e.g. NVIDIA-L4
    gpu: GPU | None  # catalog facts, None when the catalog does not know the product
    memory_mib: float | None  # per GPU: node label, else catalog, else None (unknown)
    spot: bool
    nodes: tuple[GPUNode, ...]

    @property
    def memory_bytes(self) -> float | None:
        return None if self.memory_mib is None else self.memory_mib * 2**20

    @property
    def gpus_per_node(self) -> int:
        return max((node.allocatable for node in self.nodes), default=0)

    @property
    def free_gpus(self) -> int:
        return sum(node.free for node in self.nodes)

    @property
    def display_name(self) -> str:
        return self.gpu.name if self.gpu else self.product

    def free_replicas(self, gpus_per_replica: int) -> int:
        """Replicas of `gpus_per_replica` GPUs (each on one node) that fit in the free GPUs."""
        return sum(node.free // gpus_per_replica for node in self.nodes)


@dataclass(frozen=True)
class Inventory:
    pools: tuple[Pool, ...]
    ignored: tuple[str, ...] = field(default=())  # "node-x: has nvidia.com/gpu but no product"


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in ((obj.get("metadata") or {}).get("labels") or {}).items()}


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _gpu_quantity(resources: Mapping[str, Any] | None) -> int:
    return _int((resources or {}).get(GPU_RESOURCE)) or 0


def pod_gpus(pod: Mapping[str, Any]) -> int:
    """GPUs a pod holds: the larger of its containers' sum and its largest init container."""
    spec = pod.get("spec") or {}

    def per_container(container: Mapping[str, Any]) -> int:
        resources = container.get("resources") or {}
        return max(_gpu_quantity(resources.get("requests")), _gpu_quantity(resources.get("limits")))

    main = sum(per_container(c) for c in spec.get("containers") or [])
    init = max((per_container(c) for c in spec.get("initContainers") or []), default=0)
    return max(main, init)


def used_gpus_by_node(pods: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    used: dict[str, int] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if node and phase not in ("Succeeded", "Failed"):
            used[node] = used.get(node, 0) + pod_gpus(pod)
    return used


def _ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = [c for c in conditions if c.get("type") == "Ready"]
    return not ready or ready[0].get("status") == "True"  # offline YAML may omit conditions


def _product(labels: Mapping[str, str]) -> tuple[str, str] | None:
    for key in PRODUCT_LABELS:
        if labels.get(key):
            return key, labels[key]
    return None


def parse_inventory(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]] = (),
    gpus: GPUCatalog | None = None,
) -> Inventory:
    """Group GPU nodes into pools with their free GPUs. Nodes without GPUs are skipped."""
    catalog = gpus or default_gpus()
    used = used_gpus_by_node(pods)
    grouped: dict[tuple[str, str, float | None, bool], list[GPUNode]] = {}
    facts: dict[tuple[str, str, float | None, bool], GPU | None] = {}
    ignored: list[str] = []
    for node in nodes:
        name = str((node.get("metadata") or {}).get("name", "?"))
        labels = _labels(node)
        status = node.get("status") or {}
        allocatable = _int((status.get("allocatable") or {}).get(GPU_RESOURCE))
        if allocatable is None:
            allocatable = _int((status.get("capacity") or {}).get(GPU_RESOURCE))
        if allocatable is None:
            allocatable = _int(labels.get(GFD_COUNT_LABEL) or labels.get(KARPENTER_GPU_COUNT_LABEL))
        product = _product(labels)
        if product is None:
            if allocatable:
                ignored.append(f"{name}: has {GPU_RESOURCE} but no GPU product label")
            continue
        if not allocatable:
            ignored.append(f"{name}: labelled {product[1]} but offers no {GPU_RESOURCE}")
            continue
        label_memory = _int(labels.get(GFD_MEMORY_LABEL) or labels.get(KARPENTER_GPU_MEMORY_LABEL))
        gpu = catalog.by_label(product[0], product[1], label_memory)
        if gpu is None and product[0] == GFD_PRODUCT_LABEL:
            gpu = catalog.by_name(product[1])
        memory_mib = (
            float(label_memory) if label_memory else (gpu.memory_gib * 1024 if gpu else None)
        )
        spot = any(labels.get(k, "").lower() == v.lower() for k, v in SPOT_LABELS.items())
        schedulable = _ready(node) and not (node.get("spec") or {}).get("unschedulable", False)
        key = (product[0], product[1], memory_mib, spot)
        grouped.setdefault(key, []).append(
            GPUNode(name, allocatable, used.get(name, 0), schedulable)
        )
        facts[key] = gpu
    pools = tuple(
        Pool(key[0], key[1], facts[key], key[2], key[3], tuple(members))
        for key, members in sorted(grouped.items(), key=lambda item: (item[0][1], item[0][3]))
    )
    return Inventory(pools, tuple(ignored))


def hypothetical_inventory(gpus: GPUCatalog, gpus_per_node: int = 8) -> Inventory:
    """One empty node of every catalog GPU that has a nvidia.com/gpu.product label."""
    pools = tuple(
        Pool(
            GFD_PRODUCT_LABEL,
            gpu.product_labels[0],
            gpu,
            gpu.memory_gib * 1024,
            False,
            (GPUNode(f"hypothetical-{gpu.name.lower()}", gpus_per_node, 0, True),),
        )
        for gpu in gpus.gpus
        if gpu.product_labels and gpu.resource == GPU_RESOURCE
    )
    return Inventory(pools)
