"""Running each policy on a trace: the autoscalers once, the baselines by search.

static-peak: the fewest replicas that, fixed from t=0 (no start-up), meet the SLO-attainment
target over the whole trace. Every count tried is a full simulation: doubling from 1 until one
passes, then bisection between the last failing and the first passing count. Attainment is not
strictly monotonic in the count under round-robin, so the answer is the smallest passing count
the search meets (the tests check that one fewer fails). If doubling stops improving attainment
before the target (requests too long to ever meet the SLO, even alone), the target becomes the
best attainment reached, and the result says so (sloTargetMet: false).

oracle: knows every arrival in advance and has no start-up delay. The trace is cut into slots
(60 s by default). For each slot, its own arrivals are simulated alone, on fresh idle replicas
present for the whole slot, to find the fewest replicas (within minReplicas..maxReplicas) whose
SLO attainment on that slot reaches the target (or, if even maxReplicas cannot, what maxReplicas
reaches). The schedule of those counts is then played as one run: at each slot boundary the
count changes instantly (new replicas are ready at once, removed ones drain as usual).
Why it is a (near-)lower bound on GPU-hours: a slot's requests, served alone on idle replicas,
are the easiest that slot can ever be (load carried over from the previous slot only makes it
harder), so a policy that serves that slot as well needs at least as many ready replicas during
it, and any real policy also pays start-up time. It is not a strict bound because (1) the target
is met slot by slot while a policy is judged on the whole trace, so it may fall short in one slot
and make up elsewhere; (2) a policy may change its count inside a slot; (3) attainment is not
strictly monotonic in the count. A shorter slot (--oracle-slot) tightens (2).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from modelfleet.api.types import AutoscalingSpec
from modelfleet.autoscale.policy import Limits
from modelfleet.dev.replay.fleet import Controller, EngineFactory, Outcome, Simulation
from modelfleet.dev.replay.metrics import Result, attainment, summarize
from modelfleet.dev.replay.policies import (
    KUBEAI_TARGET_REQUESTS,
    FixedController,
    InflightController,
    ModelfleetController,
    ScheduleController,
)
from modelfleet.dev.replay.trace import TraceRequest

POLICIES = ("modelfleet", "static-peak", "inflight", "oracle")
STATIC_MAX_REPLICAS = 1024
EPS = 1e-9


def _quiet(message: str) -> None:
    pass


@dataclass(frozen=True)
class Setup:
    """Everything a run needs; the same for every policy of one comparison."""

    requests: Sequence[TraceRequest]
    engine_factory: EngineFactory
    gpus_per_replica: int
    hourly_cost: float | None  # USD per replica-hour
    limits: Limits
    autoscaling: AutoscalingSpec
    initial_replicas: int = 1
    slo_seconds: float = 2.0
    slo_target: float = 0.99
    startup_delay: float = 120.0
    inflight_target: float = KUBEAI_TARGET_REQUESTS
    oracle_slot: float = 60.0
    progress: Callable[[str], None] = field(default=_quiet)


def _simulate(setup: Setup, controller: Controller, startup_delay: float) -> Outcome:
    return Simulation(
        setup.requests, setup.engine_factory, controller, startup_delay=startup_delay
    ).run()


def _result(setup: Setup, policy: str, outcome: Outcome, started: float, **extra: object) -> Result:
    return summarize(
        policy,
        outcome,
        slo_seconds=setup.slo_seconds,
        gpus_per_replica=setup.gpus_per_replica,
        hourly_cost=setup.hourly_cost,
        wall_seconds=time.perf_counter() - started,
        extra=dict(extra),
    )


def run_modelfleet(setup: Setup) -> tuple[Result, Outcome]:
    started = time.perf_counter()
    controller = ModelfleetController(setup.autoscaling, setup.limits, setup.initial_replicas)
    outcome = _simulate(setup, controller, setup.startup_delay)
    return _result(setup, "modelfleet", outcome, started), outcome


def run_inflight(setup: Setup) -> tuple[Result, Outcome]:
    started = time.perf_counter()
    controller = InflightController(
        setup.limits, setup.initial_replicas, target=setup.inflight_target
    )
    outcome = _simulate(setup, controller, setup.startup_delay)
    result = _result(setup, "inflight", outcome, started, inflightTarget=setup.inflight_target)
    return result, outcome


def run_static(setup: Setup, count: int) -> Result:
    """`count` fixed replicas from t=0: one point of the static cost/SLO curve."""
    started = time.perf_counter()
    outcome = _simulate(setup, FixedController(count, "static"), 0.0)
    return _result(setup, f"static ({count})", outcome, started, staticReplicas=count)


def run_static_peak(setup: Setup) -> tuple[Result, Outcome]:
    started = time.perf_counter()
    tried: dict[int, tuple[float, Outcome]] = {}

    def attain(count: int) -> float:
        if count not in tried:
            outcome = _simulate(setup, FixedController(count, "static-peak"), 0.0)
            tried[count] = (attainment(outcome.ttft, setup.slo_seconds), outcome)
            setup.progress(f"static-peak: {count} replicas -> SLO attainment {tried[count][0]:.4f}")
        return tried[count][0]

    goal = setup.slo_target
    failing, count, previous = 0, 1, -1.0
    while True:
        reached = attain(count)
        if reached >= goal - EPS:
            passing = count
            break
        if reached <= previous + EPS or count >= STATIC_MAX_REPLICAS:
            goal = max(a for a, _ in tried.values())
            passing = min(n for n, (a, _) in tried.items() if a >= goal - EPS)
            failing = max((n for n, (a, _) in tried.items() if n < passing), default=0)
            break
        failing, previous, count = count, reached, min(count * 2, STATIC_MAX_REPLICAS)
    passing = _fewest_passing(attain, goal, failing, passing)
    result = _result(
        setup,
        "static-peak",
        tried[passing][1],
        started,
        staticReplicas=passing,
        sloTargetMet=attain(passing) >= setup.slo_target - EPS,
    )
    return result, tried[passing][1]


def _fewest_passing(attain: Callable[[int], float], goal: float, failing: int, passing: int) -> int:
    """Bisection between a count known to miss `goal` and one known to reach it."""
    while passing - failing > 1:
        middle = (passing + failing) // 2
        if attain(middle) >= goal - EPS:
            passing = middle
        else:
            failing = middle
    return passing


def oracle_schedule(setup: Setup) -> list[int]:
    """The count per slot: fewest replicas that serve the slot's own arrivals within the SLO."""
    slot = setup.oracle_slot
    requests = setup.requests
    last = requests[-1].arrival if requests else 0.0
    slots: list[list[TraceRequest]] = [[] for _ in range(int(last // slot) + 1)]
    for request in requests:
        k = int(request.arrival // slot)
        slots[k].append(TraceRequest(request.arrival - k * slot, *_tokens(request)))
    low_bound, high_bound = setup.limits.min_replicas, setup.limits.max_replicas
    schedule: list[int] = []
    for k, arrivals in enumerate(slots):
        if k and k % 10 == 0:
            setup.progress(f"oracle: {k}/{len(slots)} slots planned")
        if not arrivals:
            schedule.append(low_bound)
            continue

        def attain(count: int, arrivals: list[TraceRequest] = arrivals) -> float:
            run = Simulation(
                arrivals, setup.engine_factory, FixedController(count), startup_delay=0.0
            ).run()
            return attainment(run.ttft, setup.slo_seconds)

        low = max(1, low_bound)
        if attain(low) >= setup.slo_target - EPS or low >= high_bound:
            schedule.append(low)
            continue
        goal = min(setup.slo_target, attain(high_bound))
        schedule.append(_fewest_passing(attain, goal, low, high_bound))
    setup.progress(f"oracle: replicas per {slot:g} s slot: {' '.join(map(str, schedule))}")
    return schedule


def _tokens(request: TraceRequest) -> tuple[int, int]:
    return request.prompt_tokens, request.output_tokens


def run_oracle(setup: Setup) -> tuple[Result, Outcome]:
    started = time.perf_counter()
    schedule = oracle_schedule(setup)
    outcome = _simulate(setup, ScheduleController(schedule, setup.oracle_slot), 0.0)
    result = _result(setup, "oracle", outcome, started, oracleSlotSeconds=setup.oracle_slot)
    return result, outcome


RUNNERS: dict[str, Callable[[Setup], tuple[Result, Outcome]]] = {
    "modelfleet": run_modelfleet,
    "static-peak": run_static_peak,
    "inflight": run_inflight,
    "oracle": run_oracle,
}


def run_policies(setup: Setup, policies: Sequence[str]) -> list[Result]:
    results = []
    for name in policies:
        setup.progress(f"simulating {name} ...")
        result, _ = RUNNERS[name](setup)
        setup.progress(
            f"{name}: {result.gpu_hours:.2f} GPU-hours, SLO attainment "
            f"{result.slo_attainment:.4f} ({result.wall_seconds:.1f} s)"
        )
        results.append(result)
    return results


def ratios(results: Sequence[Result]) -> dict[str, float | None]:
    """GPU-hours of modelfleet over each other policy's (None when a side is missing or 0)."""
    by_name = {r.policy: r for r in results}
    mine = by_name.get("modelfleet")
    out: dict[str, float | None] = {}
    for other, key in (
        ("static-peak", "gpuHoursVsStaticPeak"),
        ("oracle", "gpuHoursVsOracle"),
        ("inflight", "gpuHoursVsInflight"),
    ):
        theirs = by_name.get(other)
        if mine is None or theirs is None:
            continue
        out[key] = mine.gpu_hours / theirs.gpu_hours if theirs.gpu_hours > 0 else None
    return out
