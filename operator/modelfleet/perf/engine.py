"""Performance model of one serving replica: continuous batching in explicit time (pure).

Shared by the engine emulator (real time) and the trace simulator (simulated time). No
randomness and no clock: the caller says what time it is (`advance(until)`, `Request.arrival`).

Step time (`EngineProfile.step_seconds`) is the roofline of `plan.throughput`, per step:

    memory  = (weights read + KV bytes/token x KV tokens in the batch) / bandwidth
    compute = 2 x active params x (decode tokens + prefill tokens) / FLOPs
    step    = max(memory, compute) + STEP_OVERHEAD_S + SEQUENCE_OVERHEAD_S x decode sequences
              + tensor-parallel communication (`tp_comm_seconds`)

bandwidth = GPUs x GB/s x BANDWIDTH_EFFICIENCY (0.7) and FLOPs = GPUs x tensor FLOPs x
COMPUTE_EFFICIENCY (0.5), the constants the planner uses. The tensor rate is the bf16 one, or
twice it for fp8 weights on a GPU with fp8 tensor cores (`FP8_GPUS`): vLLM runs fp8 checkpoints
with fp8 GEMMs (W8A8) there, and the datasheets give fp8 dense = 2x bf16 dense (H100 SXM: 1,979
vs 989 TFLOPs; L40S: 733 vs 362; L4: 242 vs 121). Prefill is compute-bound, so it runs at that
rate; decode is bandwidth-bound and gains from the halved weight bytes. Weights read per step are
the active parameters per token in the step, at most all of them (a big MoE batch touches every
expert). The quadratic attention FLOPs of long prompts are ignored.

- STEP_OVERHEAD_S = 0.3 ms: scheduling, input preparation and kernel launch of one step that no
  GPU roofline sees. Fitted to single-stream time per output token, which excludes the time to
  first token (the earlier fit used 122 tokens/s end to end, TTFT included, and made decode ~20%
  slow): Llama-3.1-8B bf16 at batch 1, p50 TPOT 6.48 ms on 1x H100 (yobitel InferenceBench,
  vLLM 0.21) and 75 tokens/s = 13.3 ms on 1x A100-40GB (public vLLM 0.23 sweep). The roofline
  alone already gives 6.85 and 14.75 ms (16 GB of weights at 0.7 x 3,350 and 0.7 x 1,555 GB/s),
  so little is left for overhead; 0.3 ms is what CUDA graphs leave of a step's launch and
  scheduling. The model then reads 7.15 ms (0.91x the public speed) and 15.05 ms (0.88x), and
  3.7 ms with fp8 weights on H100, against NVIDIA NIM's 4.63 ms inter-token latency (1.25x).
- SEQUENCE_OVERHEAD_S = 25 us per decoding sequence per step: the engine's CPU work per sequence
  (block tables, sampling, detokenizing and streaming the token). Without it 256 sequences of
  Llama-8B on an H100 would decode about 11,000 tokens/s, twice what the published
  high-concurrency numbers show (5,100-5,800 tokens/s with fp8 weights).
- Tensor parallelism (`tp_comm_seconds`): Megatron-style TP does two all-reduces of the step's
  activations per layer (after attention and after the MLP; Shoeybi et al., "Megatron-LM",
  2019, section 3). A ring all-reduce of B bytes over n GPUs moves 2 (n-1)/n x B per GPU (NCCL
  docs, "Performance: algorithm bandwidth vs bus bandwidth"), plus a fixed latency per call.
  Per GPU link (`_link_for`): NVLink 4 on H100/H200 SXM 450 GB/s each way (900 GB/s total,
  NVIDIA H100 datasheet), NVLink 5 on B200 900 GB/s, NVLink 3 on A100 SXM 300 GB/s; PCIe cards
  (L4, L40S, A10G, T4) talk over PCIe 4.0 x16, 32 GB/s each way, ~25 GB/s achieved. Latency
  per all-reduce: ~10 us on NVLink (vLLM's custom all-reduce for small messages), ~30 us over
  PCIe. At batch 1 on NVLink this is small next to the weight reads; it grows with the tokens
  in the step, and on PCIe it is large.

vLLM's scheduler budget depends on the GPU (`vllm_batch_defaults`, from vLLM V1's
`EngineArgs.get_batch_defaults` in vllm/engine/arg_utils.py, for the OpenAI API server): on a
GPU with at least 70 GiB that is not an A100, `max_num_batched_tokens` 8192 and `max_num_seqs`
1024; otherwise (L4, L40S, A10G, A100) 2048 and 256.
Scheduling follows vLLM v1 with chunked prefill. Every step decodes one token for each decoding
sequence and spends the rest of `max_batched_tokens` (vLLM's chunked-prefill budget, by GPU:
see above) on prefill chunks: first for admitted requests still in prefill, first come first
served, then for newly admitted ones. A request's first token comes at the end of the step that
finishes its prefill (that step also produces the token); then one token per step. A request with
`output_tokens == 1` finishes at its first token.

Admission (waiting -> running) is first come first served, at a step start, while running <
`max_running` (vLLM's --max-num-seqs default, by GPU), the step has token budget left, and the KV
cache has room to *reserve* the request's prompt + output tokens (capped at the whole cache, so
any single request runs on an empty replica). vLLM instead allocates blocks as the sequence grows
and preempts (recomputes) the newest request when the cache runs out; reserving up front never
preempts and keeps the model simple and deterministic, at the cost of queueing somewhat earlier
than vLLM when outputs are long. `kv_usage` reports the reserved share, so a queue behind a full
cache shows a cache near 100%, as vLLM's gauge does. KV capacity in tokens =
(memory capacity - weights - overhead) / KV bytes per token, from `plan.memory`.

Speed: between events the batch of a decode-only stretch is constant (no prefill, no admission,
nobody finishes), so the engine jumps all of its steps at once: step j of the stretch reads
K0 + n x j KV tokens, so its time is max(a + b x j, c) + o and the sum over m steps has a closed
form (exact, no approximation). A stretch ends at the next finish, or earlier at the first step
boundary after an arrival that could be admitted (`submit` cuts it). Per-sequence state is only
touched when it is admitted, finishes prefill or finishes, so the cost is per request, not per
token: an hour of a saturated replica simulates in well under a second (bench/perf/run.py).
Token counts of a stretch in progress (`generated`, `load`) are computed from the steps that
have ended by `now`.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from modelfleet.catalog.gpus import GPU, default_gpus
from modelfleet.catalog.models import ModelArch, default_models
from modelfleet.plan.memory import (
    QUANTIZATIONS,
    KVCacheDtype,
    MemoryEstimate,
    Quantization,
    active_weights_bytes,
    estimate,
    kv_bytes_per_token,
    weight_dtype,
)
from modelfleet.plan.throughput import BANDWIDTH_EFFICIENCY, COMPUTE_EFFICIENCY, MAX_BATCH

STEP_OVERHEAD_S = 0.0003
SEQUENCE_OVERHEAD_S = 25e-6
MAX_BATCHED_TOKENS = 8192  # vLLM's budget on H100-class GPUs (vllm_batch_defaults)
MAX_RUNNING = MAX_BATCH  # vLLM --max-num-seqs below H100-class (vllm_batch_defaults)

# vLLM V1 EngineArgs.get_batch_defaults (vllm/engine/arg_utils.py), OpenAI API server column:
# H100-class (>= 70 GiB device memory and not an A100) 8192 batched tokens and 1024 sequences,
# every other GPU 2048 and 256.
LARGE_GPU_GIB = 70
LARGE_GPU_BATCH = (8192, 1024)  # (max_num_batched_tokens, max_num_seqs)
SMALL_GPU_BATCH = (2048, 256)

# GPUs with fp8 tensor cores (Ada: L4, L40S; Hopper: H100, H200; Blackwell: B200), by catalog
# name; Ampere (A100, A10G) and Turing (T4) have none and run fp8 checkpoints as weight-only
# fp8 (Marlin), i.e. compute at the 16-bit rate.
FP8_GPUS = frozenset({"L4", "L40S", "H100-80GB", "H200", "B200"})
FP8_COMPUTE_SPEEDUP = 2.0  # dense fp8 / dense bf16 tensor FLOPs on those datasheets

# (bandwidth each way in bytes/s, latency per all-reduce in s) of the GPU-to-GPU link; see the
# module docstring (NVIDIA datasheets; PCIe 4.0 x16 achieved ~25 GB/s).
NVLINK5 = (900e9, 10e-6)
NVLINK4 = (450e9, 10e-6)
NVLINK3 = (300e9, 10e-6)
PCIE4 = (25e9, 30e-6)
LINKS = {
    "B200": NVLINK5,
    "H100-80GB": NVLINK4,
    "H200": NVLINK4,
    "A100-80GB": NVLINK3,
    "A100-40GB": NVLINK3,
}
ALL_REDUCES_PER_LAYER = 2  # Megatron TP: after attention and after the MLP
ACTIVATION_BYTES = 2  # bf16 activations


def vllm_batch_defaults(gpu: GPU) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) vLLM V1's API server uses on `gpu`."""
    large = gpu.memory_gib >= LARGE_GPU_GIB and not gpu.name.upper().startswith("A100")
    return LARGE_GPU_BATCH if large else SMALL_GPU_BATCH


