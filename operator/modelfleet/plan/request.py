"""What the planner is asked: the parts of a ModelDeployment spec that decide a placement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelfleet.api.types import NAME_RULE_MESSAGE, valid_name
from modelfleet.catalog.models import ModelArch
from modelfleet.plan.fleet import DEFAULT_TTFT_SECONDS, Load
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
    load: the traffic to serve (spec.expectedLoad); with it the planner picks the cheapest fleet
    for it within ttft_seconds (spec.slo.ttftSeconds) and tpot_seconds, without it the cheapest
    replica (plan/fleet.py).
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
    load: Load | None = None
    ttft_seconds: Annotated[float, Field(gt=0, le=3600)] = DEFAULT_TTFT_SECONDS
    tpot_seconds: Annotated[float | None, Field(gt=0, le=60)] = None

    @field_validator("gpu_product")
    @classmethod
    def _auto_is_unpinned(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in ("", "auto"):
            return None
        return value.strip()


class PlanInputError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _engine_arg(args: Sequence[Any], flag: str) -> str | None:
    for index, arg in enumerate(args):
        arg = str(arg)
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and index + 1 < len(args):
            return str(args[index + 1])
    return None


def _kv_cache_dtype_arg(args: Sequence[Any]) -> str | None:
    """--kv-cache-dtype from extraArgs as the memory model counts it.

    Every fp8 variant (vLLM fp8_e4m3/fp8_e5m2, SGLang fp8_e5m2) is one byte per value.
    """
    value = _engine_arg(args, "--kv-cache-dtype")
    return "fp8" if value is not None and value.startswith("fp8") else value


def request_from_manifest(manifest: Any) -> PlacementRequest:
    """Map a ModelDeployment (dict) onto a PlacementRequest; field-level errors on bad values.

    The name is optional here (planning does not need it), but one that the API server would
    refuse is refused with the same words.
    """
    metadata = manifest.get("metadata") if isinstance(manifest, Mapping) else None
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if name is not None and not (isinstance(name, str) and valid_name(name)):
        raise PlanInputError([f"metadata.name: {NAME_RULE_MESSAGE}"])
    spec = manifest.get("spec") if isinstance(manifest, Mapping) else None
    if not isinstance(spec, Mapping):
        raise PlanInputError(["spec: required"])
    gpu = spec.get("gpu") or {}
    if not isinstance(gpu, Mapping):
        raise PlanInputError(["spec.gpu: must be an object"])
    extra = spec.get("extraArgs") or []
    if not isinstance(extra, list):
        raise PlanInputError(["spec.extraArgs: must be a list"])
    fields: dict[str, tuple[str, Any]] = {
        "model": ("spec.model", spec.get("model")),
        "architecture": ("spec.architecture", spec.get("architecture")),
        "max_context_length": (
            "spec.maxContextLength",
            spec.get("maxContextLength", _engine_arg(extra, "--max-model-len")),
        ),
        "quantization": (
            "spec.quantization",
            spec.get("quantization", _engine_arg(extra, "--quantization")),
        ),
        "engine": ("spec.engine", spec.get("engine", "vllm")),
        "gpu_product": ("spec.gpu.product", gpu.get("product")),
        "gpu_count": ("spec.gpu.count", gpu.get("count")),
        "gpu_memory_utilization": (
            "spec.gpuMemoryUtilization",
            spec.get("gpuMemoryUtilization", _engine_arg(extra, "--gpu-memory-utilization")),
        ),
        "kv_cache_dtype": (
            "spec.kvCacheDtype" if "kvCacheDtype" in spec else "spec.extraArgs --kv-cache-dtype",
            spec.get("kvCacheDtype", _kv_cache_dtype_arg(extra)),
        ),
    }
    slo = spec.get("slo") or {}
    if not isinstance(slo, Mapping):
        raise PlanInputError(["spec.slo: must be an object"])
    fields["load"] = ("spec.expectedLoad", spec.get("expectedLoad"))
    fields["ttft_seconds"] = ("spec.slo.ttftSeconds", slo.get("ttftSeconds"))
    fields["tpot_seconds"] = ("spec.slo.tpotSeconds", slo.get("tpotSeconds"))
    values = {name: value for name, (_, value) in fields.items() if value is not None}
    if values.get("architecture") is not None and isinstance(values["architecture"], Mapping):
        values["architecture"] = {"id": values.get("model", "custom"), **values["architecture"]}
    try:
        return PlacementRequest.model_validate(values)
    except ValidationError as error:
        paths = {name: path for name, (path, _) in fields.items()}
        lines = []
        for problem in error.errors():
            loc = [str(part) for part in problem["loc"]]
            head = paths.get(loc[0], loc[0]) if loc else "spec"
            path = ".".join([head, *loc[1:]])
            lines.append(f"{path}: {problem['msg'].removeprefix('Value error, ')}")
        raise PlanInputError(lines) from error
