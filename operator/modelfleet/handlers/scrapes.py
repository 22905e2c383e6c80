"""One scrape loop per engine pod, and the latest sample of each: the operator's engine numbers.

Every modelfleet engine pod is scraped, autoscaled or not: the autoscaler reads load from here,
cost reads the token counters and SLO reports the latency histograms (at the bounds each
deployment's targets need, `Loops.targets`). A pod event handler (no finalizer; kopf
shares one Pod watch among all the operator's pod handlers and indexes) keeps the set of pods to
scrape: each Running, Ready pod with an IP. `Loops.run`, started and stopped with kopf by
handlers/main.py (so only the leader scrapes), keeps one asyncio task per such pod, which
scrapes the pod's engine /metrics every few seconds through the operator's one Scraper (one
capped connection pool): a thousand pods cost a thousand small tasks and at most 64 sockets,
never a thread. A pod that is gone, not ready, or whose operator stopped leading is not
scraped, and its sample is dropped.

A pod that does not answer is recorded as unknown, never idle, and so is a sample older than two
scrape periods plus the scrape timeout (`PodSample.fresh`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import kopf

from modelfleet.api.types import Engine
from modelfleet.autoscale.policy import PodLoad
from modelfleet.cost import kube_time
from modelfleet.handlers import metrics
from modelfleet.kube.scrape import (
    DEFAULT_TARGETS,
    SCRAPE_TIMEOUT_SECONDS,
    EngineSample,
    Scraper,
    Targets,
)
from modelfleet.render.children import ENGINE_LABEL, MANAGED_BY, OWNER_LABEL, serving
from modelfleet.render.engines import EngineProfile, profile

log = logging.getLogger(__name__)

# Seconds between two scrapes of one pod; a pod of an autoscaled deployment with a shorter
# autoscaling.intervalSeconds is scraped at that interval instead (Loops.pace).
SCRAPE_SECONDS = 5.0
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
POD_LABELS: Mapping[str, Any] = {MANAGED_BY_LABEL: MANAGED_BY, OWNER_LABEL: kopf.PRESENT}

PodKey = tuple[str, str]  # namespace, pod name
Owner = tuple[str, str]  # namespace, ModelDeployment name


@dataclass(frozen=True)
class EnginePod:
    """A pod to scrape, and everything its scrape needs, read from the pod alone."""

    namespace: str
    name: str
    uid: str
    deployment: str
    ip: str
    engine: Engine
    started: float | None = None  # unix time the engine container started (its counters' zero)

    @property
    def key(self) -> PodKey:
        return self.namespace, self.name

    @property
    def owner(self) -> Owner:
        return self.namespace, self.deployment

    @property
    def profile(self) -> EngineProfile:
        return profile(self.engine)


def engine_pod(pod: Mapping[str, Any]) -> EnginePod | None:
    """The pod to scrape; None when it is not serving, or it does not say its owner or engine
    (the engine label is on every pod modelfleet renders, so no spec read is needed)."""
    if not serving(pod):
        return None
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    try:
        engine = Engine(str(labels.get(ENGINE_LABEL)))
    except ValueError:
        return None
    deployment = labels.get(OWNER_LABEL)
    if not deployment:
        return None
    return EnginePod(
        namespace=str(meta.get("namespace")),
        name=str(meta.get("name")),
        uid=str(meta.get("uid")),
        deployment=str(deployment),
        ip=str(pod["status"]["podIP"]),
        engine=engine,
        started=_container_started(pod),
    )


def _container_started(pod: Mapping[str, Any]) -> float | None:
    """When the latest of the pod's running containers started (unix), if the kubelet says."""
    times = []
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        started = ((container.get("state") or {}).get("running") or {}).get("startedAt")
        if started:
            try:
                times.append(kube_time(str(started)))
            except ValueError:
                continue
    return max(times, default=None)