def tensor_flops(gpu: GPU, weight_dtype: str) -> float:
    """Dense tensor FLOPs of one GPU for weights of `weight_dtype` (fp8 only where supported)."""
    speedup = FP8_COMPUTE_SPEEDUP if weight_dtype == "fp8" and gpu.name in FP8_GPUS else 1.0
    return gpu.bf16_tflops * 1e12 * speedup


def _link_for(gpu: GPU) -> tuple[float, float]:
    return LINKS.get(gpu.name, PCIE4)


@dataclass(frozen=True)
class EngineProfile:
    """Speed and capacity of one replica, derived from its placement."""

    kv_capacity_tokens: int  # tokens of KV cache the whole replica holds
    max_running: int  # most sequences decoded together (vLLM --max-num-seqs)
    max_batched_tokens: int  # per-step token budget (decode tokens + prefill chunk)
    weights_bytes: float  # all weights: the most one step reads
    active_weights_bytes: float  # weights one token touches (MoE: routed experts)
    kv_bytes_per_token: float
    bandwidth_bytes_s: float  # effective, whole replica: GPUs x bandwidth x efficiency
    flops: float  # effective, whole replica: GPUs x bf16 FLOPs x efficiency
    active_params: float
    step_overhead_s: float = STEP_OVERHEAD_S
    sequence_overhead_s: float = SEQUENCE_OVERHEAD_S
    max_context: int | None = None  # informational; the simulator's router refuses longer
    tp_gpus: int = 1  # tensor-parallel degree (GPUs per replica)
    tp_layers: int = 0  # layers, each with ALL_REDUCES_PER_LAYER all-reduces under TP
    tp_hidden: int = 0  # hidden size: activation elements per token
    link_bytes_s: float = PCIE4[0]
    link_latency_s: float = PCIE4[1]

    def __post_init__(self) -> None:
        if self.kv_capacity_tokens < 1:
            raise ValueError("kv_capacity_tokens must be at least 1")
        if self.max_running < 1 or self.max_batched_tokens <= self.max_running:
            raise ValueError("need 1 <= max_running < max_batched_tokens")
        if min(self.bandwidth_bytes_s, self.flops, self.active_params) <= 0:
            raise ValueError("bandwidth, flops and active_params must be positive")

    def step_seconds(self, decode_sequences: int, prefill_tokens: int, kv_tokens: int) -> float:
        """Duration of one engine step (see the module docstring)."""
        tokens = decode_sequences + prefill_tokens
        weights = min(self.weights_bytes, self.active_weights_bytes * max(tokens, 1))
        memory = (weights + self.kv_bytes_per_token * kv_tokens) / self.bandwidth_bytes_s
        compute = 2 * self.active_params * tokens / self.flops
        overhead = self.step_overhead_s + self.sequence_overhead_s * decode_sequences
        return max(memory, compute) + overhead + self.tp_comm_seconds(tokens)

    def tp_comm_seconds(self, tokens: int) -> float:
        """Tensor-parallel all-reduces of one step of `tokens` tokens (0 on one GPU)."""
        n = self.tp_gpus
        if n <= 1 or self.tp_layers <= 0:
            return 0.0
        size = max(tokens, 1) * self.tp_hidden * ACTIVATION_BYTES
        one = self.link_latency_s + 2 * (n - 1) / n * size / self.link_bytes_s
        return ALL_REDUCES_PER_LAYER * self.tp_layers * one

    def prefill_tokens_per_s(self) -> float:
        """Prompt tokens/s of a step budget spent on prefill alone (no decode, no context)."""
        tokens = self.max_batched_tokens
        return tokens / self.step_seconds(0, tokens, 0)

    def decode_tokens_per_s(self, sequences: int, context_tokens: int) -> float:
        """Steady decode rate of `sequences` sequences of `context_tokens` each (no prefill)."""
        return sequences / self.step_seconds(sequences, 0, sequences * context_tokens)


