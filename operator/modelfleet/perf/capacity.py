"""How many requests per second one replica serves within the SLO (pure).

Not a second performance model: a steady-state reading of the engine model (perf/engine.py),
through its own `EngineProfile.step_seconds`, vLLM's batch limits by GPU and the KV reservation
(prompt + output tokens per request, as the engine reserves them).

Requests of P prompt and O output tokens arrive at lambda per second (Poisson). With n sequences
decoding on average (n = 0.01 ... the slots, scanned), the engine runs two kinds of steps, as
ReplicaEngine does: a request's prefill takes k = ceil(P / b) steps (b = max_batched_tokens - n,
the budget the decodes leave; every step also decodes the n), S seconds in all, and decode-only
steps of d = step_seconds(n, 0, n (P + O/2)) fill the rest. Each request then needs O - 1 decode
steps after the step that gives its first token, so per second

    lambda (k + D) steps decode n sequences each = lambda (O - 1) tokens, D = (O - 1) / n - k
    lambda (S + D d) = 1                          => lambda(n) = 1 / (S + D d)

and the time per output token is the mean step, 1 / (lambda (k + D)). Separate prefill and
decode steps matter: prefill is compute-bound and decode bandwidth-bound, and their times add.

Time to first token, 99th percentile: the step in progress (d), the wait for prefill, the
prefill itself (S). Prefill is a single server busy rho = lambda S; its wait is read with
M/M/1's tail P(W > t) = rho e^-(1/S - lambda) t, an upper bound for chunked prefill's steadier
service:  TTFT99 = d + max(0, ln(100 rho)) / (1/S - lambda) + S.

Sequences: a request holds a slot and its KV reservation while it waits, prefills and decodes,
L = n + lambda (W_mean + S) on average; for Poisson arrivals the number held is Poisson(L)
(M/G/inf), and its 99.9th percentile, L + 3.09 sqrt(L), must fit min(max_running,
KV capacity / (P + O)) slots, or requests queue for admission.

The capacity is the largest lambda(n), reached from below (a larger n only matters where it
raises the rate), with TTFT99 <= the TTFT target and the mean step <= the TPOT target when one
is given, and at most HEADROOM (0.85) of the replica's peak rate: near the peak lambda(n) is
flat, so a few percent more traffic needs many more sequences and the queue runs away.
Checked against the simulator (ReplicaEngine, Poisson arrivals, tests/unit/test_fleet.py): at
the capacity the simulated share of requests within the TTFT target is at least 0.98 on every
case checked; with a TTFT-bound capacity the reading is conservative (M/M/1 tail).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelfleet.catalog.gpus import default_gpus
from modelfleet.catalog.models import ModelArch
from modelfleet.perf.engine import EngineProfile, profile_for
from modelfleet.plan.fleet import ReplicaCapacity
from modelfleet.plan.memory import QUANTIZATIONS, Quantization
from modelfleet.plan.planner import Option
from modelfleet.plan.request import PlacementRequest

PERCENTILE = 0.99
Z_SLOTS = 3.09  # standard normal 99.9th percentile: the Poisson number of requests held
GRID = 1.05  # decode batch sizes scanned: a geometric grid, then every size near the best
SMALLEST = 0.01  # fewest sequences decoding on average, i.e. the lightest load looked at
HEADROOM = 0.85  # at most this share of the replica's peak rate (see the module docstring)


@dataclass(frozen=True)
class _Steady:
    rate: float  # requests/s with `decoding` sequences decoding
    step: float  # mean step: the time per output token
    ttft99: float
    problem: str | None  # the first target missed, None when all are met


def _prefill_seconds(profile: EngineProfile, decoding: int, kv: int, prompt: int) -> float:
    """Seconds of the steps that prefill one prompt beside `decoding` decoding sequences."""
    budget = profile.max_batched_tokens - decoding
    full, rest = divmod(prompt, budget)
    seconds = full * profile.step_seconds(decoding, budget, kv) if full else 0.0
    if rest:
        seconds += profile.step_seconds(decoding, rest, kv)
    return seconds


def _steady(
    profile: EngineProfile,
    average: float,
    prompt: int,
    output: int,
    ttft: float,
    tpot: float | None,
) -> _Steady | None:
    """The steady state with `average` sequences decoding; None if it cannot exist.

    Step times count whole sequences (rounded up); the rate counts the average."""
    decoding = math.ceil(average)
    budget = profile.max_batched_tokens - decoding
    if budget < 1:
        return None
    chunks = math.ceil(prompt / budget)
    decode_steps = output - 1  # per request, after the step that gives its first token
    if average > 0 and decode_steps / average < chunks:
        return None  # more decoding than the prefill steps alone can feed
    kv = math.ceil(decoding * (prompt + output / 2))
    service = _prefill_seconds(profile, decoding, kv, prompt)
    decode_step = profile.step_seconds(decoding, 0, kv)
    decode_only = decode_steps / average - chunks if average > 0 else 0.0
    rate = 1 / (service + decode_only * decode_step)
    steps = rate * (chunks + decode_only)  # steps per second
    step = 1 / steps
    rho = rate * service
    drain = 1 / service - rate  # mu - lambda of the prefill queue
    if rho >= 1 or drain <= 0:
        return _Steady(rate, step, math.inf, "ttft")
    wait99 = max(0.0, math.log(rho / (1 - PERCENTILE))) / drain
    ttft99 = decode_step + wait99 + service
    held = average + rate * (rho / drain + service)
    per_request = min(prompt + output, profile.kv_capacity_tokens)
    slots = min(profile.max_running, profile.kv_capacity_tokens // per_request)
    problem = None
    if ttft99 > ttft:
        problem = "ttft"
    elif tpot is not None and step > tpot:
        problem = "tpot"
    elif held + Z_SLOTS * math.sqrt(held) > slots:
        problem = "kv cache" if slots < profile.max_running else "max sequences"
    return _Steady(rate, step, ttft99, problem)


def _batch_sizes(limit: int) -> list[float]:
    """Average decode batches to look at: fractions of one, then whole sequences to `limit`."""
    sizes: set[float] = {float(limit)}
    size = SMALLEST
    while size < limit:
        sizes.add(size if size < 1 else float(round(size)))
        size *= GRID
    return sorted(sizes)


def replica_capacity(
    profile: EngineProfile,
    prompt_tokens: int,
    output_tokens: int,
    ttft_seconds: float,
    tpot_seconds: float | None = None,
) -> ReplicaCapacity:
    """Most requests/s of this size one replica serves with the targets met (module docstring)."""
    if prompt_tokens < 1 or output_tokens < 1:
        raise ValueError("prompt_tokens and output_tokens must be at least 1")
    alone = _prefill_seconds(profile, 0, 0, prompt_tokens)
    if alone > ttft_seconds:
        return ReplicaCapacity(
            0.0,
            alone,
            reason=f"TTFT {alone:.2f} s for a {prompt_tokens:,}-token prompt alone, over the "
            f"{ttft_seconds:g} s target",
        )
    per_request = min(prompt_tokens + output_tokens, profile.kv_capacity_tokens)
    slots = min(profile.max_running, profile.kv_capacity_tokens // per_request)
    sizes = [0.0] if output_tokens == 1 else _batch_sizes(min(slots, output_tokens - 1))

    def state(average: float) -> _Steady | None:
        return _steady(profile, average, prompt_tokens, output_tokens, ttft_seconds, tpot_seconds)

    states = {size: state(size) for size in sizes}
    peak = max((current.rate for current in states.values() if current), default=0.0)

    best: _Steady | None = None
    # Without a missed target, what ends the scan: the slots, or prefill that cannot feed more.
    limit = "kv cache" if slots < profile.max_running else "max sequences"
    previous = 0.0
    for size in sizes:
        current = states[size]
        if current is None:
            limit = "tokens/step"
            break
        if best is not None and current.rate <= best.rate:
            previous = size
            continue  # the same rate is reached with fewer sequences, where it was checked
        if current.problem is not None:
            # Between the last size that held and this one: every size, the first that misses.
            for between in range(math.floor(previous) + 1, math.ceil(size)):
                inside = state(float(between))
                if inside is None or (best is not None and inside.rate <= best.rate):
                    continue
                if inside.problem is not None:
                    break
                best = inside
            limit = current.problem
            break
        best, previous = current, size
    if best is None:
        first = states[sizes[0]]
        problem = first.problem if first is not None else "tokens/step"
        step = first.step if first is not None else 0.0
        if problem == "tpot" and tpot_seconds is not None:
            why = (
                f"TPOT {step * 1e3:.1f} ms at the lightest load, over the "
                f"{tpot_seconds * 1e3:g} ms target"
            )
        elif problem == "ttft":
            why = f"TTFT over the {ttft_seconds:g} s target at any load ({alone:.2f} s alone)"
        else:
            why = f"no load fits: {problem} at the lightest load"
        return ReplicaCapacity(0.0, alone, step, limit=problem or "", reason=why)
    if best.rate > HEADROOM * peak:
        return ReplicaCapacity(HEADROOM * peak, alone, best.step, limit="headroom")
    return ReplicaCapacity(best.rate, alone, best.step, limit=limit)


def option_capacity(arch: ModelArch, option: Option, request: PlacementRequest) -> ReplicaCapacity:
    """plan.fleet.CapacityModel: one replica of a planner option at `request.load`'s sizes."""
    load = request.load
    if load is None:
        raise ValueError("option_capacity needs a request with a load")
    gpu = option.gpu or default_gpus().find(option.gpu_name or option.gpu_product)
    if gpu is None or option.memory is None:
        return ReplicaCapacity(0.0, math.inf, reason="GPU not in the catalog: speed unknown")
    quantization: Quantization | None = None
    if option.quantization != arch.native_dtype and option.quantization in QUANTIZATIONS:
        quantization = option.quantization
    profile = profile_for(
        arch,
        gpu,
        option.memory,
        quantization=quantization,
        kv_cache_dtype=request.kv_cache_dtype,
    )
    return replica_capacity(
        profile,
        load.prompt_tokens,
        load.output_tokens,
        request.ttft_seconds,
        request.tpot_seconds,
    )
