"""GPU facts and default prices, looked up by the node labels that name a GPU product."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field

GIB = 2**30
MIB = 2**20

GFD_PRODUCT_LABEL = "nvidia.com/gpu.product"
GFD_MEMORY_LABEL = "nvidia.com/gpu.memory"  # MiB per GPU
GFD_COUNT_LABEL = "nvidia.com/gpu.count"
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
KARPENTER_GPU_NAME_LABEL = "karpenter.k8s.aws/instance-gpu-name"
KARPENTER_GPU_MEMORY_LABEL = "karpenter.k8s.aws/instance-gpu-memory"  # MiB per GPU
KARPENTER_GPU_COUNT_LABEL = "karpenter.k8s.aws/instance-gpu-count"

# Node labels that name the GPU product, most specific first.
PRODUCT_LABELS = (GFD_PRODUCT_LABEL, GKE_ACCELERATOR_LABEL, KARPENTER_GPU_NAME_LABEL)


class GPU(BaseModel):
    """One GPU model: memory, bandwidth, compute, default price and the label values naming it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1)]
    memory_gib: Annotated[float, Field(gt=0)]
    bandwidth_gbs: Annotated[float, Field(gt=0)]
    bf16_tflops: Annotated[float, Field(gt=0)]
    price_usd_hour: Annotated[float | None, Field(ge=0)] = None
    spot_price_usd_hour: Annotated[float | None, Field(ge=0)] = None
    resource: str = "nvidia.com/gpu"
    product_labels: tuple[str, ...] = ()
    gke_accelerator: tuple[str, ...] = ()
    karpenter_gpu_names: tuple[str, ...] = ()

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * GIB


class GPUCatalog:
    """Resolve a node label value to a catalog GPU, case-insensitively.

    `aliases` maps extra nvidia.com/gpu.product values (driver/SKU spellings the catalog does not
    list) to catalog GPU names, e.g. {"NVIDIA-H100-80GB-HBM3-MIG": "H100-80GB"}.
    """

    def __init__(self, gpus: Iterable[GPU], aliases: Mapping[str, str] | None = None) -> None:
        self.gpus: tuple[GPU, ...] = tuple(gpus)
        self._by_name = {gpu.name.lower(): gpu for gpu in self.gpus}
        self._by_label: dict[str, dict[str, list[GPU]]] = {key: {} for key in PRODUCT_LABELS}
        for gpu in self.gpus:
            for key, values in (
                (GFD_PRODUCT_LABEL, gpu.product_labels),
                (GKE_ACCELERATOR_LABEL, gpu.gke_accelerator),
                (KARPENTER_GPU_NAME_LABEL, gpu.karpenter_gpu_names),
            ):
                for value in values:
                    self._by_label[key].setdefault(value.lower(), []).append(gpu)
        self.aliases = dict(aliases or {})
        for value, name in self.aliases.items():
            target = self._by_name.get(name.lower())
            if target is None:
                raise ValueError(f"GPU alias {value!r} names unknown catalog GPU {name!r}")
            self._by_label[GFD_PRODUCT_LABEL][value.lower()] = [target]

    def with_aliases(self, aliases: Mapping[str, str]) -> GPUCatalog:
        return GPUCatalog(self.gpus, {**self.aliases, **aliases})

    def by_name(self, name: str) -> GPU | None:
        return self._by_name.get(name.strip().lower())

    def by_label(self, key: str, value: str, memory_mib: float | None = None) -> GPU | None:
        """The GPU a node label names; an ambiguous value is settled by the closest memory."""
        candidates = self._by_label.get(key, {}).get(value.strip().lower(), [])
        if not candidates:
            return None
        if memory_mib is None or len(candidates) == 1:
            return candidates[0]
        return min(candidates, key=lambda gpu: abs(gpu.memory_gib * 1024 - memory_mib))

    def find(self, name: str) -> GPU | None:
        """By catalog name (`H100-80GB`) or by any label value (`NVIDIA-H100-80GB-HBM3`, `l4`)."""
        gpu = self.by_name(name)
        for key in PRODUCT_LABELS:
            gpu = gpu or self.by_label(key, name)
        return gpu


def parse_gpus(text: str) -> GPUCatalog:
    return GPUCatalog(GPU.model_validate(entry) for entry in yaml.safe_load(text) or [])


@cache
def default_gpus() -> GPUCatalog:
    """The GPU catalog shipped in the package (read once)."""
    text = resources.files(__package__).joinpath("gpus.yaml").read_text(encoding="utf-8")
    return parse_gpus(text)