def profile_for(
    arch: ModelArch,
    gpu: GPU,
    memory: MemoryEstimate,
    *,
    quantization: Quantization | None,
    kv_cache_dtype: KVCacheDtype = "auto",
    max_running: int | None = None,
    max_batched_tokens: int | None = None,
) -> EngineProfile:
    """The profile of `memory.gpus` GPUs of `gpu` serving `arch`; ValueError if no KV fits.

    The batch limits default to vLLM's for the GPU (`vllm_batch_defaults`)."""
    kv_token = kv_bytes_per_token(arch, kv_cache_dtype)
    kv_budget = memory.capacity - memory.weights - memory.overhead
    capacity = math.floor(kv_budget / kv_token) if kv_budget > 0 else 0
    if capacity < 1:
        raise ValueError(
            f"{arch.id} does not fit on {memory.gpus}x {gpu.name}: no memory left for KV cache"
        )
    default_tokens, default_seqs = vllm_batch_defaults(gpu)
    bandwidth, latency = _link_for(gpu)
    return EngineProfile(
        kv_capacity_tokens=capacity,
        max_running=default_seqs if max_running is None else max_running,
        max_batched_tokens=default_tokens if max_batched_tokens is None else max_batched_tokens,
        weights_bytes=memory.weights,
        active_weights_bytes=min(memory.weights, active_weights_bytes(arch, quantization)),
        kv_bytes_per_token=kv_token,
        bandwidth_bytes_s=memory.gpus * gpu.bandwidth_gbs * 1e9 * BANDWIDTH_EFFICIENCY,
        flops=memory.gpus
        * tensor_flops(gpu, weight_dtype(arch, quantization))
        * COMPUTE_EFFICIENCY,
        active_params=arch.active_params,
        max_context=round(memory.kv_cache / kv_token),
        tp_gpus=memory.gpus,
        tp_layers=arch.layers,
        tp_hidden=arch.hidden,
        link_bytes_s=bandwidth,
        link_latency_s=latency,
    )


