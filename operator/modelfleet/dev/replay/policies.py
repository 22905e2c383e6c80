"""The scaling policies the simulator compares, as controllers of the event loop.

- modelfleet: the operator's own autoscale.policy.decide(), called every intervalSeconds with a
  LoadSample built from the ready replicas' engine load (waiting, running, KV cache use) and the
  number of replicas still loading, exactly as the operator builds it from scraped metrics.
- inflight: KubeAI's autoscaler as documented (see docs/simulate.md): every 10 s, the moving
  average over a window (KubeAI: 10 min) of the total in-flight requests, divided by a target per
  replica (KubeAI default 100), rounded up; a lower count is applied only after it has been wanted
  for the scale-down delay (KubeAI: 30 s). In flight = at the replicas plus held by the router,
  as KubeAI's proxy counts them.
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

    def __init__(self, config: AutoscalingSpec, limits: Limits, initial: int) -> None:
        self.config = config
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
        sample = LoadSample(time=fleet.now, pods=pods, unknown=0, starting=fleet.starting)
        decision = decide(self.config, self.limits, fleet.replicas, sample, self.state)
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
    """schedule[k] replicas during [k x slot, (k+1) x slot); the last count holds after that."""

    name = "oracle"

    def __init__(self, schedule: Sequence[int], slot: float) -> None:
        if not schedule or slot <= 0:
            raise ValueError("a schedule needs at least one slot of positive length")
        self.schedule = list(schedule)
        self.slot = slot

    def initial_replicas(self) -> int:
        return self.schedule[0]

    def interval(self) -> float | None:
        return self.slot

    def decide(self, fleet: FleetView) -> int:
        k = min(round(fleet.now / self.slot), len(self.schedule) - 1)
        return self.schedule[k]

    def reason(self) -> str:
        return "known load of the next slot"
