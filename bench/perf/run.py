"""Speed of the engine performance model (modelfleet.perf.engine): simulated s per wall second.

Three scenarios on Llama-3.1-8B-Instruct, 1x H100 bf16, each one simulated hour:

- saturated: closed loop, 400 requests always in flight (256 run, the rest queue), prompts
  200-2000 tokens and outputs 50-500 (seeded); every finish submits a new request at once.
- light: Poisson arrivals at 0.5 requests/s, same sizes; the replica is mostly idle.
- fleet: 8,818 requests over the hour (the trace size `modelfleet simulate` replays), dealt
  round-robin to 10 replicas, driven the way the simulator drives them (advance to each
  arrival, submit, drain with next_event_time at the end).

Prints, per scenario, wall time, simulated seconds per wall second, requests finished, output
tokens/s of the modelled replica(s) and mean time to first token. No pass/fail: a yardstick.

    .venv/bin/python bench/perf/run.py [--hours H]
"""

from __future__ import annotations

import argparse
import random
import time

from modelfleet.perf.engine import (
    EngineProfile,
    ReplicaEngine,
    Request,
    RequestEvent,
    profile_for_placement,
)

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
GPU = "NVIDIA-H100-80GB-HBM3"


def sizes(rng: random.Random) -> tuple[int, int]:
    return rng.randint(200, 2000), rng.randint(50, 500)


def report(
    name: str, horizon: float, wall: float, events: list[RequestEvent], arrivals: dict[str, float]
) -> None:
    first = {e.request_id: e.time for e in events if e.kind == "first_token"}
    finished = sum(1 for e in events if e.kind == "finished")
    ttft = [first[key] - arrivals[key] for key in first]
    mean_ttft = sum(ttft) / len(ttft) if ttft else float("nan")
    print(
        f"{name:10s} wall {wall:6.2f} s  {horizon / wall:>10,.0f} simulated s/wall s  "
        f"finished {finished:6d}  mean TTFT {mean_ttft:7.3f} s"
    )


def saturated(profile: EngineProfile, horizon: float) -> None:
    rng = random.Random(1)
    engine = ReplicaEngine(profile)
    arrivals: dict[str, float] = {}
    events: list[RequestEvent] = []
    count = 0

    def submit(at: float) -> None:
        nonlocal count
        prompt, output = sizes(rng)
        request = Request(f"s{count}", at, prompt, output)
        arrivals[request.id] = at
        engine.submit(request)
        count += 1

    started = time.perf_counter()
    for _ in range(400):
        submit(0.0)
    while (t := engine.next_event_time()) is not None and t <= horizon:
        batch = engine.advance(t)
        events += batch
        for event in batch:
            if event.kind == "finished":
                submit(t)
    wall = time.perf_counter() - started
    load = engine.load()
    report("saturated", horizon, wall, events, arrivals)
    print(f"{'':10s} output {load.generation_tokens_total / horizon:,.0f} tokens/s")


def light(profile: EngineProfile, horizon: float) -> None:
    rng = random.Random(2)
    engine = ReplicaEngine(profile)
    arrivals: dict[str, float] = {}
    events: list[RequestEvent] = []
    started = time.perf_counter()
    t, index = 0.0, 0
    while (t := t + rng.expovariate(0.5)) < horizon:
        events += engine.advance(t)
        prompt, output = sizes(rng)
        arrivals[f"l{index}"] = t
        engine.submit(Request(f"l{index}", t, prompt, output))
        index += 1
    events += engine.advance(horizon)
    wall = time.perf_counter() - started
    report("light", horizon, wall, events, arrivals)
    print(f"{'':10s} output {engine.load().generation_tokens_total / horizon:,.0f} tokens/s")


def fleet(profile: EngineProfile, horizon: float, replicas: int = 10) -> None:
    rng = random.Random(3)
    count = round(8818 * horizon / 3600)
    times = sorted(rng.uniform(0, horizon) for _ in range(count))
    engines = [ReplicaEngine(profile) for _ in range(replicas)]
    arrivals: dict[str, float] = {}
    events: list[RequestEvent] = []
    started = time.perf_counter()
    for index, at in enumerate(times):
        engine = engines[index % replicas]
        events += engine.advance(at)
        prompt, output = sizes(rng)
        arrivals[f"f{index}"] = at
        engine.submit(Request(f"f{index}", at, prompt, output))
    for engine in engines:
        while (t := engine.next_event_time()) is not None:
            events += engine.advance(t)
    wall = time.perf_counter() - started
    report("fleet", horizon, wall, events, arrivals)
    print(f"{'':10s} {count} requests on {replicas} replicas")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=1.0)
    args = parser.parse_args()
    horizon = args.hours * 3600
    profile = profile_for_placement(MODEL, GPU, 1, quantization=None, max_context=None)
    print(f"{MODEL} on 1x {GPU}: KV cache {profile.kv_capacity_tokens:,} tokens")
    saturated(profile, horizon)
    light(profile, horizon)
    fleet(profile, horizon)


if __name__ == "__main__":
    main()
