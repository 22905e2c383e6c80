"""What the planner is asked: the parts of a ModelDeployment spec that decide a placement."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelfleet.catalog.models import ModelArch
from modelfleet.plan.memory import (
    DEFAULT_OVERHEAD_GIB,
    DEFAULT_UTILIZATION,
    KVCacheDtype,
)

EngineName = Literal["vllm", "sglang", "llamacpp"]
QuantizationChoice = Literal["bf16", "fp16", "fp8", "int8", "awq", "gptq", "auto"]


class PlacementRequest(BaseModel):
    """A model to place, with optional pins.

    quantization: None serves the published weights as they are; a value pins it; "auto" lets
    the planner also consider fp8 for a 16-bit model (vLLM quantizes online). awq/gptq need a
    pre-quantized checkpoint, so they are only ever used when pinned.
    gpu_product: None (or "auto") lets the planner choose; else a nvidia.com/gpu.product value
    or any label value / catalog name of a GPU ("NVIDIA-L4", "nvidia-l4", "L4").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Annotated[str, Field(min_length=1)]
    architecture: ModelArch | None = None  # for a model the catalog does not know
    max_context_length: Annotated[int | None, Field(gt=0)] = None  # default: the model's
    quantization: QuantizationChoice | None = None
    gpu_product: str | None = None
    gpu_count: Annotated[int | None, Field(ge=1, le=8)] = None
    engine: EngineName = "vllm"
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = DEFAULT_UTILIZATION
    overhead_gib: Annotated[float, Field(ge=0)] = DEFAULT_OVERHEAD_GIB
    kv_cache_dtype: KVCacheDtype = "auto"

    @field_validator("gpu_product")
    @classmethod
    def _auto_is_unpinned(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in ("", "auto"):
            return None
        return value.strip()
