"""What the operator remembers of each deployment's latency histograms, in memory, for status.slo.

The scrape loop (handlers/scrapes.py) reads each pod's TTFT (and TPOT) histogram at the bound
its deployment's target needs (`targets`, set from the spec at each status computation); this
ledger keeps per pod only its last reading (two numbers per histogram) and per deployment the
per-minute increases of the last hour (status/slo.py `LatencyWindow`). status/slo.py turns them
into status.slo; handlers/modeldeployment.py writes it.

Only the leader observes; a new leader starts empty: its window starts when it began leading
(status.slo.since says so). A pod whose engine started after that counts its first scrape
whole; an older one takes its first scrape as the baseline.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from modelfleet.api.types import Engine, SLOSpec
from modelfleet.handlers.scrapes import PodSample
from modelfleet.kube.scrape import DEFAULT_TARGETS, Targets
from modelfleet.render.engines import profile
from modelfleet.status.slo import WINDOW_SECONDS, Bucketed, LatencyWindow, SLOSeen, increase

Owner = tuple[str, str]
FORGET_POD_SECONDS = 600.0  # a pod not scraped for this long is gone: its reading goes


@dataclass
class _Pod:
    ttft: Bucketed | None = None
    tpot: Bucketed | None = None
    last_seen: float = 0.0


@dataclass
class _Deployment:
    window: LatencyWindow
    pods: dict[str, _Pod] = field(default_factory=dict)
    ttft_unknown: str | None = None  # why the latest scrape had no reading
    tpot_unknown: str | None = None
    answered: bool = False  # some pod answered with engine metrics


class Ledger:
    """Every deployment's latency counts (thread-safe: scrapes record in the event loop, status
    computations read in pooled threads)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._owners: dict[Owner, _Deployment] = {}
        self._targets: dict[Owner, Targets] = {}
        self.started = float(int(clock()))

    def restart(self) -> None:
        """A new term as leader: forget everything."""
        with self._lock:
            self._owners.clear()
            self._targets.clear()
            self.started = float(int(self._clock()))

    def forget(self, owner: Owner) -> None:
        with self._lock:
            self._owners.pop(owner, None)
            self._targets.pop(owner, None)

    def aim(self, owner: Owner, slo: SLOSpec) -> None:
        """The deployment's targets, for the scrapes that read its histograms."""
        with self._lock:
            self._targets[owner] = (slo.ttft_seconds, slo.tpot_seconds)

    def targets(self, owner: Owner) -> Targets:
        with self._lock:
            return self._targets.get(owner, DEFAULT_TARGETS)

    def record(self, sample: PodSample) -> None:
        """A scrape of one pod (the scrape loop's listener)."""
        engine = sample.engine
        if engine is None:
            return
        ttft = engine.ttft if isinstance(engine.ttft, Bucketed) else None
        tpot = engine.tpot if isinstance(engine.tpot, Bucketed) else None
        now = sample.unix_time
        with self._lock:
            seen = self._owners.get(sample.pod.owner)
            bounds = (ttft.bound if ttft else None, tpot.bound if tpot else None)
            if seen is None:
                window = LatencyWindow(*bounds, created=self.started)
                seen = self._owners[sample.pod.owner] = _Deployment(window)
            elif _moved(seen.window, bounds):
                # New bounds (a new target): counts at the old ones do not compare; start over
                # (each pod's reading at the old bound is a baseline, see `increase`).
                seen.window = LatencyWindow(*bounds, created=now)
            seen.answered = True
            seen.ttft_unknown = engine.ttft if isinstance(engine.ttft, str) else None
            seen.tpot_unknown = engine.tpot if isinstance(engine.tpot, str) else None
            pod = seen.pods.get(sample.pod.uid)
            first = pod is None
            pod = seen.pods.setdefault(sample.pod.uid, _Pod())
            started = sample.pod.started
            from_zero = first and started is not None and started >= self.started
            seen.window.add(
                now,
                increase(pod.ttft, ttft, from_zero) if ttft else None,
                increase(pod.tpot, tpot, from_zero) if tpot else None,
            )
            pod.ttft, pod.tpot, pod.last_seen = ttft, tpot, now
            for uid in [u for u, p in seen.pods.items() if p.last_seen < now - FORGET_POD_SECONDS]:
                del seen.pods[uid]

    def see(self, owner: Owner, engine: Engine, now: float) -> SLOSeen:
        """The deployment's counts over the last hour (or since this term began)."""
        names = profile(engine).metrics
        with self._lock:
            seen = self._owners.get(owner)
            since = max(now - WINDOW_SECONDS, self.started)
            if seen is None:
                return SLOSeen(
                    since,
                    now,
                    None,
                    None,
                    _missing(engine, names.ttft, "time-to-first"),
                    None,
                    None,
                    _missing(engine, names.tpot, "time-per-output"),
                )
            since = max(since, seen.window.created)
            ttft, tpot = seen.window.totals(since)
            window = seen.window
            return SLOSeen(
                since=since,
                until=now,
                ttft=ttft if window.ttft_bound is not None else None,
                ttft_bound=window.ttft_bound,
                ttft_unknown=seen.ttft_unknown or _missing(engine, names.ttft, "time-to-first"),
                tpot=tpot if window.tpot_bound is not None else None,
                tpot_bound=window.tpot_bound,
                tpot_unknown=seen.tpot_unknown or _missing(engine, names.tpot, "time-per-output"),
            )

    def __len__(self) -> int:
        with self._lock:
            return sum(len(d.pods) for d in self._owners.values())


def _moved(window: LatencyWindow, bounds: tuple[float | None, float | None]) -> bool:
    """A reading at another bound than the window counts at (a missing one does not move it)."""
    return any(
        new is not None and (old is None or not math.isclose(old, new))
        for old, new in ((window.ttft_bound, bounds[0]), (window.tpot_bound, bounds[1]))
    )


def _missing(engine: Engine, names: tuple[str, ...], what: str) -> str | None:
    return None if names else f"{engine} exports no {what}-token histogram"


ledger = Ledger()