@dataclass(frozen=True)
class PodSample:
    """The latest scrape of one pod."""

    pod: EnginePod
    time: float  # time.monotonic() when the scrape ended (answer or not): ages and deltas
    period: float  # seconds between this pod's scrapes when it was taken
    engine: EngineSample | None  # None: the pod did not answer, or not with its engine's metrics
    unix_time: float  # time.time() at the same moment, for reports in wall-clock windows
    # time (monotonic) of the first of the unanswered scrapes up to this one; None: it answered
    unanswered_since: float | None = None

    @property
    def stale_after(self) -> float:
        """Age at which the sample means nothing: two scrapes missed, the last one timed out."""
        return 2 * self.period + SCRAPE_TIMEOUT_SECONDS

    def fresh(self, now: float) -> bool:
        return 0 <= now - self.time <= self.stale_after


class Samples:
    """The latest sample of each pod being scraped, by owner (pure bookkeeping)."""

    def __init__(self) -> None:
        self._by_owner: dict[Owner, dict[str, PodSample]] = {}
        self.listeners: list[Callable[[PodSample], None]] = []  # e.g. the cost ledger

    def record(self, sample: PodSample) -> None:
        pods = self._by_owner.setdefault(sample.pod.owner, {})
        if sample.engine is None:
            before = pods.get(sample.pod.name)
            since = sample.time
            if before is not None and before.pod.uid == sample.pod.uid and before.engine is None:
                since = before.unanswered_since if before.unanswered_since is not None else since
            sample = replace(sample, unanswered_since=since)
        pods[sample.pod.name] = sample
        for listener in self.listeners:
            listener(sample)

    def forget(self, pod: EnginePod) -> None:
        pods = self._by_owner.get(pod.owner)
        if pods is not None:
            pods.pop(pod.name, None)
            if not pods:
                del self._by_owner[pod.owner]

    def clear(self) -> None:
        self._by_owner.clear()

    def of_deployment(self, namespace: str, deployment: str) -> list[PodSample]:
        """The latest sample of each of the deployment's pods being scraped, fresh or not."""
        return list(self._by_owner.get((namespace, deployment), {}).values())

    def load(self, pod: Mapping[str, Any], now: float) -> PodLoad | None:
        """The pod's load from a fresh answer of this very pod (same uid); None: unknown."""
        meta = pod.get("metadata") or {}
        owner = (str(meta.get("namespace")), str((meta.get("labels") or {}).get(OWNER_LABEL)))
        sample = self._by_owner.get(owner, {}).get(str(meta.get("name")))
        if sample is None or sample.engine is None or sample.pod.uid != str(meta.get("uid")):
            return None
        return sample.engine.load if sample.fresh(now) else None

    def __len__(self) -> int:
        return sum(len(pods) for pods in self._by_owner.values())


