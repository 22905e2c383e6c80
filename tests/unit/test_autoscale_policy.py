"""The replica policy, decision by decision and over scripted load (simulated time)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest

from modelfleet.api.types import AutoscalingSpec, ModelDeploymentSpec
from modelfleet.autoscale.policy import (
    PREFILL_TARGET_UTILISATION,
    SPARE_MIN,
    SPARE_MIN_SHARE,
    STARTUP_GRACE_SECONDS,
    AutoscalerState,
    Decision,
    Limits,
    LoadSample,
    PodLoad,
    decide,
)

DEFAULTS = AutoscalingSpec()
ONE_TO_TEN = Limits(1, 10)
INTERVAL = float(DEFAULTS.interval_seconds)
WINDOW = float(DEFAULTS.scale_down_window_seconds)
STARTUP = 120.0  # seconds a new replica loads the model, as in the trace simulator

# The emulated engine in these tests: a replica runs at most BATCH requests, each using KV_PER
# of the cache, so a full batch is at 0.9 KV use and at the 0.7 target it holds 25 requests.
BATCH = 32
KV_PER = 0.9 / BATCH


def pod(waiting: float = 0, running: float = 0, kv: float | None = None) -> PodLoad:
    return PodLoad(
        waiting=waiting, running=running, kv_usage=running * KV_PER if kv is None else kv
    )


def spread(demand: float, ready: int) -> tuple[PodLoad, ...]:
    """`demand` concurrent requests shared by `ready` replicas; beyond the batch, they queue."""
    if ready == 0:
        return ()
    share = demand / ready
    return tuple(
        pod(waiting=max(share - BATCH, 0), running=min(share, BATCH)) for _ in range(ready)
    )


def config(**fields: object) -> AutoscalingSpec:
    return AutoscalingSpec.model_validate(fields)


def once(
    pods: tuple[PodLoad, ...],
    current: int,
    *,
    limits: Limits = ONE_TO_TEN,
    cfg: AutoscalingSpec = DEFAULTS,
    unknown: int = 0,
    starting: int = 0,
    state: AutoscalerState | None = None,
    time: float = 0.0,
) -> Decision:
    sample = LoadSample(time=time, pods=pods, unknown=unknown, starting=starting)
    return decide(cfg, limits, current, sample, state)


def steady(current: int, recommendation: int, since: float, until: float) -> AutoscalerState:
    """A state that has observed `recommendation` every interval over [since, until]."""
    times = [since + k * INTERVAL for k in range(int((until - since) / INTERVAL) + 1)]
    return AutoscalerState(
        observing_since=since,
        last_time=until,
        last_busy=until,
        recommendations=tuple((t, recommendation) for t in times if until - t <= WINDOW),
    )


OLD = steady(2, 2, since=0.0, until=1000.0)  # a policy that has watched 2 replicas for long


# --- one decision -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pods", "current", "limits", "cfg", "expected"),
    [
        pytest.param(spread(40, 2), 2, Limits(1, 10), DEFAULTS, 2, id="under-target-holds"),
        # 2 x 32 running at 0.9 KV and 20 queued each: 104 requests / (25 + 2) seats = 3.9.
        pytest.param(spread(104, 2), 2, Limits(1, 10), DEFAULTS, 4, id="burst-queue-scales-up"),
        # 464 requests want 18 replicas: one decision adds at most maxScaleUpStep (4).
        pytest.param(spread(464, 2), 2, Limits(1, 10), DEFAULTS, 6, id="burst-bounded-by-step"),
        pytest.param(spread(464, 2), 2, Limits(1, 5), DEFAULTS, 5, id="burst-bounded-by-max"),
        pytest.param(
            spread(464, 2), 2, Limits(1, 30), config(maxScaleUpStep=20), 18, id="burst-big-step"
        ),
        # No queue, KV at 0.9 on both: 1.8 / 0.7 = 2.6 replicas.
        pytest.param(spread(64, 2), 2, Limits(1, 10), DEFAULTS, 3, id="kv-above-target"),
        pytest.param(
            (pod(running=14, kv=0.1), pod(running=11, kv=0.1)),
            2,
            Limits(1, 10),
            config(targetRunningRequests=10),
            3,
            id="running-above-target",
        ),
        # A queue with KV to spare: the batch size (256) is the limit, not KV: 356 / 258 seats.
        pytest.param(
            (pod(waiting=100, running=256, kv=0.3),), 1, Limits(1, 10), DEFAULTS, 2, id="batch-cap"
        ),
        # Queued, nothing running: no capacity to measure, the queue alone: 10 / 2 per replica.
        pytest.param((pod(waiting=10),), 1, Limits(1, 10), DEFAULTS, 5, id="queue-nothing-runs"),
        pytest.param(
            (pod(waiting=2, running=3),), 1, Limits(1, 10), DEFAULTS, 1, id="queue-at-target"
        ),
    ],
)
def test_one_decision_scales_up_at_once(
    pods: tuple[PodLoad, ...], current: int, limits: Limits, cfg: AutoscalingSpec, expected: int
) -> None:
    decision = once(pods, current, limits=limits, cfg=cfg, state=None)
    assert decision.replicas == expected, decision.reason
    assert decision.changed == (expected != current)
    assert f"{current} -> {expected}" in decision.reason or f"hold {current}" in decision.reason


def test_reason_names_the_numbers() -> None:
    decision = once(spread(104, 2), 2)
    assert decision.reason.startswith("kv 0.90/replica on 2 (target 0.7), queue 40 on 2 > target 2")
    assert decision.reason.endswith(": 2 -> 4")


# --- bounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pods", "current", "limits", "state", "expected"),
    [
        # The user lowered maxReplicas: applies at once, whatever the load and the windows.
        pytest.param(spread(500, 6), 6, Limits(1, 3), None, 3, id="lowered-max-at-once"),
        pytest.param(spread(0, 6), 6, Limits(1, 3), OLD, 3, id="lowered-max-beyond-step"),
        # The user raised minReplicas: applies at once too.
        pytest.param(spread(0, 1), 1, Limits(4, 8), OLD, 4, id="raised-min-at-once"),
        pytest.param(spread(0, 3), 3, Limits(3, 8), OLD, 3, id="idle-never-below-min"),
        pytest.param((), 0, Limits(2, 8), None, 2, id="zero-below-min"),
    ],
)
def test_bounds_apply_at_once(
    pods: tuple[PodLoad, ...],
    current: int,
    limits: Limits,
    state: AutoscalerState | None,
    expected: int,
) -> None:
    time = 0.0 if state is None else state.last_time + INTERVAL
    decision = once(pods, current, limits=limits, state=state, time=time)
    assert decision.replicas == expected, decision.reason


def test_limits_from_spec() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": "m", "maxReplicas": 5})
    assert Limits.from_spec(spec) == Limits(1, 5)
    spec = ModelDeploymentSpec.model_validate({"model": "m", "minReplicas": 0, "maxReplicas": 5})
    assert Limits.from_spec(spec) == Limits(0, 5)
    with pytest.raises(ValueError, match="autoscaling is off"):
        Limits.from_spec(ModelDeploymentSpec.model_validate({"model": "m"}))
    with pytest.raises(ValueError, match="minReplicas <= maxReplicas"):
        Limits(3, 2)


# --- over time --------------------------------------------------------------------------------


@dataclass
class Run:
    """Replays a demand curve through decide(), with replicas that take STARTUP s to be ready."""

    demand: Callable[[float], float]  # concurrent requests wanting service at time t
    current: int
    limits: Limits = field(default_factory=lambda: Limits(1, 20))
    cfg: AutoscalingSpec = field(default_factory=AutoscalingSpec)
    startup: float = STARTUP
    state: AutoscalerState | None = None
    history: list[tuple[float, int, str]] = field(default_factory=list)  # (time, replicas, reason)

    def __post_init__(self) -> None:
        self.ready_at = [float("-inf")] * self.current  # these were ready before we started

    def until(self, end: float, start: float = 0.0) -> Run:
        t = start
        while t <= end:
            ready = sum(1 for at in self.ready_at if at <= t)
            sample = LoadSample(
                time=t, pods=spread(self.demand(t), ready), starting=len(self.ready_at) - ready
            )
            decision = decide(self.cfg, self.limits, self.current, sample, self.state)
            self.state = decision.state
            if decision.replicas > self.current:
                self.ready_at += [t + self.startup] * (decision.replicas - self.current)
            else:
                self.ready_at = sorted(self.ready_at)[: decision.replicas]
            if decision.changed:
                self.history.append((t, decision.replicas, decision.reason))
            self.current = decision.replicas
            t += INTERVAL
        return self

    @property
    def changes(self) -> int:
        return len(self.history)


def step(before: float, after: float, at: float) -> Callable[[float], float]:
    return lambda t: before if t < at else after


def test_alternating_load_does_not_flap() -> None:
    # Every other interval 90 then 10 requests (wants 4, then 1), for 30 minutes.
    run = Run(lambda t: 90.0 if int(t / INTERVAL) % 2 == 0 else 10.0, current=2).until(1800)
    assert run.changes == 1, run.history
    assert run.history[0][:2] == (0.0, 4)
    assert run.current == 4


@pytest.mark.parametrize(
    ("noise", "max_changes"),
    [
        pytest.param([60, 40, 70, 30, 55, 45], 1, id="around-two-replicas"),
        pytest.param([0, 0, 0, 90, 0, 0], 1, id="rare-spikes"),
    ],
)
def test_noise_changes_are_counted(noise: list[float], max_changes: int) -> None:
    run = Run(lambda t: noise[int(t / INTERVAL) % len(noise)], current=2).until(3600)
    assert run.changes <= max_changes, run.history


@pytest.mark.parametrize(
    ("lull", "removed"),
    [
        pytest.param(WINDOW - 60, 0, id="lull-shorter-than-window-removes-nothing"),
        pytest.param(WINDOW + 5 * INTERVAL, 5, id="longer-lull-removes-step-by-step"),
    ],
)
def test_scale_down_stabilisation(lull: float, removed: int) -> None:
    # 8 replicas busy (KV at the batch's 0.9 is above target: wants 11; max 8), then a lull
    # of `lull` seconds at 20 requests (wants 1), then busy again.
    busy, quiet_from = 8 * BATCH, 1000.0

    def demand(t: float) -> float:
        return 20.0 if quiet_from <= t < quiet_from + lull else float(busy)

    run = Run(demand, current=8, limits=Limits(1, 8), state=steady(8, 8, 0, quiet_from - INTERVAL))
    run.until(quiet_from + lull - INTERVAL, start=quiet_from)
    assert run.current == 8 - removed, run.history
    if removed:
        times = [t for t, _, _ in run.history]
        # The first removal waits for the whole window, then one per interval (maxScaleDownStep 1).
        assert times[0] == quiet_from + WINDOW
        assert all(b - a == INTERVAL for a, b in itertools.pairwise(times))
        assert [r for _, r, _ in run.history] == list(range(7, 8 - removed - 1, -1))


def test_a_queue_above_target_never_scales_down() -> None:
    # After a quiet window, one replica queues 8 requests it has not admitted yet while the two
    # others run 10 each with KV to spare: the KV-based capacity says one replica would do, but
    # fewer replicas would only lengthen the queue.
    queueing = (pod(waiting=8, running=0, kv=0.0), pod(running=10), pod(running=10))
    state = steady(3, 1, 0, 1000.0)
    decision = once(queueing, 3, state=state, time=1000.0 + INTERVAL)
    assert decision.replicas == 3, decision.reason
    assert "no fewer while the queue is above target" in decision.reason
    # Without the queue the same load removes one (maxScaleDownStep 1).
    idle = (pod(), pod(running=10), pod(running=10))
    assert once(idle, 3, state=state, time=1000.0 + INTERVAL).replicas == 2


def test_starting_replicas_prevent_overshoot() -> None:
    # A burst whose backlog keeps growing while the new replicas load (120 s): 8 more requests
    # every interval. The first decision sizes for the burst; the loading replicas count as
    # capacity, so no replica is added for the same burst until they are ready.
    def demand(t: float) -> float:
        return 40.0 if t < 100 else 130.0 + 8 * (t - 100) / INTERVAL

    run = Run(demand, current=2).until(100 + STARTUP - INTERVAL)
    assert [(t, r) for t, r, _ in run.history] == [(100.0, 5)], run.history
    assert all("waiting for 3 loading replica(s)" in r for _, _, r in run.history[1:])
    # Once they are ready and the queue is still there, the policy adds more.
    run.until(100 + STARTUP + 3 * INTERVAL, start=100 + STARTUP)
    assert run.current > 5, run.history


def test_loading_replicas_stuck_for_long_stop_holding() -> None:
    # Pods never become ready (no GPU free): after the start-up grace the queue counts again.
    run = Run(lambda t: 200.0, current=2, startup=float("inf")).until(STARTUP_GRACE_SECONDS + 60)
    assert [r for _, r, _ in run.history] == [6, 8], run.history
    assert run.history[1][0] == STARTUP_GRACE_SECONDS


def test_loading_reason_is_explicit() -> None:
    state = once(spread(200, 2), 2).state
    decision = once(spread(220, 2), 6, starting=4, state=state, time=INTERVAL)
    assert decision.replicas == 6
    assert "waiting for 4 loading replica(s): hold 6" in decision.reason


@pytest.mark.parametrize(
    ("pods", "unknown", "current", "expected"),
    [
        pytest.param(spread(0, 1), 2, 3, 3, id="unknown-never-idle"),
        pytest.param((), 3, 3, 3, id="nobody-answers-holds"),
        pytest.param((), 0, 3, 3, id="no-ready-pod-holds"),
        pytest.param((*spread(0, 2), pod(math.nan)), 0, 3, 3, id="nan-gauge-is-unknown"),
        # The answering pod is saturated: scale up on what is known, each unknown pod counted
        # at target: 104 requests / 26.9 seats = 3.9, + 2 = 5.9.
        pytest.param(spread(104, 1), 2, 3, 6, id="unknown-does-not-block-scale-up"),
    ],
)
def test_unknown_pods_hold(
    pods: tuple[PodLoad, ...], unknown: int, current: int, expected: int
) -> None:
    decision = once(pods, current, unknown=unknown, state=OLD, time=OLD.last_time + INTERVAL)
    assert decision.replicas == expected, decision.reason


def test_missing_data_is_remembered_as_held() -> None:
    # Ten minutes without answers, then an idle answer: the window remembers the held count.
    run_state: AutoscalerState | None = OLD
    t = OLD.last_time
    for _ in range(60):
        t += INTERVAL
        decision = once((), 4, unknown=4, state=run_state, time=t)
        run_state = decision.state
    decision = once(spread(0, 4), 4, state=run_state, time=t + INTERVAL)
    assert decision.replicas == 4, decision.reason


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        pytest.param(0.0, 6, id="first-sample"),
        pytest.param(WINDOW - INTERVAL, 6, id="just-before-a-window"),
        pytest.param(WINDOW, 5, id="after-a-full-window"),
    ],
)
def test_restart_never_scales_down_before_a_window(observed: float, expected: int) -> None:
    # The operator restarted (state None) with 6 replicas running and almost no load.
    run = Run(lambda t: 10.0, current=6).until(observed)
    assert run.current == expected, run.history


def test_restart_reason_says_why_it_holds() -> None:
    decision = once(spread(10, 6), 6, state=None)
    assert "no scale-down: observed 0s of a 300s window since start" in decision.reason


def test_clock_going_back_is_a_fresh_start() -> None:
    decision = once(spread(10, 6), 6, state=OLD, time=5.0)
    assert decision.replicas == 6
    assert decision.state.observing_since == 5.0


# --- zero -------------------------------------------------------------------------------------


ZERO = config(scaleToZeroAfterSeconds=900)


@pytest.mark.parametrize(
    ("demand", "limits", "end", "expected"),
    [
        pytest.param(lambda t: 0.0, Limits(0, 4), 890.0, 1, id="idle-shorter-than-grace"),
        pytest.param(lambda t: 0.0, Limits(0, 4), 900.0, 0, id="idle-for-grace-to-zero"),
        pytest.param(
            lambda t: 1.0 if t == 500.0 else 0.0, Limits(0, 4), 1390.0, 1, id="request-resets"
        ),
        pytest.param(
            lambda t: 1.0 if t == 500.0 else 0.0, Limits(0, 4), 1400.0, 0, id="then-idle-again"
        ),
        pytest.param(lambda t: 0.0, Limits(1, 4), 5000.0, 1, id="min-1-never-zero"),
    ],
)
def test_scale_to_zero(
    demand: Callable[[float], float], limits: Limits, end: float, expected: int
) -> None:
    run = Run(demand, current=1, limits=limits, cfg=ZERO).until(end)
    assert run.current == expected, run.history
    if expected == 0:
        assert "waking from zero needs a request gateway" in run.history[-1][2]


def test_zero_steps_down_from_several_replicas() -> None:
    run = Run(lambda t: 0.0, current=3, limits=Limits(0, 4), cfg=ZERO).until(1000)
    assert [r for _, r, _ in run.history] == [2, 1, 0], run.history
    assert run.history[-1][0] == 900.0


def test_unknown_pod_resets_the_idle_clock() -> None:
    state: AutoscalerState | None = None
    for k in range(100):
        unknown = 1 if k == 50 else 0
        pods = spread(0, 1 - unknown)
        decision = once(
            pods, 1, limits=Limits(0, 4), cfg=ZERO, unknown=unknown, state=state, time=k * INTERVAL
        )
        state = decision.state
        assert decision.replicas == 1, decision.reason


def test_at_zero_stays_at_zero() -> None:
    decision = once((), 0, limits=Limits(0, 4), state=None)
    assert (decision.replicas, decision.changed) == (0, False)
    assert "no load to observe" in decision.reason
    assert "request gateway" in decision.reason


# SLO feedback and the prefill term (issue 12) ---------------------------------------------------


def feed(
    state: AutoscalerState | None,
    t: float,
    first: int | None,
    within: int | None,
    current: int,
    *,
    kv: float = 0.35,
    prompt_rate: float | None = None,
    prefill: float | None = None,
    startup: float | None = None,
    ready: int = 4,
) -> Decision:
    # `ready` pods at KV 0.35 each: 4 of them are a load of 2 replicas at the 0.7 target.
    sample = LoadSample(
        time=t,
        pods=tuple(pod(running=10, kv=kv) for _ in range(ready)),
        first_tokens=first,
        first_tokens_within_slo=within,
        prompt_tokens_per_s=prompt_rate,
        startup_seconds=startup,
    )
    return decide(DEFAULTS, ONE_TO_TEN, current, sample, state, 0.99, prefill)


def test_without_ttft_input_there_is_no_spare() -> None:
    decision = feed(None, 0.0, None, None, 2)
    assert decision.state.spare is None and decision.replicas == 2
    assert "spare" not in decision.reason


@pytest.mark.parametrize(
    ("current", "spare", "replicas"),
    [
        pytest.param(2, 0.0, 2, id="the-load-itself"),
        pytest.param(6, 4.0, 6, id="above-the-load-holds"),
        pytest.param(1, 0.0, 2, id="below-the-load-scales-up"),
    ],
)
def test_a_fresh_state_trusts_the_count_it_finds(current: int, spare: float, replicas: int) -> None:
    decision = feed(None, 0.0, 100, 100, current)
    assert decision.state.spare == pytest.approx(spare)
    assert decision.replicas == replicas


@pytest.mark.parametrize(
    ("within", "current", "raised"),
    [
        pytest.param(98, 2, 0.1, id="small-shortfall-min-step"),  # 5 x 0.01 x 2 = 0.1
        pytest.param(95, 2, 0.4, id="proportional"),  # 5 x 0.04 x 2
        pytest.param(50, 4, 0.5, id="capped"),
        pytest.param(99, 2, 0.0, id="at-the-setpoint-no-raise"),
    ],
)
def test_a_window_below_the_setpoint_raises_the_spare(
    within: int, current: int, raised: float
) -> None:
    base = feed(None, 0.0, 100, 100, current).state.spare
    assert base is not None
    decision = feed(None, 0.0, 100, within, current)
    assert decision.state.spare == pytest.approx(base + raised)


@pytest.mark.parametrize(
    ("startup", "at", "raised"),
    [
        pytest.param(None, 60.0, False, id="default-120s-too-soon"),
        pytest.param(None, 130.0, True, id="default-120s-after"),
        pytest.param(30.0, 60.0, True, id="measured-30s-after"),
        pytest.param(300.0, 130.0, False, id="measured-300s-too-soon"),
    ],
)
def test_the_spare_rises_at_most_once_per_start_up(
    startup: float | None, at: float, raised: bool
) -> None:
    first = feed(None, 0.0, 100, 50, 2, startup=startup)
    again = feed(first.state, at, 100, 50, first.replicas, startup=startup)
    assert first.state.spare is not None and again.state.spare is not None
    assert (again.state.spare > first.state.spare) is raised


def test_misses_while_replicas_load_do_not_raise_the_spare() -> None:
    # 6 asked for, 4 serve: the ramp's misses wait for the 2 on the way.
    state = feed(None, 0.0, 100, 100, 6).state
    loading = feed(state, 200.0, 100, 50, 6, ready=4)
    assert loading.state.spare == state.spare
    served = feed(state, 200.0, 100, 50, 4, ready=4)
    assert served.state.spare is not None and state.spare is not None
    assert served.state.spare > state.spare


def test_too_few_first_tokens_are_no_judgement() -> None:
    assert feed(None, 0.0, 10, 0, 2).state.spare == 0.0


def test_misses_never_ask_for_fewer() -> None:
    # The load says 1 replica (KV 0.1 on 4 pods, a spare at its floor, raised just now), but
    # the window misses: hold 4.
    state = replace(feed(None, 0.0, 100, 100, 4, kv=0.1).state, spare=SPARE_MIN, last_raise=0.0)
    decision = feed(state, 10.0, 100, 90, 4, kv=0.1)
    assert decision.replicas == 4 and "no fewer while TTFT attainment" in decision.reason


def test_the_spare_decays_towards_its_floor_while_the_slo_is_met() -> None:
    state = feed(None, 0.0, 100, 100, 8, ready=8).state  # spare 4 over a load of 4
    t = 0.0
    for _ in range(360):  # an hour
        t += 10.0
        state = feed(state, t, 100, 100, 8, ready=8).state
    assert state.spare is not None
    assert state.spare == pytest.approx(SPARE_MIN + (4 - SPARE_MIN) / math.e, rel=0.01)
    for _ in range(360 * 8):
        t += 10.0
        state = feed(state, t, 100, 100, 8, ready=8).state
    assert state.spare == pytest.approx(SPARE_MIN, abs=0.01)
    # Below zero the terms shrink with it: a load of 3.4 replicas and a spare of -1 want 3.
    assert "wants 3 (kv)" in feed(state, t, 100, 100, 4, ready=8, kv=0.3).reason


@pytest.mark.parametrize(
    ("ready", "floor"),
    [
        pytest.param(2, -1 / 3, id="load-1-a-third"),
        pytest.param(3, -0.5, id="load-1.5-a-third"),
        pytest.param(6, -1.0, id="load-3-spare-min"),
        pytest.param(10, -1.0, id="load-5-spare-min"),
    ],
)
def test_the_spare_floor_is_at_most_a_share_of_the_load(ready: int, floor: float) -> None:
    # `ready` pods at KV 0.35: a load of ready / 2 replicas. Nine hours on target: the floor.
    assert SPARE_MIN == -1.0 and abs(SPARE_MIN_SHARE - 1 / 3) < 1e-12
    state = feed(None, 0.0, 100, 100, ready + 2, ready=ready).state
    for k in range(1, 360 * 9):
        state = feed(state, 10.0 * k, 100, 100, ready + 2, ready=ready).state
    assert state.spare == pytest.approx(floor, abs=0.01)


@pytest.mark.parametrize(
    ("current", "kv", "named"),
    [
        pytest.param(9, 0.1, True, id="spare-is-most-of-the-count"),  # load 0.57, spare 8.4
        pytest.param(3, 0.35, False, id="spare-below-the-load"),  # load 2, spare 1
        pytest.param(1, 0.1, False, id="spare-below-one"),  # load 0.57, spare 0.43
    ],
)
def test_the_reason_says_when_the_count_is_held_for_bursts(
    current: int, kv: float, named: bool
) -> None:
    decision = feed(None, 0.0, 100, 100, current, kv=kv, startup=150.0)
    assert ("bursts shorter than the 150s start-up" in decision.reason) is named


def test_the_prefill_term_sizes_on_a_high_quantile_of_the_recent_prompt_rate() -> None:
    # One replica prefills 4,000 tokens/s, at the 0.6 target 2,400: 9,000 tokens/s need 3.75.
    assert PREFILL_TARGET_UTILISATION == 0.6
    first = feed(None, 0.0, None, None, 2, kv=0.05, prompt_rate=9000.0, prefill=4000.0)
    assert first.replicas == 4 and "prompt rate needs 3.75" in first.reason
    # Eight calm intervals: the burst is above the 90th percentile of nine rates: still 3.75.
    state = first.state
    for k in range(1, 9):
        last = feed(state, 10.0 * k, None, None, 4, kv=0.05, prompt_rate=120.0, prefill=4000.0)
        state = last.state
    assert "prompt rate needs 3.75" in last.reason
    # One more calm interval and the 90th percentile is a calm one; after 10 minutes the burst
    # has left the window.
    calm = feed(state, 90.0, None, None, 4, kv=0.05, prompt_rate=120.0, prefill=4000.0)
    assert "prompt rate needs 0.05" in calm.reason
    gone = feed(calm.state, 600.0, None, None, 4, kv=0.05, prompt_rate=120.0, prefill=4000.0)
    assert 0.0 not in [t for t, _ in gone.state.prompt_rates]
    # Without a per-replica rate there is no prefill term.
    without = feed(None, 0.0, None, None, 2, kv=0.05, prompt_rate=9000.0)
    assert without.replicas == 2 and "prompt rate" not in without.reason


def test_the_spare_waits_for_the_first_prompt_rate() -> None:
    # With a prefill term, the first sample has no rate yet (a counter needs two reads): the
    # fresh spare is taken at the second, against the whole load.
    first = feed(None, 0.0, 100, 100, 6, kv=0.05, prompt_rate=None, prefill=4000.0)
    assert first.state.spare is None
    second = feed(first.state, 10.0, 100, 100, 6, kv=0.05, prompt_rate=9000.0, prefill=4000.0)
    assert second.state.spare == pytest.approx(6 - 3.75)


def test_a_queue_that_delays_nobody_beyond_the_slo_is_not_saturation() -> None:
    # 4 pods at KV 0.35 with 20 waiting (above 2 per pod): without TTFT data, saturation.
    def sample(first: int | None, within: int | None) -> LoadSample:
        return LoadSample(
            time=0.0,
            pods=tuple(PodLoad(waiting=5, running=10, kv_usage=0.35) for _ in range(4)),
            first_tokens=first,
            first_tokens_within_slo=within,
        )

    blind = decide(DEFAULTS, ONE_TO_TEN, 4, sample(None, None), None)
    assert "queue 20 on 4 > target" in blind.reason and blind.replicas >= 4
    on_time = decide(DEFAULTS, ONE_TO_TEN, 4, sample(100, 100), None)
    assert "> target" not in on_time.reason
    late = decide(DEFAULTS, ONE_TO_TEN, 4, sample(100, 80), None)
    assert "queue 20 on 4 > target" in late.reason
