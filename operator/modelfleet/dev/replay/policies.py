"""The scaling policies the simulator compares, as controllers of the event loop.

- modelfleet: the operator's own autoscale.policy.decide(), called every intervalSeconds with a
  LoadSample built from the ready replicas' engine load (waiting, running, KV cache use) and the
  number of replicas still loading, exactly as the operator builds it from scraped metrics.
- inflight: KubeAI's autoscaler as documented (see docs/simulate.md): every 10 s, the moving
  average over a window (KubeAI: 10 min) of the total in-flight requests, divided by a target per
  replica (KubeAI default 100), rounded up; a lower count is applied only after it has been wanted
  for the scale-down delay (KubeAI: 30 s). In flight = at the replicas plus held by the router,
  as KubeAI's proxy counts them.
- queue (KEDA/HPA-style): a KEDA ScaledObject with a Prometheus trigger on
  sum(vllm:num_requests_waiting), threshold 5 per replica (the vLLM production-stack "Autoscaling
  with KEDA" tutorial's example), polled every 15 s; the HPA it drives computes
  ceil(total / threshold) (AverageValue), skips changes within its 10% tolerance, scales up by at
  most max(4 pods, 100%) per period and down only to the highest recommendation of the last
  300 s (HPA defaults). No queue means minReplicas once the stabilisation window has passed.
- fixed: a constant count (static-peak, or any fixed count); never decides.
- schedule: a count per time slot known in advance (the oracle); see baselines.py.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from modelfleet.api.types import AutoscalingSpec
from modelfleet.autoscale.policy import AutoscalerState, Limits, LoadSample, PodLoad, decide
from modelfleet.dev.replay.fleet import FleetView

# KubeAI defaults (docs: "Autoscaling", KubeAI system config): in-flight target per replica,
# 10 s interval, 10 min averaging window, 30 s scale-down delay.
KUBEAI_TARGET_REQUESTS = 100
KUBEAI_INTERVAL_SECONDS = 10.0
KUBEAI_WINDOW_SECONDS = 600.0
KUBEAI_SCALE_DOWN_DELAY_SECONDS = 30.0


def clamp(value: int, limits: Limits) -> int:
    return max(limits.min_replicas, min(limits.max_replicas, value))


class ModelfleetController:
    """autoscale.policy.decide() on engine load, as the operator runs it."""

    name = "modelfleet"

    def __init__(
        self,
        config: AutoscalingSpec,
        limits: Limits,
        initial: int,
        *,
        slo_feedback: bool = True,
        slo_target: float = 0.99,
        prefill_tokens_per_s: float | None = None,
        startup_seconds: float | None = None,
    ) -> None:
        self.config = config
        self.startup_seconds = startup_seconds
        self.prefill_tokens_per_s = prefill_tokens_per_s
        self._prompt_seen = 0
        self._last_time: float | None = None
        self.slo_feedback = slo_feedback
        self.slo_target = slo_target
        self._seen = (0, 0)
        self.limits = limits
        self.initial = clamp(initial, limits)
        self.state: AutoscalerState | None = None
        self.decisions = 0
        self._reason = ""

    def initial_replicas(self) -> int:
        return self.initial

    def interval(self) -> float | None:
        return float(self.config.interval_seconds)

    def decide(self, fleet: FleetView) -> int:
        pods = tuple(
            PodLoad(waiting=load.waiting, running=load.running, kv_usage=load.kv_usage)
            for load in fleet.ready_loads()
        )
        first: int | None = None
        within: int | None = None
        if self.slo_feedback:
            seen = fleet.first_tokens()
            first, within = seen[0] - self._seen[0], seen[1] - self._seen[1]
            self._seen = seen
        rate: float | None = None
        if self.prefill_tokens_per_s is not None:
            sent = fleet.prompt_tokens()
            if self._last_time is not None and fleet.now > self._last_time:
                rate = (sent - self._prompt_seen) / (fleet.now - self._last_time)
            self._prompt_seen, self._last_time = sent, fleet.now
        sample = LoadSample(
            time=fleet.now,
            prompt_tokens_per_s=rate,
            pods=pods,
            unknown=0,
            starting=fleet.starting,
            first_tokens=first,
            first_tokens_within_slo=within,
            startup_seconds=self.startup_seconds,
        )
        decision = decide(
            self.config,
            self.limits,
            fleet.replicas,
            sample,
            self.state,
            self.slo_target,
            self.prefill_tokens_per_s,
        )
        self.state = decision.state
        self.decisions += 1
        self._reason = decision.reason
        return decision.replicas

    def reason(self) -> str:
        return self._reason


class InflightController:
    """KubeAI-style: ceil(moving average of total in-flight requests / target per replica)."""

    name = "inflight"

    def __init__(
        self,
        limits: Limits,
        initial: int,
        *,
        target: float = KUBEAI_TARGET_REQUESTS,
        interval: float = KUBEAI_INTERVAL_SECONDS,
        window: float = KUBEAI_WINDOW_SECONDS,
        scale_down_delay: float = KUBEAI_SCALE_DOWN_DELAY_SECONDS,
    ) -> None:
        if target <= 0 or interval <= 0 or window <= 0:
            raise ValueError("target, interval and window must be positive")
        self.limits = limits
        self.initial = clamp(initial, limits)
        self.target = target
        self._interval = interval
        self.window = window
        self.scale_down_delay = scale_down_delay
        self.samples: deque[tuple[float, int]] = deque()
        self.lower_since: float | None = None
        self._reason = ""

    def initial_replicas(self) -> int:
        return self.initial

    def interval(self) -> float | None:
        return self._interval

    def decide(self, fleet: FleetView) -> int:
        now = fleet.now
        self.samples.append((now, fleet.ready_in_flight() + fleet.router_queue))
        while self.samples and self.samples[0][0] <= now - self.window:
            self.samples.popleft()
        average = sum(n for _, n in self.samples) / len(self.samples)
        wanted = clamp(math.ceil(average / self.target - 1e-9), self.limits)
        current = fleet.replicas
        self._reason = f"average in flight {average:.1f} / target {self.target:g}"
        if wanted >= current:
            self.lower_since = None
            return wanted
        if self.lower_since is None:
            self.lower_since = now
        if now - self.lower_since >= self.scale_down_delay:
            self.lower_since = None
            return wanted
        return current

    def reason(self) -> str:
        return self._reason


# KEDA/HPA defaults and the vLLM production-stack tutorial's threshold (see the module docstring).
KEDA_QUEUE_THRESHOLD = 5.0
KEDA_POLLING_SECONDS = 15.0
HPA_TOLERANCE = 0.1
HPA_SCALE_DOWN_WINDOW_SECONDS = 300.0
HPA_SCALE_UP_PODS = 4
HPA_SCALE_UP_PERCENT = 100


class QueueController:
    """KEDA/HPA-style: ceil(total waiting requests / threshold per replica), HPA behaviour."""

    name = "keda-queue"

    def __init__(
        self,
        limits: Limits,
        initial: int,
        *,
        threshold: float = KEDA_QUEUE_THRESHOLD,
        interval: float = KEDA_POLLING_SECONDS,
        scale_down_window: float = HPA_SCALE_DOWN_WINDOW_SECONDS,
    ) -> None:
        if threshold <= 0 or interval <= 0:
            raise ValueError("threshold and interval must be positive")
        self.limits = limits
        self.initial = clamp(initial, limits)
        self.threshold = threshold
        self._interval = interval
        self.scale_down_window = scale_down_window
        self.history: deque[tuple[float, int]] = deque()
        self._reason = ""

    def initial_replicas(self) -> int:
        return self.initial

    def interval(self) -> float | None:
        return self._interval

    def decide(self, fleet: FleetView) -> int:
        now, current = fleet.now, fleet.replicas
        waiting = sum(load.waiting for load in fleet.ready_loads())
        ratio = waiting / (self.threshold * max(current, 1))
        if abs(ratio - 1) <= HPA_TOLERANCE:
            wanted = current
        else:
            wanted = math.ceil(waiting / self.threshold - 1e-9)
        wanted = clamp(wanted, self.limits)
        self.history.append((now, wanted))
        while self.history and self.history[0][0] < now - self.scale_down_window:
            self.history.popleft()
        if wanted < current:
            wanted = min(current, max(n for _, n in self.history))
        up_limit = max(current + HPA_SCALE_UP_PODS, current * (100 + HPA_SCALE_UP_PERCENT) // 100)
        wanted = min(wanted, up_limit)
        self._reason = f"waiting {waiting:g} / threshold {self.threshold:g}"
        return clamp(wanted, self.limits)

    def reason(self) -> str:
        return self._reason


class FixedController:
    """A constant replica count from t=0."""

    def __init__(self, replicas: int, name: str = "fixed") -> None:
        self.replicas = replicas
        self.name = name

    def initial_replicas(self) -> int:
        return self.replicas

    def interval(self) -> float | None:
        return None

    def decide(self, fleet: FleetView) -> int:
        return self.replicas

    def reason(self) -> str:
        return "fixed"


class ScheduleController:
    """A clairvoyant that plays by the rules: schedule[k] replicas ready during
    [k x slot, (k+1) x slot), ordered a start-up ahead.

    Every `interval` seconds it asks for the most any slot needs between now and now +
    lead + interval (lead: the start-up delay), so a replica ordered now is ready before the
    slot that needs it starts, and a replica is kept until the last slot that needs it has
    ended. It starts at `initial` (the common start) and pays for every loading replica like
    any other policy.
    """

    name = "oracle"

    def __init__(
        self,
        schedule: Sequence[int],
        slot: float,
        *,
        lead: float = 0.0,
        interval: float = 10.0,
        initial: int | None = None,
        name: str = "oracle",
    ) -> None:
        if not schedule or slot <= 0 or interval <= 0 or lead < 0:
            raise ValueError("a schedule needs at least one slot of positive length")
        self.schedule = list(schedule)
        self.slot = slot
        self.lead = lead
        self._interval = interval
        self.initial = self.schedule[0] if initial is None else initial
        self.name = name

    def initial_replicas(self) -> int:
        return self.initial

    def interval(self) -> float | None:
        return self._interval

    def wanted(self, now: float) -> int:
        last = len(self.schedule) - 1
        first = min(int(now // self.slot), last)
        until = min(int((now + self.lead + self._interval) // self.slot), last)
        return max(self.schedule[first : until + 1])

    def decide(self, fleet: FleetView) -> int:
        return self.wanted(fleet.now)

    def reason(self) -> str:
        return "known load of the slots up to a start-up ahead"
