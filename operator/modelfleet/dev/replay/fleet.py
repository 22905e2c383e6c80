"""The discrete-event loop: a trace replayed against a fleet of engine replicas and a controller.

Time is simulated. The loop jumps between the only moments where something outside an engine
happens: a request arrives, a replica finishes loading, the controller decides. Between those
moments each replica's ReplicaEngine runs on its own and is advanced lazily (before a request is
submitted to it, before the controller reads its load); the events it returns carry their own
times, so advancing late loses nothing.

Rules (also in docs/simulate.md):

- Router (`routing`): "random" (default) picks a ready replica that is not draining uniformly at
  random from a seeded generator, as a plain Kubernetes Service does (kube-proxy in iptables
  mode picks an endpoint at random per connection); "least-outstanding" picks the one with the
  fewest requests in flight (lowest index on a tie), as a load-aware gateway does;
  "round-robin" (IPVS mode) is kept for comparison. The same seed gives the same run.
- Requests longer than the deployment's context (prompt + output > `max_context`) are refused
  at once, as vLLM refuses them: no first token, so they count as SLO misses (`refused`).
  With no ready replica, requests wait in a
  router queue, in order, and are sent out as soon as one becomes ready; that wait is part of
  their time to first token. The controllers see the replicas only, not the router queue, as the
  operator does (it has no gateway yet), except the KubeAI-style baseline, whose proxy counts the
  requests it holds.
- Scale-up: a replica is created at the decision and is ready `startup_delay` seconds later
  (model load); it costs from its creation (its GPUs are allocated while it loads).
- Scale-down: replicas still loading go first (newest first), then the most recently ready (what
  a ReplicaSet prefers to delete). A removed ready replica gets no new requests, finishes its
  in-flight requests (drains) and costs until the last one finishes; a loading one stops at once.
- The initial replicas are ready at t=0 (the deployment was running before the trace starts).
- The run ends when every request has finished; replicas still running stop costing then.
  Controllers decide only while requests are still to arrive or wait in the router queue.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from modelfleet.dev.replay.trace import TraceRequest
from modelfleet.perf.engine import EngineLoad, Request, RequestEvent

INF = math.inf
# After the last arrival, requests held in the router queue (no ready replica) wait at most this
# long past a start-up delay for a replica before the run gives up on them ("unserved").
ROUTER_GIVE_UP_SECONDS = 3600.0
ROUTINGS = ("random", "least-outstanding", "round-robin")


class Engine(Protocol):
    """What the loop needs of modelfleet.perf.engine.ReplicaEngine."""

    @property
    def now(self) -> float: ...

    @property
    def in_flight(self) -> int: ...

    def submit(self, request: Request) -> None: ...

    def advance(self, until: float) -> list[RequestEvent]: ...

    def next_event_time(self) -> float | None: ...

    def load(self) -> EngineLoad: ...


EngineFactory = Callable[[float], Engine]  # the engine of a replica that becomes ready at t


class FleetView(Protocol):
    """What a controller may look at when it decides."""

    @property
    def now(self) -> float: ...

    @property
    def replicas(self) -> int: ...  # the current count: ready + loading, not draining

    @property
    def starting(self) -> int: ...  # loading replicas

    @property
    def router_queue(self) -> int: ...

    def ready_loads(self) -> list[EngineLoad]: ...

    def ready_in_flight(self) -> int: ...

    def first_tokens(self) -> tuple[int, int]: ...  # cumulative (all, within the TTFT SLO)

    def prompt_tokens(self) -> int: ...  # cumulative prompt tokens sent to the engines


class Controller(Protocol):
    """A scaling policy: an initial count, then a count at every decision."""

    name: str

    def initial_replicas(self) -> int: ...

    def interval(self) -> float | None: ...  # seconds between decisions (first at t=0); None: never

    def decide(self, fleet: FleetView) -> int: ...

    def reason(self) -> str: ...  # why the last decision, for the scale log


@dataclass
class Replica:
    index: int
    created: float
    ready_at: float
    engine: Engine | None = None
    draining: bool = False
    stopped: float | None = None

    @property
    def loading(self) -> bool:
        return self.engine is None and self.stopped is None


@dataclass(frozen=True)
class ScaleChange:
    time: float
    before: int
    after: int
    reason: str


@dataclass
class Outcome:
    """What happened, raw: per-request TTFT and per-replica lifetimes."""

    ttft: list[float | None]  # by request index; None: never got a first token
    replica_seconds: float
    end_time: float
    max_replicas: int
    scale_events: int
    changes: list[ScaleChange] = field(default_factory=list)
    refused: int = 0  # longer than the context: refused by the engine, never served


class Simulation:
    """One run of `requests` against `controller`; use run() once."""

    def __init__(
        self,
        requests: Sequence[TraceRequest],
        engine_factory: EngineFactory,
        controller: Controller,
        *,
        startup_delay: float,
        routing: str = "random",
        seed: int = 0,
        max_context: int | None = None,
        slo_seconds: float = 2.0,
    ) -> None:
        if startup_delay < 0:
            raise ValueError("startup_delay must be >= 0")
        if routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {', '.join(ROUTINGS)}, got {routing!r}")
        self.routing = routing
        self.rng = random.Random(seed)
        self.max_context = max_context
        self.refused = 0
        self.slo_seconds = slo_seconds
        self._first = 0
        self._first_within = 0
        self._prompt_sent = 0
        self.requests = requests
        self.engine_factory = engine_factory
        self.controller = controller
        self.startup_delay = startup_delay
        self.now = 0.0
        self.fleet: list[Replica] = []
        self.queue: deque[int] = deque()
        self.ttft: list[float | None] = [None] * len(requests)
        self.last_event = 0.0
        self._rr = 0
        self._changes: list[ScaleChange] = []
        self._max = 0
        self._live: list[Replica] = []  # neither stopped nor draining, in creation order
        self._ready: list[Engine] = []  # engines of the live replicas that are ready
        self._next_ready = INF  # earliest ready_at of a loading replica

    def _refresh(self) -> None:
        self._live = [r for r in self._live if r.stopped is None and not r.draining]
        self._ready = [r.engine for r in self._live if r.engine is not None]
        self._next_ready = min((r.ready_at for r in self._live if r.loading), default=INF)

    # FleetView -----------------------------------------------------------------------------

    @property
    def replicas(self) -> int:
        return len(self._live)

    @property
    def starting(self) -> int:
        return len(self._live) - len(self._ready)

    @property
    def router_queue(self) -> int:
        return len(self.queue)

    def ready_loads(self) -> list[EngineLoad]:
        return [engine.load() for engine in self._ready]

    def ready_in_flight(self) -> int:
        return sum(engine.in_flight for engine in self._ready)

    def first_tokens(self) -> tuple[int, int]:
        """First tokens so far, and how many within the TTFT SLO: what the engines' TTFT
        histograms count (refused requests never get one)."""
        return self._first, self._first_within

    def prompt_tokens(self) -> int:
        """Prompt tokens sent to the engines so far (their prompt-token counters, summed, count
        them at prefill: the same in the long run, a little later in a burst)."""
        return self._prompt_sent

    # The loop ------------------------------------------------------------------------------

    def run(self) -> Outcome:
        requests, controller = self.requests, self.controller
        initial = controller.initial_replicas()
        for _ in range(initial):
            self._create(0.0, ready_at=0.0)
        self._max = initial
        interval = controller.interval()
        next_decision = 0.0 if interval is not None else INF
        count = len(requests)
        give_up = (requests[-1].arrival if count else 0.0) + self.startup_delay
        give_up += ROUTER_GIVE_UP_SECONDS
        i = 0
        while True:
            t_arrival = requests[i].arrival if i < count else INF
            t_ready = self._next_ready
            waiting = i < count or bool(self.queue)
            t_decision = next_decision if waiting and next_decision <= give_up else INF
            t = min(t_arrival, t_ready, t_decision)
            if t == INF:
                break
            self.now = t
            if t_ready == t:
                for replica in self._live:
                    if replica.loading and replica.ready_at == t:
                        replica.engine = self.engine_factory(t)
                self._refresh()
                while self.queue:
                    self._dispatch(self.queue.popleft(), t)
            elif t_decision == t:
                self._decide(t)
                assert interval is not None
                next_decision = t + interval
            else:
                self._dispatch(i, t)
                i += 1
        for replica in self.fleet:
            if replica.engine is not None and replica.stopped is None:
                self._finish(replica.engine)
        end = max(self.last_event, requests[-1].arrival if count else 0.0)
        replica_seconds = 0.0
        for replica in self.fleet:
            stopped = end if replica.stopped is None else replica.stopped
            replica_seconds += max(0.0, stopped - replica.created)
        return Outcome(
            ttft=self.ttft,
            replica_seconds=replica_seconds,
            end_time=end,
            max_replicas=self._max,
            scale_events=len(self._changes),
            changes=self._changes,
            refused=self.refused,
        )

    # Steps ---------------------------------------------------------------------------------

    def _create(self, now: float, ready_at: float) -> None:
        replica = Replica(index=len(self.fleet), created=now, ready_at=ready_at)
        if ready_at <= now:
            replica.engine = self.engine_factory(now)
        self.fleet.append(replica)
        self._live.append(replica)
        self._refresh()

    def _record(self, events: list[RequestEvent]) -> None:
        for event in events:
            if event.time > self.last_event:
                self.last_event = event.time
            if event.kind == "first_token":
                index = int(event.request_id)
                if self.ttft[index] is None:
                    ttft = event.time - self.requests[index].arrival
                    self.ttft[index] = ttft
                    self._first += 1
                    self._first_within += ttft <= self.slo_seconds + 1e-9

    def _dispatch(self, index: int, now: float) -> None:
        request = self.requests[index]
        limit = self.max_context
        if limit is not None and request.prompt_tokens + request.output_tokens > limit:
            self.refused += 1  # vLLM answers 400 at once; the TTFT stays None (a miss)
            return
        engines = self._ready
        if not engines:
            self.queue.append(index)
            return
        if self.routing == "random":
            engine = engines[self.rng.randrange(len(engines))]
        elif self.routing == "least-outstanding":
            for candidate in engines:
                self._record(candidate.advance(now))
            engine = min(engines, key=lambda e: e.in_flight)
        else:
            engine = engines[self._rr % len(engines)]
            self._rr += 1
        self._record(engine.advance(now))
        self._prompt_sent += request.prompt_tokens
        engine.submit(Request(str(index), now, request.prompt_tokens, request.output_tokens))

    def _decide(self, now: float) -> None:
        for engine in self._ready:
            self._record(engine.advance(now))
        before = self.replicas
        wanted = max(0, self.controller.decide(self))
        if wanted == before:
            return
        if wanted > before:
            for _ in range(wanted - before):
                self._create(now, ready_at=now + self.startup_delay)
            if self.startup_delay == 0:
                while self.queue:
                    self._dispatch(self.queue.popleft(), now)
        else:
            self._remove(before - wanted, now)
        self._max = max(self._max, wanted)
        self._changes.append(ScaleChange(now, before, wanted, self.controller.reason()))

    def _remove(self, count: int, now: float) -> None:
        # Loading first (newest first), then the most recently ready.
        live = sorted(self._live, key=lambda r: (not r.loading, -r.ready_at, -r.index))
        for replica in live[:count]:
            if replica.engine is None:
                replica.stopped = now
                continue
            replica.draining = True
            # No new requests reach it, so its future is fixed: run it out now.
            last = self._finish(replica.engine)
            replica.stopped = max(now, last)
        self._refresh()

    def _finish(self, engine: Engine) -> float:
        """Advance an engine until it has nothing left; returns its last event's time."""
        last = engine.now
        stalled = 0
        while (t := engine.next_event_time()) is not None:
            events = engine.advance(t)
            self._record(events)
            if events:
                last = max(last, max(e.time for e in events))
                stalled = 0
            else:
                stalled += 1
                if stalled > 1_000_000:
                    raise RuntimeError("engine makes no progress")
        return max(last, engine.now)
