"""Memory model: what one replica needs on N GPUs, and whether tensor parallelism can split it.

Default feasibility rule (what vLLM requires to start):

    weights + KV cache for one sequence of max_context tokens + N x overhead
        <= N x GPU memory x utilization

Weights use *total* parameters (a MoE keeps every expert in memory). Units: bytes; GiB = 2**30.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from modelfleet.catalog.gpus import GIB
from modelfleet.catalog.models import ModelArch

Quantization = Literal["bf16", "fp16", "fp8", "int8", "awq", "gptq"]
QUANTIZATIONS: tuple[Quantization, ...] = get_args(Quantization)
KVCacheDtype = Literal["auto", "fp8"]

BYTES_PER_PARAM: dict[str, float] = {
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "awq": 0.5,
    "gptq": 0.5,
}
# int4 formats store per-group scales and zeros, and keep embeddings/lm_head in 16 bit.
INT4_OVERHEAD = 0.10
DEFAULT_OVERHEAD_GIB = 1.5  # per GPU: CUDA context, activations, NCCL buffers, cuda graphs
DEFAULT_UTILIZATION = 0.9  # vLLM --gpu-memory-utilization default
KV_BYTES = {"auto": 2.0, "fp8": 1.0}  # auto: activations dtype (bf16), even for fp8 weights


def weight_dtype(arch: ModelArch, quantization: Quantization | None) -> str:
    """The dtype the weights are held in: the requested quantization, else the published one."""
    return quantization or arch.native_dtype


def bytes_per_param(dtype: str) -> float:
    factor = 1 + INT4_OVERHEAD if dtype in ("awq", "gptq", "int4") else 1.0
    return BYTES_PER_PARAM[dtype] * factor


def weights_bytes(arch: ModelArch, quantization: Quantization | None = None) -> float:
    """All parameters (every expert of a MoE) at the weight dtype."""
    return arch.total_params * bytes_per_param(weight_dtype(arch, quantization))


def active_weights_bytes(arch: ModelArch, quantization: Quantization | None = None) -> float:
    """Parameters one token touches (MoE: the routed experts) at the weight dtype."""
    return arch.active_params * bytes_per_param(weight_dtype(arch, quantization))


def kv_bytes_per_token(arch: ModelArch, kv_cache_dtype: KVCacheDtype = "auto") -> float:
    """KV cache per token of context, over all layers.

    GQA/MHA: 2 (K and V) x layers x kv_heads x head_dim x bytes.
    MLA: layers x (kv_lora_rank + qk_rope_head_dim) x bytes (one latent vector, no separate V).
    """
    size = KV_BYTES[kv_cache_dtype]
    if arch.mla is not None:
        return arch.layers * (arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim) * size
    return 2 * arch.layers * arch.effective_kv_heads * arch.effective_head_dim * size


def tensor_parallel_problem(arch: ModelArch, gpus: int) -> str | None:
    """Why `gpus`-way tensor parallelism cannot split this model, or None when it can."""
    if gpus == 1:
        return None
    if arch.attention_heads % gpus:
        return f"tensor parallel {gpus} does not divide {arch.attention_heads} attention heads"
    kv = arch.effective_kv_heads
    if arch.mla is None and kv % gpus and gpus % kv:
        return f"tensor parallel {gpus} cannot split {kv} KV heads evenly"
    return None


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one replica needs on `gpus` GPUs, against what the engine may use of them."""

    gpus: int
    weights: float
    kv_cache: float  # one sequence of max_context tokens
    overhead: float  # gpus x per-GPU overhead
    capacity: float  # gpus x GPU memory x utilization

    @property
    def needed(self) -> float:
        return self.weights + self.kv_cache + self.overhead

    @property
    def headroom(self) -> float:
        return self.capacity - self.needed

    @property
    def fits(self) -> bool:
        return self.needed <= self.capacity

    @property
    def needed_gib(self) -> float:
        return self.needed / GIB

    @property
    def capacity_gib(self) -> float:
        return self.capacity / GIB


def estimate(
    arch: ModelArch,
    *,
    gpus: int,
    gpu_memory_bytes: float,
    max_context: int,
    quantization: Quantization | None = None,
    kv_cache_dtype: KVCacheDtype = "auto",
    utilization: float = DEFAULT_UTILIZATION,
    overhead_gib: float = DEFAULT_OVERHEAD_GIB,
) -> MemoryEstimate:
    return MemoryEstimate(
        gpus=gpus,
        weights=weights_bytes(arch, quantization),
        kv_cache=kv_bytes_per_token(arch, kv_cache_dtype) * max_context,
        overhead=gpus * overhead_gib * GIB,
        capacity=gpus * gpu_memory_bytes * utilization,
    )