def profile_for_placement(
    model: str,
    gpu_product: str,
    gpus: int,
    *,
    quantization: str | None,
    max_context: int | None,
    kv_cache_dtype: KVCacheDtype = "auto",
) -> EngineProfile:
    """Profile of a placement named as the planner names it.

    `model`: a catalog id or alias; `gpu_product`: a nvidia.com/gpu.product value (or any label
    value / catalog name); `quantization`: the weight dtype (None or the published dtype means
    as published). Memory as the planner's defaults count it. ValueError names what is unknown.
    """
    arch = default_models().lookup(model)
    if arch is None:
        raise ValueError(f"unknown model {model!r}: not in the model catalog")
    gpu = default_gpus().find(gpu_product)
    if gpu is None:
        raise ValueError(f"unknown GPU product {gpu_product!r}: not in the GPU catalog")
    if gpus < 1:
        raise ValueError(f"GPU count must be at least 1, got {gpus}")
    weights: Quantization | None = None
    if quantization is not None and quantization != arch.native_dtype:
        if quantization not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {quantization!r}")
        weights = quantization
    memory = estimate(
        arch,
        gpus=gpus,
        gpu_memory_bytes=gpu.memory_bytes,
        max_context=max_context or arch.max_context,
        quantization=weights,
        kv_cache_dtype=kv_cache_dtype,
    )
    return profile_for(arch, gpu, memory, quantization=weights, kv_cache_dtype=kv_cache_dtype)


