"""Roofline throughput estimate for one replica, and the $/1M output tokens that follows.

Decode, at a batch of B running sequences, each step reads the weights once and every
sequence's KV cache, and does 2 x active parameters FLOPs per sequence:

    memory time  = (weights read + B x S x KV bytes/token) / (N x bandwidth x BANDWIDTH_EFFICIENCY)
    compute time = B x 2 x active params / (N x bf16 FLOPs x COMPUTE_EFFICIENCY)
    tokens/s     = B / max(memory time, compute time)

S = min(max context, TYPICAL_SEQUENCE_TOKENS) is the assumed average context of a running
sequence. B is as many sequences as the KV budget (capacity - weights - overhead) holds, at
least 1 and at most MAX_BATCH (vLLM's default --max-num-seqs). Weights read per step are the
active parameters per sequence, at most all of them (a large MoE batch touches every expert).
Prefill is compute-bound: N x bf16 FLOPs x COMPUTE_EFFICIENCY / (2 x active params).

Deliberately simple and optimistic (no scheduling gaps, no communication cost, fp8 compute
counted at the bf16 rate). More bandwidth or FLOPs never gives fewer tokens/s: B does not
depend on either, and both times only shrink.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelfleet.catalog.gpus import GPU
from modelfleet.catalog.models import ModelArch
from modelfleet.plan.memory import (
    KVCacheDtype,
    MemoryEstimate,
    Quantization,
    active_weights_bytes,
    kv_bytes_per_token,
)

BANDWIDTH_EFFICIENCY = 0.7
COMPUTE_EFFICIENCY = 0.5
TYPICAL_SEQUENCE_TOKENS = 4096
MAX_BATCH = 256


@dataclass(frozen=True)
class Throughput:
    batch: int
    decode_tokens_per_s: float  # output tokens/s of the whole replica at batch `batch`
    prefill_tokens_per_s: float


def roofline(
    arch: ModelArch,
    gpu: GPU,
    memory: MemoryEstimate,
    *,
    max_context: int,
    quantization: Quantization | None = None,
    kv_cache_dtype: KVCacheDtype = "auto",
) -> Throughput:
    gpus = memory.gpus
    kv_token = kv_bytes_per_token(arch, kv_cache_dtype)
    sequence = min(max_context, TYPICAL_SEQUENCE_TOKENS)
    kv_budget = max(memory.capacity - memory.weights - memory.overhead, 0.0)
    batch = max(1, min(MAX_BATCH, math.floor(kv_budget / (sequence * kv_token))))
    weights_read = min(memory.weights, active_weights_bytes(arch, quantization) * batch)
    flops = gpus * gpu.bf16_tflops * 1e12 * COMPUTE_EFFICIENCY
    memory_time = (weights_read + batch * sequence * kv_token) / (
        gpus * gpu.bandwidth_gbs * 1e9 * BANDWIDTH_EFFICIENCY
    )
    compute_time = batch * 2 * arch.active_params / flops
    return Throughput(
        batch=batch,
        decode_tokens_per_s=batch / max(memory_time, compute_time),
        prefill_tokens_per_s=flops / (2 * arch.active_params),
    )


def usd_per_million_tokens(hourly_usd: float, tokens_per_s: float) -> float:
    """hourly / (tokens/s x 3600) x 1e6."""
    return hourly_usd / (tokens_per_s * 3600) * 1e6
