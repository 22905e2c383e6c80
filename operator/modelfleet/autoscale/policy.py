"""The replica policy: how many engine replicas to run, from one load sample and the past (pure).

The operator calls `decide` every autoscaling.intervalSeconds with the load scraped from the
ready pods; the trace simulator calls it in simulated time. Nothing here reads a clock, the API
server or a global: the caller passes the time, the load, the current count and the state it
got back from the previous call (None after a restart). docs/autoscaling.md explains the
reasoning; in short:

1. Load, in replicas at target: the largest of
   - KV cache: sum(kv) / targetKVCacheUsage;
   - running requests: sum(running) / targetRunningRequests (only when set);
   - queue, when it exceeds targetQueueDepth per answering pod (saturation): every request,
     running or waiting, needs a seat: (running + waiting) / (capacity + targetQueueDepth),
     capacity being the running requests one replica holds at target (see `_capacity`);
   plus one replica per unknown pod (ready, did not answer): neither idle nor busy.
   The recommendation is ceil(load).
2. Replicas still loading the model are capacity on the way: while some are (current exceeds
   the pods that serve), a saturated queue does not ask for more; it waits for them, since the
   queue keeps growing until they are ready and re-counting it every interval would buy the same
   burst several times. KV and running (which do not grow with the backlog) still count.
   A queue above target never asks for fewer replicas than run now.
3. Windows (HPA-style): scale up to the lowest recommendation of the last scaleUpWindowSeconds,
   down to the highest of the last scaleDownWindowSeconds; a fresh state (restart) never scales
   down before it has observed a whole scale-down window. Missing data never scales down.
4. Steps (maxScaleUpStep, maxScaleDownStep), then the bounds, which apply at once.
5. Prefill (when the caller passes the fleet's prompt tokens/s and a replica's prefill rate,
   e.g. the placement's roofline): prompt-heavy traffic saturates an engine's compute long
   before its KV cache fills, so the highest prompt rate of the last PREFILL_WINDOW_SECONDS
   (a high quantile of recent short-window load: bursts last seconds) over the rate one
   replica prefills at PREFILL_TARGET_UTILISATION is a load term too.
   SLO feedback (when the caller passes the interval's first tokens and how many came within
   the TTFT SLO): a load sampled every interval misses the bursts between samples, and how much
   standing capacity those need is a property of the workload, not of its mean rate (with
   random routing a burst lands on a few replicas whatever the fleet's size). So the policy
   learns a *spare*, in replicas, added to the KV, running and prefill terms, from the
   attainment of the last SLO_WINDOW_SECONDS: below the setpoint it rises by SPARE_GAIN x the
   shortfall x the replicas running (SPARE_STEP_MIN..SPARE_STEP_MAX), at most once per
   start-up (a raise cannot show sooner) and not while replicas load (the misses of a ramp
   are the ramp's: capacity is on the way); at or above it, it decays towards SPARE_MIN (below
   zero: the terms' targets may be loose for this workload), but at most SPARE_MIN_SHARE of
   the load below it (a loose target over-states the load in proportion; a small fleet at -1
   has no room for the next ramp), with a time constant of SPARE_DECAY_SECONDS, probing for
   the cheapest spare that holds. A fresh state starts from
   the count it finds (spare = current - load: the previous leader's or the user's count is
   the best guess). While the window is below the setpoint the count never goes down (misses
   never ask for fewer). When the spare is most of the count, the reason says so: the bursts
   are shorter than a start-up and only standing replicas serve them, so the count holds.
   Without the input (engines without a TTFT histogram) the spare stays 0.
   Start-up (LoadSample.startup_seconds, measured from the pods; DEFAULT_STARTUP_SECONDS when
   unknown) paces the raises and bounds how long loading replicas count as on the way.
6. Zero (minReplicas 0 only): after scaleToZeroAfterSeconds in which every pod answered with no
   request at all. At zero there is no load to observe, so the policy stays there: waking from
   zero needs a request gateway, which does not exist yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from modelfleet.api.types import AutoscalingSpec, ModelDeploymentSpec

# Pods still not ready this long after the last scale-up (or after we started observing) are
# not "on the way" any more (stuck Pending, crash-looping): the queue counts again. LLM pods take
# 2-3 minutes to become ready (image + weights); 300 s covers that with margin for a slow pull,
# and STARTUP_GRACE_FACTOR measured start-ups when those are longer.
STARTUP_GRACE_SECONDS = 300.0
STARTUP_GRACE_FACTOR = 2.5

# Prefill term and SLO feedback (see 5. above), as measured on bench/autoscale (docs/autoscaling.md
# lists what was tried). The setpoint is the target itself: a 10-minute window, not the day.
SLO_TARGET = 0.99
SLO_SETPOINT_SHARE = 1.0  # setpoint = 1 - (1 - target) x this
SLO_WINDOW_SECONDS = 600.0
SLO_MIN_FIRST_TOKENS = 50  # fewer in the window: no judgement
SPARE_GAIN = 5.0  # replicas per unit of shortfall per replica running (0.01 short on 8: +0.4)
SPARE_STEP_MIN = 0.1
SPARE_STEP_MAX = 0.5
SPARE_DECAY_SECONDS = 3600.0
SPARE_MIN = -1.0
# ... and at most this share of the load below it: a loose target over-states the load in
# proportion, and a small fleet at -1 (half of two replicas) has no room left for a ramp.
SPARE_MIN_SHARE = 1 / 3
BURST_NOTE_SPARE = 1.0  # a spare at least this, and at least the load, is named in the reason
PREFILL_WINDOW_SECONDS = 600.0
PREFILL_QUANTILE: float | None = 0.9
PREFILL_TARGET_UTILISATION = 0.6
# Without a measured start-up (LoadSample.startup_seconds): what an LLM pod typically needs.
DEFAULT_STARTUP_SECONDS = 120.0

# Floating-point slack so that a load of exactly 2.0 replicas (computed as 1.4/0.7) stays 2.
_EPSILON = 1e-9


@dataclass(frozen=True)
class PodLoad:
    waiting: float  # queued requests (vllm:num_requests_waiting)
    running: float  # running requests (vllm:num_requests_running)
    kv_usage: float  # 0-1 (vllm:kv_cache_usage_perc)


@dataclass(frozen=True)
class LoadSample:
    time: float  # seconds, any monotonic clock (simulated in the simulator)
    pods: tuple[PodLoad, ...]  # ready pods that answered the scrape
    unknown: int = 0  # ready pods that did not answer: unknown, NEVER treated as idle
    starting: int = 0  # pods that exist but are not ready yet (loading the model)
    # First tokens since the previous sample, and how many came within the TTFT SLO (from the
    # engines' TTFT histograms); None when unknown (then no SLO feedback).
    first_tokens: int | None = None
    first_tokens_within_slo: int | None = None
    # Prompt tokens/s of the whole fleet since the previous sample (the engines' prompt token
    # counters); None when unknown.
    prompt_tokens_per_s: float | None = None
    # Measured start-up of this deployment's replicas (creation to Ready, e.g. the median of
    # the recent ones); None when unknown (then DEFAULT_STARTUP_SECONDS).
    startup_seconds: float | None = None


@dataclass(frozen=True)
class Limits:
    min_replicas: int
    max_replicas: int

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                "need 0 <= minReplicas <= maxReplicas, got "
                f"{self.min_replicas}..{self.max_replicas}"
            )

    @classmethod
    def from_spec(cls, spec: ModelDeploymentSpec) -> Limits:
        """minReplicas defaults to 1; a spec without maxReplicas is not autoscaled."""
        if spec.max_replicas is None:
            raise ValueError("autoscaling is off: maxReplicas is not set")
        return cls(spec.min_replicas_or_default, spec.max_replicas)


@dataclass(frozen=True)
class AutoscalerState:
    """Everything decide() needs from the past; the caller keeps it (memory) and passes it back."""

    observing_since: float  # time of the first sample of this state (restart = fresh state)
    last_time: float  # time of the latest sample
    last_busy: float  # latest sample that was not provably idle (a request, or missing data)
    recommendations: tuple[tuple[float, int], ...] = ()  # (time, replicas), oldest first
    last_scale_time: float | None = None
    last_scale_up_time: float | None = None
    spare: float | None = None  # replicas above the load (SLO feedback); None: not set yet
    last_raise: float | None = None
    slo_samples: tuple[tuple[float, int, int], ...] = ()  # (time, first tokens, within SLO)
    prompt_rates: tuple[tuple[float, float], ...] = ()  # (time, prompt tokens/s)

    @classmethod
    def fresh(cls, time: float) -> AutoscalerState:
        return cls(observing_since=time, last_time=time, last_busy=time)


@dataclass(frozen=True)
class Decision:
    replicas: int  # the count to run now
    changed: bool  # replicas != current
    reason: str  # one line with the numbers
    state: AutoscalerState
    recommendation: int | None = None  # what the load asks for, before the rules below
    # The rule that kept `replicas` from the recommendation (status.autoscaling.heldBy): the
    # last one that moved it; None when replicas == recommendation.
    held_by: str | None = None


@dataclass(frozen=True)
class _Load:
    """The sample boiled down, for the recommendation and the reason."""

    answered: int
    unknown: int
    running: float
    waiting: float
    kv: float  # sum over answering pods
    capacity: float | None  # running requests per replica at target, None when unknown
    prefill: float | None = None  # replicas the recent prompt rate needs (None: not known)


def decide(
    config: AutoscalingSpec,
    limits: Limits,
    current: int,
    sample: LoadSample,
    state: AutoscalerState | None,
    slo_target: float = SLO_TARGET,
    prefill_tokens_per_s: float | None = None,
) -> Decision:
    """The replica count to run now, with a one-line reason and the state for the next call."""
    if state is None or sample.time < state.last_time:
        # A fresh start, or a clock that went back (another process): forget the past.
        state = AutoscalerState.fresh(sample.time)
    now = sample.time
    load = _summarise(config, sample)
    idle = load.answered > 0 and load.unknown == 0 and load.running + load.waiting == 0
    state = replace(state, last_time=now, last_busy=state.last_busy if idle else now)

    if current == 0:
        return _at_zero(limits, sample, state)

    startup = _startup(sample)
    prefill = _prefill(state, sample, prefill_tokens_per_s)
    state = replace(state, prompt_rates=prefill[1])
    load = replace(load, prefill=prefill[0])
    loading = _loading(state, load, current, now, startup)
    # The load is known once the prefill term has its first rate (when there is one).
    base = (
        None if prefill_tokens_per_s is not None and load.prefill is None else _base(config, load)
    )
    state, short = _feedback(state, sample, slo_target, current, base, loading)
    tolerated = config.target_queue_depth * load.answered
    if load.waiting > tolerated and _first_tokens_on_time(sample, slo_target):
        # The engines report first tokens and this interval's came on time: a queue that
        # delays nobody beyond the SLO is admission jitter (a step's token budget), not
        # saturation.
        load = replace(load, waiting=tolerated)
    spare = state.spare or 0.0
    recommendation, why = _recommend(config, load, spare=spare)
    wanted = recommendation
    held: str | None = None
    missing = _missing_data(load)
    saturated = load.waiting > config.target_queue_depth * max(load.answered, 1)
    if missing:
        # No scale-down on missing data, and the held count is what the window remembers.
        recommendation = max(recommendation, current)
        held = "MissingData"
    elif loading and saturated:
        recommendation = max(_recommend(config, load, with_queue=False, spare=spare)[0], current)
        why = f"{why}; waiting for {current - load.answered - load.unknown} loading replica(s)"
        held = "LoadingReplicas"
    elif saturated and recommendation < current:
        # Requests queue beyond the target: whatever the capacity estimate says, fewer
        # replicas would only lengthen the queue.
        recommendation = current
        why = f"{why}; no fewer while the queue is above target"
        held = "QueueAboveTarget"
    elif short and recommendation < current:
        recommendation = current
        why = f"{why}; no fewer while TTFT attainment is below the setpoint"
        held = "SLOBelowSetpoint"
    if base is not None and spare >= max(BURST_NOTE_SPARE, base):
        why = (
            f"{why}; bursts shorter than the {startup:.0f}s start-up need {spare:.1f} standing "
            "replicas above the load (no replica ordered now can follow them)"
        )
    if recommendation == wanted:
        held = None

    state = _remember(config, state, now, recommendation)
    target, note, window = _stabilise(config, state, now, current, recommendation, missing)
    if target != recommendation:
        held = window
    zero = _zero_note(config, limits, state, now)
    if zero:
        target, note, held = 0, zero, None
    stepped, step_note = _step(config, current, target)
    if stepped != target:
        held = "MaxScaleUpStep" if stepped < target else "MaxScaleDownStep"
    target, bound_note = _bound(limits, stepped, allow_zero=bool(zero))
    if target != stepped:
        held = "MaxReplicas" if target < stepped else "MinReplicas"
    replicas = target
    if replicas == wanted:
        held = None
    notes = "; ".join(n for n in (note, step_note, bound_note) if n)
    reason = f"{why}: {current} -> {replicas}" if replicas != current else f"{why}: hold {current}"
    if notes:
        reason = f"{reason} ({notes})"
    if replicas != current:
        state = replace(
            state,
            last_scale_time=now,
            last_scale_up_time=now if replicas > current else state.last_scale_up_time,
        )
    return Decision(replicas, replicas != current, reason, state, wanted, held)


def _summarise(config: AutoscalingSpec, sample: LoadSample) -> _Load:
    # A pod whose gauges are not numbers (NaN, inf) told us nothing: it is unknown.
    pods = tuple(
        pod
        for pod in sample.pods
        if all(math.isfinite(value) for value in (pod.waiting, pod.running, pod.kv_usage))
    )
    running = sum(max(pod.running, 0.0) for pod in pods)
    waiting = sum(max(pod.waiting, 0.0) for pod in pods)
    kv = sum(min(max(pod.kv_usage, 0.0), 1.0) for pod in pods)
    return _Load(
        answered=len(pods),
        unknown=max(sample.unknown, 0) + len(sample.pods) - len(pods),
        running=running,
        waiting=waiting,
        kv=kv,
        capacity=_capacity(config, pods),
    )


def _capacity(config: AutoscalingSpec, pods: tuple[PodLoad, ...]) -> float | None:
    """Running requests one replica holds at target, from what the pods tell us.

    targetRunningRequests when set. Otherwise from KV use: the running requests share the KV
    cache, so one replica at targetKVCacheUsage holds running * target / kv of them. A pod that
    queues with KV to spare is at another limit (the engine's batch size, e.g. vLLM's
    --max-num-seqs): its running count, scaled to the KV target, caps the estimate. None when no
    request runs (nothing to measure).
    """
    estimates: list[float] = []
    if config.target_running_requests is not None:
        estimates.append(float(config.target_running_requests))
    running = sum(max(pod.running, 0.0) for pod in pods)
    kv = sum(min(max(pod.kv_usage, 0.0), 1.0) for pod in pods)
    if running > 0 and kv > 0:
        estimates.append(running * config.target_kv_cache_usage / kv)
    for pod in pods:
        if pod.waiting > 0 and pod.running > 0:
            headroom = config.target_kv_cache_usage / max(
                pod.kv_usage, config.target_kv_cache_usage
            )
            estimates.append(pod.running * headroom)
    return max(min(estimates), 1.0) if estimates else None


def _feedback(
    state: AutoscalerState,
    sample: LoadSample,
    target: float,
    current: int,
    base: float | None,
    loading: bool,
) -> tuple[AutoscalerState, bool]:
    """The spare replicas after this sample's first tokens, and whether the window is below
    the setpoint (SLO feedback; module docstring, 5.)."""
    total, hits = sample.first_tokens, sample.first_tokens_within_slo
    if total is None or hits is None:
        return state, False
    now = sample.time
    if state.spare is None:
        if base is None:
            return state, False
        # A fresh state trusts the count it finds (the previous leader's, or the user's).
        state = replace(state, spare=max(0.0, current - base))
    previous = state.slo_samples[-1][0] if state.slo_samples else now
    samples = tuple(s for s in state.slo_samples if now - s[0] < SLO_WINDOW_SECONDS)
    samples = (*samples, (now, max(total, 0), max(min(hits, total), 0)))
    seen = sum(s[1] for s in samples)
    if seen < SLO_MIN_FIRST_TOKENS:
        return replace(state, slo_samples=samples), False
    attained = sum(s[2] for s in samples) / seen
    setpoint = 1 - (1 - target) * SLO_SETPOINT_SHARE
    spare, last_raise = state.spare or 0.0, state.last_raise
    short = attained < setpoint
    startup = _startup(sample)
    if short:
        # Misses while replicas load are the ramp's: capacity is on the way. Otherwise one raise
        # per start-up: the effect of the last one cannot show sooner.
        if not loading and (last_raise is None or now - last_raise >= startup):
            shortfall = (setpoint - attained) * max(current, 1)
            spare += min(max(SPARE_GAIN * shortfall, SPARE_STEP_MIN), SPARE_STEP_MAX)
            last_raise = now
    else:
        decay = math.exp(-max(now - previous, 0.0) / SPARE_DECAY_SECONDS)
        floor = _spare_floor(base)
        spare = floor + (spare - floor) * decay
    state = replace(state, spare=spare, last_raise=last_raise, slo_samples=samples)
    return state, short


def _spare_floor(base: float | None) -> float:
    """Where the spare decays to: SPARE_MIN, but no more than SPARE_MIN_SHARE of the load."""
    if base is None:
        return SPARE_MIN
    return max(SPARE_MIN, -SPARE_MIN_SHARE * base)


def _first_tokens_on_time(sample: LoadSample, target: float) -> bool:
    total, hits = sample.first_tokens, sample.first_tokens_within_slo
    return total is not None and hits is not None and total > 0 and hits >= target * total


def _prefill(
    state: AutoscalerState, sample: LoadSample, per_replica: float | None
) -> tuple[float | None, tuple[tuple[float, float], ...]]:
    """Replicas the highest recent prompt rate needs at PREFILL_TARGET_UTILISATION, and the
    rates to remember."""
    rate = sample.prompt_tokens_per_s
    if rate is None or per_replica is None or per_replica <= 0 or not math.isfinite(rate):
        return None, state.prompt_rates
    now = sample.time
    rates = tuple(r for r in state.prompt_rates if now - r[0] < PREFILL_WINDOW_SECONDS)
    rates = (*rates, (now, max(rate, 0.0)))
    ordered = sorted(r[1] for r in rates)
    if PREFILL_QUANTILE is None:
        high = sum(ordered) / len(ordered)
    else:
        high = ordered[min(len(ordered) - 1, math.ceil(PREFILL_QUANTILE * len(ordered)) - 1)]
    return high / (per_replica * PREFILL_TARGET_UTILISATION), rates


def _base(config: AutoscalingSpec, load: _Load) -> float:
    """The load in replicas at target from the terms that measure a rate (not the queue)."""
    terms = [load.kv / config.target_kv_cache_usage]
    if config.target_running_requests is not None:
        terms.append(load.running / config.target_running_requests)
    if load.prefill is not None:
        terms.append(load.prefill)
    return max(terms) + load.unknown


def _recommend(
    config: AutoscalingSpec, load: _Load, with_queue: bool = True, spare: float = 0.0
) -> tuple[int, str]:
    """ceil(load in replicas at target + spare), and the numbers that gave it."""
    answered = max(load.answered, 1)
    terms = {"kv": load.kv / config.target_kv_cache_usage}
    parts = [
        f"kv {load.kv / answered:.2f}/replica on {load.answered} (target "
        f"{config.target_kv_cache_usage:g})"
    ]
    if config.target_running_requests is not None:
        terms["running"] = load.running / config.target_running_requests
        parts.append(f"running {load.running:g} (target {config.target_running_requests}/replica)")
    if load.prefill is not None:
        terms["prefill"] = load.prefill
        parts.append(f"prompt rate needs {load.prefill:.2f}")
    if spare:
        parts.append(f"{spare:+.2f} spare from TTFT attainment")
        terms = {name: value + spare for name, value in terms.items()}
    tolerated = config.target_queue_depth * answered
    if load.waiting > tolerated:
        parts.append(
            f"queue {load.waiting:g} on {load.answered} > target "
            f"{config.target_queue_depth:g}/replica"
        )
        if with_queue:
            if load.capacity is None:
                # Nothing runs, so no capacity to measure: size on the queue alone.
                terms["queue"] = load.waiting / max(config.target_queue_depth, 1.0)
            else:
                seats = load.capacity + config.target_queue_depth
                terms["queue"] = (load.running + load.waiting) / seats
                parts.append(f"{load.capacity:.0f} running/replica at target")
    elif load.waiting > 0:
        parts.append(f"queue {load.waiting:g}")
    if load.unknown:
        parts.append(f"{load.unknown} unknown counted at target")
    driver = max(terms, key=lambda name: terms[name])
    wanted = math.ceil(terms[driver] + load.unknown - _EPSILON)
    return max(wanted, 0), f"{', '.join(parts)}: wants {wanted} ({driver})"


def _missing_data(load: _Load) -> bool:
    return load.answered == 0 or load.unknown > 0


def _startup(sample: LoadSample) -> float:
    measured = sample.startup_seconds
    if measured is None or not math.isfinite(measured) or measured <= 0:
        return DEFAULT_STARTUP_SECONDS
    return measured


def _loading(state: AutoscalerState, load: _Load, current: int, now: float, startup: float) -> bool:
    """Replicas asked for that do not serve yet, and not for suspiciously long (more than
    STARTUP_GRACE_FACTOR start-ups, at least STARTUP_GRACE_SECONDS)."""
    if current <= load.answered + load.unknown:
        return False
    since = state.last_scale_up_time
    since = state.observing_since if since is None else since
    return now - since < max(STARTUP_GRACE_SECONDS, STARTUP_GRACE_FACTOR * startup)


def _remember(
    config: AutoscalingSpec, state: AutoscalerState, now: float, recommendation: int
) -> AutoscalerState:
    keep = max(config.scale_up_window_seconds, config.scale_down_window_seconds)
    history = tuple(
        (time, replicas) for time, replicas in state.recommendations if now - time <= keep
    )
    return replace(state, recommendations=(*history, (now, recommendation)))


def _window(state: AutoscalerState, now: float, seconds: int) -> list[int]:
    return [replicas for time, replicas in state.recommendations if now - time <= seconds]


def _stabilise(
    config: AutoscalingSpec,
    state: AutoscalerState,
    now: float,
    current: int,
    recommendation: int,
    missing: bool,
) -> tuple[int, str, str]:
    """Up to the lowest of the short window, down to the highest of the long one; with the
    note, and the rule that holds the count when it is not the recommendation."""
    up = min(_window(state, now, config.scale_up_window_seconds), default=recommendation)
    down = max(_window(state, now, config.scale_down_window_seconds), default=recommendation)
    if up > current:
        note = "" if up == recommendation else f"lowest in {config.scale_up_window_seconds}s: {up}"
        return up, note, "ScaleUpWindow"
    if down < current:
        observed = now - state.observing_since
        if observed < config.scale_down_window_seconds:
            return (
                current,
                f"no scale-down: observed {observed:.0f}s of a "
                f"{config.scale_down_window_seconds}s window since start",
                "ObservingSinceStart",
            )
        if missing:
            return current, "no scale-down on missing data", "MissingData"
        note = (
            ""
            if down == recommendation
            else (f"highest in {config.scale_down_window_seconds}s: {down}")
        )
        return down, note, "ScaleDownWindow"
    if recommendation < current:
        return current, f"highest in {config.scale_down_window_seconds}s: {down}", "ScaleDownWindow"
    return current, "", "ScaleUpWindow"


def _step(config: AutoscalingSpec, current: int, target: int) -> tuple[int, str]:
    if target > current + config.max_scale_up_step:
        return current + config.max_scale_up_step, f"step limit +{config.max_scale_up_step}"
    if target < current - config.max_scale_down_step:
        return current - config.max_scale_down_step, f"step limit -{config.max_scale_down_step}"
    return target, ""


def _zero_note(config: AutoscalingSpec, limits: Limits, state: AutoscalerState, now: float) -> str:
    """Why the count may go to zero now, or "" when it may not.

    Only with minReplicas 0, after scaleToZeroAfterSeconds in which every sample had pods that
    all answered with no request, and (restart rule) after a whole scale-down window observed.
    """
    if limits.min_replicas > 0:
        return ""
    idle = now - state.last_busy
    observed = now - state.observing_since
    if idle < config.scale_to_zero_after_seconds or observed < config.scale_down_window_seconds:
        return ""
    return (
        f"no request for {idle:.0f}s >= {config.scale_to_zero_after_seconds}s: scale to zero "
        "(waking from zero needs a request gateway, not built yet)"
    )


def _bound(limits: Limits, target: int, allow_zero: bool) -> tuple[int, str]:
    """minReplicas..maxReplicas, at once; below 1 only when scaling to zero."""
    if target > limits.max_replicas:
        return limits.max_replicas, f"maxReplicas {limits.max_replicas}"
    floor = limits.min_replicas if allow_zero else max(limits.min_replicas, 1)
    if target < floor:
        return floor, f"minReplicas {limits.min_replicas}" if limits.min_replicas else ""
    return target, ""


def _at_zero(limits: Limits, sample: LoadSample, state: AutoscalerState) -> Decision:
    """Nothing runs, so there is no load to observe: stay at zero unless minReplicas says not."""
    state = replace(state, recommendations=(*state.recommendations, (sample.time, 0))[-1:])
    if limits.min_replicas > 0:
        state = replace(state, last_scale_time=sample.time, last_scale_up_time=sample.time)
        reason = f"at 0 below minReplicas {limits.min_replicas}: 0 -> {limits.min_replicas}"
        return Decision(limits.min_replicas, True, reason, state, 0, "MinReplicas")
    return Decision(
        0,
        False,
        "at 0: no load to observe; waking from zero needs a request gateway (not built yet), "
        "or a manual scale: hold 0",
        state,
        0,
    )