class Loops:
    """Which pods to scrape (fed by the pod watch) and, while `run` runs, one task scraping each.

    `run` is the only place tasks start or stop: the watch handler records what it saw and
    wakes it, so when kopf stops (leadership lost) every task stops with `run`, and a new
    leader starts from kopf's fresh listing.
    """

    def __init__(
        self,
        samples: Samples,
        period: float = SCRAPE_SECONDS,
        jitter: Callable[[], float] = random.random,
        targets: Callable[[Owner], Targets] = lambda owner: DEFAULT_TARGETS,
    ) -> None:
        self.samples = samples
        self.period = period
        self._jitter = jitter
        self.targets = targets  # SLO targets by deployment (handlers/slo.py's ledger)
        self._wanted: dict[PodKey, EnginePod] = {}
        self._paces: dict[Owner, float] = {}
        self._tasks: dict[PodKey, tuple[EnginePod, asyncio.Task[None]]] = {}
        self._last_calls: set[PodKey] = set()
        self._finals: dict[PodKey, asyncio.Task[None]] = {}  # terminating pods' last scrapes
        self._wake: asyncio.Event | None = None

    def want(self, key: PodKey, pod: EnginePod | None, last_call: bool = False) -> None:
        """The pod as the watch last saw it: scrape it, or (None) stop scraping it; with
        `last_call` (it is terminating) once more first, for what it served since the last
        scrape."""
        if pod is None:
            self._wanted.pop(key, None)
            if last_call and key in self._tasks:
                self._last_calls.add(key)
        else:
            self._wanted[key] = pod
        if self._wake is not None:
            self._wake.set()

    def pace(self, owner: Owner, seconds: float | None) -> None:
        """Scrape the deployment's pods at least every `seconds` (its autoscaling interval);
        None goes back to the default period."""
        if seconds is None:
            self._paces.pop(owner, None)
        else:
            self._paces[owner] = seconds

    def period_of(self, pod: EnginePod) -> float:
        return min(self.period, self._paces.get(pod.owner, self.period))

    @property
    def scraping(self) -> set[PodKey]:
        return set(self._tasks)

    async def run(self, scraper: Scraper) -> None:
        """Keep one task per wanted pod until cancelled (when kopf stops); then stop them all
        and forget every pod and sample."""
        self._wake = asyncio.Event()
        try:
            while True:
                self._wake.clear()
                self._converge(scraper)
                await self._wake.wait()
        finally:
            self._wake = None
            tasks = [task for _, task in self._tasks.values()] + list(self._finals.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.clear()
            self._finals.clear()
            self._wanted.clear()
            self._paces.clear()
            self.samples.clear()
            metrics.ENGINE_PODS_SCRAPED.set(0)

    def _converge(self, scraper: Scraper) -> None:
        for key, (pod, task) in list(self._tasks.items()):
            if self._wanted.get(key) != pod:  # gone, not ready, or changed (new IP or engine)
                task.cancel()
                del self._tasks[key]
                self.samples.forget(pod)
                if key in self._last_calls and key not in self._finals:
                    self._finals[key] = asyncio.create_task(self._scrape_once(scraper, pod))
        self._last_calls.clear()
        for key, pod in self._wanted.items():
            if key not in self._tasks:
                self._tasks[key] = (pod, asyncio.create_task(self._scrape(scraper, pod)))
        owners = {pod.owner for pod in self._wanted.values()}
        for owner in set(self._paces) - owners:
            del self._paces[owner]  # no pod left to pace; the autoscaler sets it again
        metrics.ENGINE_PODS_SCRAPED.set(len(self._tasks))

    async def _scrape_once(self, scraper: Scraper, pod: EnginePod) -> None:
        """A terminating pod's last scrape, for its counters; its sample is not kept for load."""
        try:
            started = time.monotonic()
            sample = await scraper.sample(pod.ip, pod.profile, self.targets(pod.owner))
            ended = time.monotonic()
            if sample is not None:
                final = PodSample(pod, ended, self.period_of(pod), sample, time.time())
                for listener in self.samples.listeners:
                    listener(final)
            metrics.ENGINE_SCRAPES.labels("ok" if sample is not None else "unknown").inc()
            metrics.ENGINE_SCRAPE_SECONDS.observe(ended - started)
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.HANDLER_ERRORS.labels("scrape").inc()
            log.exception("the last scrape of %s/%s failed", *pod.key)
        finally:
            self._finals.pop(pod.key, None)

    async def _scrape(self, scraper: Scraper, pod: EnginePod) -> None:
        """Scrape at once, then every period (spread by +-10% so pods drift apart)."""
        while True:
            period = self.period_of(pod)
            started = time.monotonic()
            try:
                sample = await scraper.sample(pod.ip, pod.profile, self.targets(pod.owner))
                ended = time.monotonic()
                self.samples.record(PodSample(pod, ended, period, sample, time.time()))
                metrics.ENGINE_SCRAPES.labels("ok" if sample is not None else "unknown").inc()
                metrics.ENGINE_SCRAPE_SECONDS.observe(ended - started)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the pod's scrapes: count, log, go on
                metrics.HANDLER_ERRORS.labels("scrape").inc()
                log.exception("scraping %s/%s failed", *pod.key)
            spread = period * (0.9 + 0.2 * self._jitter())
            await asyncio.sleep(max(0.0, started + spread - time.monotonic()))


samples = Samples()
loops = Loops(samples)


@kopf.on.event("", "v1", "pods", labels=POD_LABELS)
async def track(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """Keep the set of pods to scrape level with the watch."""
    key = (str(body.metadata.namespace), str(body.metadata.name))
    deleted = event.get("type") == "DELETED"
    terminating = bool(body.metadata.get("deletionTimestamp"))
    loops.want(key, None if deleted else engine_pod(body), last_call=terminating and not deleted)


async def run(memo: kopf.Memo) -> None:
    """Scrape every serving engine pod until cancelled (handlers/main.py, with kopf)."""
    await loops.run(memo.scraper)