@dataclass(frozen=True)
class Request:
    id: str
    arrival: float  # seconds (any clock: simulated or time.monotonic())
    prompt_tokens: int
    output_tokens: int  # >= 1


@dataclass(frozen=True)
class RequestEvent:
    request_id: str
    kind: Literal["first_token", "finished"]
    time: float


@dataclass(frozen=True)
class EngineLoad:
    waiting: int  # queued, not yet admitted (vllm:num_requests_waiting)
    running: int  # admitted, in prefill or decode (vllm:num_requests_running)
    kv_usage: float  # 0-1, reserved share of the KV cache (vllm:kv_cache_usage_perc)
    prompt_tokens_total: int  # counters, monotonic
    generation_tokens_total: int


class _Seq:
    """One request inside the engine. Only `prefilled` changes, and only while in prefill."""

    __slots__ = ("d0", "finish_d", "need", "order", "prefilled", "request", "reserve")

    def __init__(self, request: Request, capacity: int, order: int) -> None:
        self.request = request
        self.reserve = min(request.prompt_tokens + request.output_tokens, capacity)
        self.need = max(request.prompt_tokens, 1)  # a step computes at least one token
        self.prefilled = 0
        self.d0 = 0  # decode counter when its first token came
        self.finish_d = 0  # decode counter at which its last token comes
        self.order = order

    def copy(self) -> _Seq:
        other = _Seq.__new__(_Seq)
        for name in _Seq.__slots__:
            setattr(other, name, getattr(self, name))
        return other


class _Segment:
    """Work in progress from `start` to `end`: one mixed step (chunks) or k decode-only steps.

    Step j of a decode-only stretch takes max(a + b j, c) + o seconds.
    """

    __slots__ = ("a", "b", "c", "chunks", "emits", "end", "o", "start", "steps")

    def __init__(self, start: float) -> None:
        self.start = start
        self.end = start
        self.steps = 1
        self.chunks: list[tuple[_Seq, int]] = []
        self.a = self.b = self.c = self.o = 0.0
        self.emits = False

    def elapsed(self, m: int) -> float:
        """Seconds of the first m steps of a decode-only stretch (closed form)."""
        a, b, c = self.a, self.b, self.c
        # steps before memory time a + b j overtakes compute time c
        below = (m if a < c else 0) if b <= 0 else min(max(math.ceil((c - a) / b), 0), m)
        above = m - below
        arithmetic = above * a + b * (m * (m - 1) - below * (below - 1)) / 2
        return below * c + arithmetic + m * self.o

    def steps_ended_by(self, t: float) -> int:
        """How many steps of a decode-only stretch have ended by time t."""
        if self.chunks or t >= self.end:
            return self.steps if t >= self.end else 0
        low, high = 0, self.steps  # start + elapsed(low) <= t < start + elapsed(high)
        while high - low > 1:
            mid = (low + high) // 2
            if self.start + self.elapsed(mid) <= t:
                low = mid
            else:
                high = mid
        return low

    def cut(self, t: float) -> None:
        """End a decode-only stretch at its first step boundary at or after t."""
        if self.chunks or t >= self.end:
            return
        low, high = 0, self.steps  # start + elapsed(low) < t <= start + elapsed(high)
        while high - low > 1:
            mid = (low + high) // 2
            if self.start + self.elapsed(mid) < t:
                low = mid
            else:
                high = mid
        if high < self.steps:
            self.steps = high
            self.end = self.start + self.elapsed(high)
            self.emits = False


