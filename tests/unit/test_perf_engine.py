"""The engine performance model: step times, continuous batching, admission, the event API.

A naive step-by-step reference scheduler (same rules, one loop iteration per step) checks that
the engine's jumps over decode-only stretches change nothing but speed.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import deque

import pytest

from modelfleet.perf.engine import (
    EngineLoad,
    EngineProfile,
    ReplicaEngine,
    Request,
    RequestEvent,
    profile_for_placement,
)

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
H100 = "NVIDIA-H100-80GB-HBM3"


def h100_llama() -> EngineProfile:
    return profile_for_placement(LLAMA_8B, H100, 1, quantization=None, max_context=None)


def small(**changes: object) -> EngineProfile:
    """Llama-8B on an H100 with a tiny KV cache and batch, to make queues easy to see."""
    return dataclasses.replace(h100_llama(), **changes)  # type: ignore[arg-type]


def run_all(engine: ReplicaEngine, requests: list[Request]) -> list[RequestEvent]:
    """Submit at arrival times, then drain with next_event_time as the simulator does."""
    events: list[RequestEvent] = []
    for request in sorted(requests, key=lambda r: r.arrival):
        events += engine.advance(request.arrival)
        engine.submit(request)
    while (t := engine.next_event_time()) is not None:
        events += engine.advance(t)
    return events


def times(events: list[RequestEvent]) -> dict[tuple[str, str], float]:
    return {(e.request_id, e.kind): e.time for e in events}


def workload(seed: int, count: int, rate: float) -> list[Request]:
    rng = random.Random(seed)
    t, requests = 0.0, []
    for index in range(count):
        t += rng.expovariate(rate)
        prompt = rng.choice([0, 1, 50, 700, 3000, 12000])
        output = rng.choice([1, 2, 30, 250, 900])
        requests.append(Request(f"r{index}", t, prompt, output))
    return requests


@dataclasses.dataclass
class _Ref:
    request: Request
    need: int
    prefilled: int = 0
    generated: int = 0


def reference(profile: EngineProfile, requests: list[Request]) -> dict[tuple[str, str], float]:
    """One loop iteration per engine step, with the rules of the module docstring."""
    pending = deque(sorted(requests, key=lambda r: r.arrival))
    waiting: deque[Request] = deque()
    running: list[_Ref] = []
    reserved, t = 0, 0.0
    out: dict[tuple[str, str], float] = {}

    def reserve(r: Request) -> int:
        return min(r.prompt_tokens + r.output_tokens, profile.kv_capacity_tokens)

    while pending or waiting or running:
        while pending and pending[0].arrival <= t:
            waiting.append(pending.popleft())
        if not waiting and not running:
            t = pending[0].arrival
            continue
        decode = [s for s in running if s.generated]
        budget = profile.max_batched_tokens - len(decode)
        chunks: list[tuple[_Ref, int]] = []
        for s in running:
            if not s.generated and budget > 0:
                chunk = min(s.need - s.prefilled, budget)
                chunks.append((s, chunk))
                budget -= chunk
        while (
            budget > 0
            and waiting
            and len(running) < profile.max_running
            and reserved + reserve(waiting[0]) <= profile.kv_capacity_tokens
        ):
            r = waiting.popleft()
            reserved += reserve(r)
            s = _Ref(r, need=max(r.prompt_tokens, 1))
            running.append(s)
            chunk = min(s.need, budget)
            chunks.append((s, chunk))
            budget -= chunk
        kv = sum(s.request.prompt_tokens + s.generated for s in decode)
        kv += sum(s.prefilled + c for s, c in chunks)
        t += profile.step_seconds(len(decode), sum(c for _, c in chunks), kv)
        for s in decode:
            s.generated += 1
        for s, c in chunks:
            s.prefilled += c
            if s.prefilled >= s.need:
                s.generated = 1
                out[(s.request.id, "first_token")] = t
        for s in list(running):
            if s.generated == s.request.output_tokens:
                out[(s.request.id, "finished")] = t
                running.remove(s)
                reserved -= reserve(s.request)
    return out


# -- step time and sanity against published numbers ------------------------------------------


@pytest.mark.parametrize(
    ("model", "gpu", "gpus", "quantization", "sequences", "low", "high"),
    [
        # 1x H100 bf16: 122 tokens/s single stream (engines.md)
        (LLAMA_8B, H100, 1, None, 1, 100, 150),
        # high concurrency: a few thousand tokens/s (5,100-5,800 with fp8 weights, MLPerf)
        (LLAMA_8B, H100, 1, None, 256, 3000, 12000),
        (LLAMA_8B, H100, 1, "fp8", 256, 4000, 14000),
        # a 7B model on an L4 (300 GB/s): tens of tokens/s alone, hundreds batched
        ("Qwen/Qwen2.5-7B-Instruct", "NVIDIA-L4", 1, None, 1, 10, 25),
        ("Qwen/Qwen2.5-7B-Instruct", "NVIDIA-L4", 1, None, 64, 400, 2000),
    ],
)
def test_decode_rates_are_in_the_published_ballpark(
    model: str,
    gpu: str,
    gpus: int,
    quantization: str | None,
    sequences: int,
    low: float,
    high: float,
) -> None:
    profile = profile_for_placement(model, gpu, gpus, quantization=quantization, max_context=8192)
    assert low <= profile.decode_tokens_per_s(sequences, 1000) <= high


def test_saturated_replica_with_prompts_serves_a_few_thousand_tokens_per_s() -> None:
    requests = [Request(f"r{i}", 0.0, 1000, 250) for i in range(1024)]
    events = run_all(ReplicaEngine(h100_llama()), requests)
    end = max(e.time for e in events)
    assert 2000 <= 1024 * 250 / end <= 8000


def test_more_bandwidth_or_flops_is_never_slower() -> None:
    base = h100_llama()
    requests = workload(seed=3, count=150, rate=20.0)
    slow = times(run_all(ReplicaEngine(base), requests))
    for faster in (
        dataclasses.replace(base, bandwidth_bytes_s=base.bandwidth_bytes_s * 1.5),
        dataclasses.replace(base, flops=base.flops * 2),
    ):
        fast = times(run_all(ReplicaEngine(faster), requests))
        assert all(fast[key] <= slow[key] + 1e-9 for key in slow)
    for args in [(1, 0, 1000), (64, 0, 64000), (10, 4000, 20000)]:
        faster = dataclasses.replace(base, bandwidth_bytes_s=base.bandwidth_bytes_s * 2)
        assert faster.step_seconds(*args) <= base.step_seconds(*args)


def test_two_gpus_are_faster_than_one_and_hold_more_kv() -> None:
    one = profile_for_placement(LLAMA_8B, H100, 1, quantization=None, max_context=None)
    two = profile_for_placement(LLAMA_8B, H100, 2, quantization=None, max_context=None)
    assert two.kv_capacity_tokens > 2 * one.kv_capacity_tokens
    assert two.step_seconds(1, 0, 1000) < one.step_seconds(1, 0, 1000)


@pytest.mark.parametrize(
    ("model", "gpu", "gpus", "quantization", "match"),
    [
        ("no-such/model", H100, 1, None, "unknown model 'no-such/model'"),
        (LLAMA_8B, "NVIDIA-Z9000", 1, None, "unknown GPU product 'NVIDIA-Z9000'"),
        (LLAMA_8B, H100, 1, "int3", "unknown quantization"),
        ("meta-llama/Llama-3.1-70B-Instruct", "NVIDIA-L4", 1, None, "does not fit"),
    ],
)
def test_profile_for_placement_errors(
    model: str, gpu: str, gpus: int, quantization: str | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        profile_for_placement(model, gpu, gpus, quantization=quantization, max_context=None)


def test_profile_for_placement_accepts_aliases_labels_and_the_published_dtype() -> None:
    by_label = profile_for_placement(LLAMA_8B, H100, 1, quantization="bf16", max_context=4096)
    by_name = profile_for_placement(LLAMA_8B, "H100-80GB", 1, quantization=None, max_context=None)
    assert by_label.kv_capacity_tokens == by_name.kv_capacity_tokens
    fp8 = profile_for_placement(LLAMA_8B, H100, 1, quantization="fp8", max_context=None)
    assert fp8.kv_capacity_tokens > by_label.kv_capacity_tokens
    assert fp8.weights_bytes == by_label.weights_bytes / 2


# -- one request ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "output"), [(1, 1), (100, 10), (2000, 200), (8192, 50), (20000, 3), (0, 5)]
)
def test_single_request_ttft_is_prefill_and_then_one_token_per_step(
    prompt: int, output: int
) -> None:
    profile = h100_llama()
    events = times(run_all(ReplicaEngine(profile, now=5.0), [Request("a", 5.0, prompt, output)]))
    budget = profile.max_batched_tokens
    need = max(prompt, 1)  # a step computes at least one token
    chunks = [min(budget, need - done) for done in range(0, need, budget)]
    prefill = sum(profile.step_seconds(0, c, sum(chunks[: i + 1])) for i, c in enumerate(chunks))
    assert events[("a", "first_token")] == pytest.approx(5.0 + prefill, rel=1e-9)
    step = profile.step_seconds(1, 0, prompt + output)  # decode steps barely grow with context
    decode = events[("a", "finished")] - events[("a", "first_token")]
    assert decode == pytest.approx((output - 1) * step, rel=0.01)


def test_generated_streams_one_token_per_step() -> None:
    profile = h100_llama()
    engine = ReplicaEngine(profile)
    engine.submit(Request("a", 0.0, 100, 1000))
    seen, t = [], 0.0
    while True:
        t += 0.25
        if any(e.kind == "finished" for e in engine.advance(t)):
            break
        seen.append(engine.generated("a"))
    assert seen == sorted(seen) and seen[0] > 0 and seen[-1] < 1000
    assert engine.generated("a") == 0  # finished: no longer known
    assert seen[3] == pytest.approx(1.0 / profile.step_seconds(1, 0, 200), rel=0.05)
    assert engine.generated("unknown") == 0


# -- queueing: KV cache and max_running --------------------------------------------------------


def test_requests_wait_for_kv_cache_and_are_admitted_when_others_finish() -> None:
    engine = ReplicaEngine(small(kv_capacity_tokens=1000))
    for name in "abc":
        engine.submit(Request(name, 0.0, 300, 100))  # reserves 400 tokens each
    engine.advance(0.001)
    assert engine.load() == EngineLoad(
        waiting=1, running=2, kv_usage=0.8, prompt_tokens_total=0, generation_tokens_total=0
    )
    events = run_all(engine, [])
    at = times(events)
    assert at[("c", "first_token")] > at[("a", "finished")] >= at[("a", "first_token")]
    assert engine.load().waiting == 0 and engine.load().kv_usage == 0


def test_a_request_larger_than_the_cache_still_runs_alone() -> None:
    engine = ReplicaEngine(small(kv_capacity_tokens=500))
    at = times(run_all(engine, [Request("big", 0.0, 400, 400), Request("next", 0.0, 10, 10)]))
    assert at[("next", "first_token")] > at[("big", "finished")]


def test_max_running_caps_the_batch() -> None:
    engine = ReplicaEngine(small(max_running=3))
    for index in range(7):
        engine.submit(Request(f"r{index}", 0.0, 50, 40))
    running = []
    for t in [0.01 * i for i in range(1, 200)]:
        engine.advance(t)
        load = engine.load()
        running.append(load.running)
        assert load.running <= 3
        assert load.waiting + load.running == engine.in_flight
    assert max(running) == 3 and running[-1] == 0


# -- the event API ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"kv_capacity_tokens": 20000},
        {"max_running": 8},
        {"tp_gpus": 4, "tp_layers": 32, "tp_hidden": 4096},  # communication in every step
    ],
)
def test_jumps_match_a_step_by_step_reference(seed: int, changes: dict[str, int]) -> None:
    profile = small(**changes)
    requests = workload(seed, count=120, rate=8.0)
    expected = reference(profile, requests)
    got = times(run_all(ReplicaEngine(profile), requests))
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


@pytest.mark.parametrize("tick", [0.003, 0.05, 1.0, 1e9])
def test_advance_granularity_does_not_change_results(tick: float) -> None:
    profile = small(kv_capacity_tokens=30000)
    requests = workload(seed=7, count=80, rate=10.0)
    engine = ReplicaEngine(profile)
    events: list[RequestEvent] = []
    pending = deque(sorted(requests, key=lambda r: r.arrival))
    t, last = 0.0, 0.0
    while pending or engine.in_flight:
        t = min(t + tick, pending[0].arrival) if pending else t + tick
        batch = engine.advance(t)
        assert all(last <= e.time <= t for e in batch)
        assert [e.time for e in batch] == sorted(e.time for e in batch)
        last = batch[-1].time if batch else last
        events += batch
        assert engine.now == t
        while pending and pending[0].arrival <= t:
            engine.submit(pending.popleft())
    assert times(events) == pytest.approx(times(run_all(ReplicaEngine(profile), requests)))


def test_next_event_time_agrees_with_advance() -> None:
    engine = ReplicaEngine(small(kv_capacity_tokens=5000))
    assert engine.next_event_time() is None
    for request in workload(seed=11, count=30, rate=1000.0):
        engine.submit(dataclasses.replace(request, arrival=0.0))
    # a request submitted for later: the engine jumps to it when idle
    engine.submit(Request("late", 500.0, 10, 10))
    count = 0
    while (t := engine.next_event_time()) is not None:
        assert t >= engine.now
        assert engine.advance(math.nextafter(t, -math.inf)) == []
        events = engine.advance(t)
        assert events and all(e.time == t for e in events)
        count += len(events)
    assert count == 62 and engine.now > 500.0
    assert engine.in_flight == 0


def test_counters_are_monotonic_and_equal_the_sums() -> None:
    engine = ReplicaEngine(small(kv_capacity_tokens=40000))
    requests = workload(seed=5, count=100, rate=15.0)
    pending = deque(sorted(requests, key=lambda r: r.arrival))
    previous = engine.load()
    t = 0.0
    while pending or engine.in_flight:
        t += 0.02
        engine.advance(t)
        while pending and pending[0].arrival <= t:
            engine.submit(pending.popleft())
        load = engine.load()
        assert 0.0 <= load.kv_usage <= 1.0
        assert load.prompt_tokens_total >= previous.prompt_tokens_total
        assert load.generation_tokens_total >= previous.generation_tokens_total
        previous = load
    assert previous.prompt_tokens_total == sum(r.prompt_tokens for r in requests)
    assert previous.generation_tokens_total == sum(r.output_tokens for r in requests)
    assert previous.running == previous.waiting == 0


def test_bad_requests_are_rejected() -> None:
    with pytest.raises(ValueError, match="output_tokens"):
        ReplicaEngine(h100_llama()).submit(Request("a", 0.0, 10, 0))


# -- abort (the client went away) --------------------------------------------------------------


def test_an_aborted_waiting_request_never_runs_and_changes_nothing_for_the_others() -> None:
    profile = small(kv_capacity_tokens=1000)
    others = [Request("a", 0.0, 300, 100), Request("b", 0.0, 300, 100)]
    alone = ReplicaEngine(profile)
    for request in others:
        alone.submit(request)
    expected = times(run_all(alone, []))
    engine = ReplicaEngine(profile)
    for request in [*others, Request("c", 0.0, 300, 100)]:
        engine.submit(request)
    engine.advance(0.001)
    assert engine.load().waiting == 1  # c waits for KV
    assert engine.abort("c")
    assert engine.load().waiting == 0 and engine.in_flight == 2
    assert times(run_all(engine, [])) == expected
    assert not engine.abort("c")


def test_an_aborted_future_arrival_is_forgotten() -> None:
    engine = ReplicaEngine(h100_llama())
    engine.submit(Request("later", 5.0, 100, 10))
    assert engine.abort("later")
    assert run_all(engine, []) == [] and engine.in_flight == 0


@pytest.mark.parametrize("at", [0.0005, 0.05, 1.0])  # in prefill / early decode / late decode
def test_an_aborted_running_request_leaves_at_the_next_step_and_frees_its_kv(at: float) -> None:
    profile = small(kv_capacity_tokens=3000)
    engine = ReplicaEngine(profile)
    engine.submit(Request("gone", 0.0, 1000, 2000))  # reserves the whole cache
    engine.submit(Request("next", 0.0, 100, 10))  # waits behind it
    before = engine.advance(at)
    assert engine.load().kv_usage == 1.0 and engine.load().waiting == 1
    generated = engine.load().generation_tokens_total
    assert engine.abort("gone")
    step = profile.step_seconds(1, 0, 1000)
    events = engine.advance(at + 10 * step)
    assert all(e.request_id != "gone" for e in events)
    assert ("next", "first_token") in times(events), "admitted once the cache was freed"
    assert times(events)[("next", "first_token")] < at + 10 * step
    assert engine.load().generation_tokens_total >= generated
    rest = run_all(engine, [])
    assert all(e.request_id != "gone" for e in before[1:] + rest)
    assert engine.in_flight == 0 and engine.load().kv_usage == 0
    assert not engine.abort("gone")


def test_abort_keeps_next_event_time_consistent_with_advance() -> None:
    engine = ReplicaEngine(small(kv_capacity_tokens=20000))
    requests = workload(seed=7, count=60, rate=10.0)
    for request in requests:
        engine.submit(request)
    engine.advance(0.5)
    for request in requests[::3]:
        engine.abort(request.id)
    while (t := engine.next_event_time()) is not None:
        events = engine.advance(t)
        assert events and all(e.time == pytest.approx(t) for e in events)
    assert engine.in_flight == 0 and engine.load().kv_usage == 0