class ReplicaEngine:
    """Continuous batching of one replica, advanced in explicit time."""

    def __init__(self, profile: EngineProfile, now: float = 0.0) -> None:
        self.profile = profile
        self._now = now
        self._order = 0
        self._future: list[tuple[float, int, Request]] = []  # submitted, arrival > now
        self._waiting: deque[_Seq] = deque()
        self._prefilling: list[_Seq] = []  # admitted, FCFS
        self._decoding: dict[str, _Seq] = {}
        self._finishes: list[tuple[int, int, str]] = []  # (finish_d, order, id) of _decoding
        self._d = 0  # decode steps taken so far (each decoding sequence gains one per step)
        self._ctx_base = 0  # sum of (prompt + 1 - d0) over _decoding: context = base + n x d
        self._reserved = 0
        self._prompt_total = 0
        self._generated_total = 0
        self._segment: _Segment | None = None
        self._aborted: set[str] = set()  # admitted, to leave the batch at the next step boundary

    # -- public API ---------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self._now

    @property
    def in_flight(self) -> int:
        return len(self._waiting) + len(self._prefilling) + len(self._decoding)

    def submit(self, request: Request) -> None:
        """Enqueue at request.arrival; an arrival before `now` counts as arriving now."""
        if request.output_tokens < 1 or request.prompt_tokens < 0:
            raise ValueError(f"request {request.id}: need output_tokens >= 1, prompt >= 0")
        if request.arrival > self._now:
            heapq.heappush(self._future, (request.arrival, self._next_order(), request))
        else:
            self._waiting.append(_Seq(request, self.profile.kv_capacity_tokens, self._next_order()))
        segment = self._segment
        if segment is not None and not segment.chunks and self._could_admit(request):
            segment.cut(max(request.arrival, self._now))

    def abort(self, request_id: str) -> bool:
        """Drop a request whose client went away, as vLLM does on a disconnect.

        One not admitted yet goes at once. An admitted one leaves the batch at the next step
        boundary (a decode stretch in progress is cut there) and frees its KV reservation; it
        reports no further event. The token counters keep what it already produced. False when
        the request is not in flight here (finished, unknown, or already aborted).
        """
        if request_id in self._aborted:
            return False
        future = [entry for entry in self._future if entry[2].id != request_id]
        if len(future) < len(self._future):
            self._future = future
            heapq.heapify(self._future)
            return True
        for seq in self._waiting:
            if seq.request.id == request_id:
                self._waiting.remove(seq)
                return True
        admitted = request_id in self._decoding or any(
            seq.request.id == request_id for seq in self._prefilling
        )
        if not admitted:
            return False
        self._aborted.add(request_id)
        if self._segment is None:
            self._drop_aborted()
        else:
            self._segment.cut(self._now)
        return True

    def advance(self, until: float) -> list[RequestEvent]:
        """Run engine steps up to `until`; events at their exact times, in time order."""
        events: list[RequestEvent] = []
        while True:
            if self._segment is None:
                self._arrive()
                if not self._waiting and not self._prefilling and not self._decoding:
                    if self._future and self._future[0][0] <= until:
                        self._now = self._future[0][0]
                        continue
                    break
                self._segment = self._schedule()
            if self._segment.end > until:
                break
            self._now = self._segment.end
            self._complete(self._segment, events)
            self._segment = None
        self._now = max(self._now, until)
        return events

    def next_event_time(self) -> float | None:
        """When the next event happens if nothing new is submitted; None when nothing will."""
        if self._segment is not None and self._segment.emits:
            return self._segment.end
        if self.in_flight == 0 and not self._future:
            return None
        probe = self._clone()
        while True:
            if probe._segment is None:
                probe._arrive()
                if not probe._waiting and not probe._prefilling and not probe._decoding:
                    if not probe._future:
                        return None
                    probe._now = probe._future[0][0]
                    continue
                probe._segment = probe._schedule()
            segment = probe._segment
            if segment.emits:
                return segment.end
            probe._now = segment.end
            probe._complete(segment, [])
            probe._segment = None

    def load(self) -> EngineLoad:
        decoded = self._decoded_in_segment()
        return EngineLoad(
            waiting=len(self._waiting),
            running=len(self._prefilling) + len(self._decoding),
            kv_usage=min(self._reserved / self.profile.kv_capacity_tokens, 1.0),
            prompt_tokens_total=self._prompt_total,
            generation_tokens_total=self._generated_total + decoded * len(self._decoding),
        )

    def generated(self, request_id: str) -> int:
        """Output tokens produced so far by an in-flight request; 0 if unknown or not started."""
        seq = self._decoding.get(request_id)
        if seq is None:
            return 0
        done = 1 + self._d + self._decoded_in_segment() - seq.d0
        return min(done, seq.request.output_tokens)

    # -- internals ----------------------------------------------------------------------------

    def _next_order(self) -> int:
        self._order += 1
        return self._order

    def _decoded_in_segment(self) -> int:
        segment = self._segment
        if segment is None or segment.chunks or not self._decoding:
            return 0
        return segment.steps_ended_by(self._now)

    def _could_admit(self, request: Request) -> bool:
        """Whether an arrival might be admitted before the current stretch ends (cheap bound)."""
        running = len(self._prefilling) + len(self._decoding)
        reserve = min(
            request.prompt_tokens + request.output_tokens, self.profile.kv_capacity_tokens
        )
        return running < self.profile.max_running and (
            self._reserved + reserve <= self.profile.kv_capacity_tokens
        )

    def _arrive(self) -> None:
        capacity = self.profile.kv_capacity_tokens
        while self._future and self._future[0][0] <= self._now:
            _, order, request = heapq.heappop(self._future)
            self._waiting.append(_Seq(request, capacity, order))

    def _schedule(self) -> _Segment:
        """Compose the step starting now; a decode-only step becomes a stretch to the next event."""
        profile = self.profile
        segment = _Segment(self._now)
        decoding = len(self._decoding)
        budget = profile.max_batched_tokens - decoding
        for seq in self._prefilling:
            if budget <= 0:
                break
            chunk = min(seq.need - seq.prefilled, budget)
            segment.chunks.append((seq, chunk))
            budget -= chunk
        while (
            budget > 0
            and self._waiting
            and len(self._prefilling) + decoding < profile.max_running
            and self._reserved + self._waiting[0].reserve <= profile.kv_capacity_tokens
        ):
            seq = self._waiting.popleft()
            self._prefilling.append(seq)
            self._reserved += seq.reserve
            chunk = min(seq.need, budget)
            segment.chunks.append((seq, chunk))
            budget -= chunk
        context = self._ctx_base + decoding * self._d
        if segment.chunks:
            prefill = sum(chunk for _, chunk in segment.chunks)
            kv = context + sum(seq.prefilled + chunk for seq, chunk in segment.chunks)
            segment.end = self._now + profile.step_seconds(decoding, prefill, kv)
            segment.emits = any(
                seq.prefilled + chunk >= seq.need for seq, chunk in segment.chunks
            ) or (bool(self._finishes) and self._finishes[0][0] <= self._d + 1)
            return segment
        # Decode only: constant batch until the next finish.
        segment.steps = self._finishes[0][0] - self._d
        weights = min(profile.weights_bytes, profile.active_weights_bytes * decoding)
        segment.a = (weights + profile.kv_bytes_per_token * context) / profile.bandwidth_bytes_s
        segment.b = profile.kv_bytes_per_token * decoding / profile.bandwidth_bytes_s
        segment.c = 2 * profile.active_params * decoding / profile.flops
        segment.o = (
            profile.step_overhead_s
            + profile.sequence_overhead_s * decoding
            + profile.tp_comm_seconds(decoding)
        )
        segment.end = self._now + segment.elapsed(segment.steps)
        segment.emits = True
        if self._future and not self._waiting and self._could_admit(self._future[0][2]):
            segment.cut(self._future[0][0])
        return segment

    def _complete(self, segment: _Segment, events: list[RequestEvent]) -> None:
        """Apply a segment that ended at self._now and record its events."""
        time = self._now
        decoding = len(self._decoding)
        self._d += segment.steps
        self._generated_total += decoding * segment.steps
        started: list[_Seq] = []
        for seq, chunk in segment.chunks:
            seq.prefilled += chunk
            if seq.prefilled >= seq.need:
                started.append(seq)
        if started:
            done = {id(seq) for seq in started}
            self._prefilling = [seq for seq in self._prefilling if id(seq) not in done]
        for seq in started:
            request = seq.request
            self._prompt_total += request.prompt_tokens
            self._generated_total += 1
            events.append(RequestEvent(request.id, "first_token", time))
            seq.d0 = self._d
            seq.finish_d = self._d + request.output_tokens - 1
            if request.output_tokens == 1:
                self._reserved -= seq.reserve
                events.append(RequestEvent(request.id, "finished", time))
                continue
            self._decoding[request.id] = seq
            self._ctx_base += request.prompt_tokens + 1 - seq.d0
            heapq.heappush(self._finishes, (seq.finish_d, seq.order, request.id))
        while self._finishes and self._finishes[0][0] <= self._d:
            _, _, request_id = heapq.heappop(self._finishes)
            seq = self._decoding.pop(request_id)
            self._ctx_base -= seq.request.prompt_tokens + 1 - seq.d0
            self._reserved -= seq.reserve
            events.append(RequestEvent(request_id, "finished", time))
        if self._aborted:
            gone = self._aborted
            events[:] = [e for e in events if e.request_id not in gone]
            self._drop_aborted()

    def _drop_aborted(self) -> None:
        """Remove aborted requests from the batch (at a step boundary), freeing their KV."""
        gone, self._aborted = self._aborted, set()
        for seq in self._prefilling:
            if seq.request.id in gone:
                self._reserved -= seq.reserve
        self._prefilling = [seq for seq in self._prefilling if seq.request.id not in gone]
        for request_id in gone & self._decoding.keys():
            seq = self._decoding.pop(request_id)
            self._ctx_base -= seq.request.prompt_tokens + 1 - seq.d0
            self._reserved -= seq.reserve
        self._finishes = [entry for entry in self._finishes if entry[2] not in gone]
        heapq.heapify(self._finishes)

    def _clone(self) -> ReplicaEngine:
        """A copy to look ahead on; sequences that can still change are copied.

        A look-ahead stops at its first event, and a running sequence leaves only with an event
        (or an abort), so it admits at most max_running - running (+ aborted) of the waiting
        sequences, first come first served: the look-ahead gets copies of those and one more
        (shared: it cannot be admitted, it keeps the queue non-empty), not the whole queue,
        which can be hundreds of thousands long in an overloaded run."""
        other = ReplicaEngine.__new__(ReplicaEngine)
        other.__dict__.update(self.__dict__)
        running = len(self._prefilling) + len(self._decoding)
        room = max(0, self.profile.max_running - running) + len(self._aborted)
        head = list(itertools.islice(self._waiting, room + 1))
        copies = {id(seq): seq.copy() for seq in (*head[:room], *self._prefilling)}
        other._future = list(self._future)
        other._waiting = deque(copies.get(id(seq), seq) for seq in head)
        other._prefilling = [copies[id(seq)] for seq in self._prefilling]
        other._decoding = dict(self._decoding)
        other._finishes = list(self._finishes)
        other._aborted = set(self._aborted)
        if self._segment is not None:
            segment = _Segment.__new__(_Segment)
            for name in _Segment.__slots__:
                setattr(segment, name, getattr(self._segment, name))
            segment.chunks = [(copies[id(seq)], chunk) for seq, chunk in self._segment.chunks]
            other._segment = segment
        return other
