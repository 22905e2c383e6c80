"""What the operator remembers of each deployment's cost between status writes, in memory.

Per deployment and pod (by uid): its GPU interval as the watch last showed it, its token
counters as the scrape loop read them (summed with the increase rule, so an engine restart
counts from zero), checkpoints of those sums over the last hour, and how much of them is in
status already. status/cost.py turns this into status.cost; handlers/modeldeployment.py writes
it and tells the ledger what was written.

Only the leader observes; a new leader starts empty and continues from status: spend from its
watermark, tokens from the written totals, a pod already counted before the watermark takes its
first scrape as a baseline (docs/cost.md states what that can lose). The cluster loop below puts
every GPU node's price and the cluster's split on /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf

from modelfleet.api.types import CostStatus, ModelDeployment
from modelfleet.cost import (
    ApiPrice,
    ApiPriceTable,
    CounterSample,
    GpuPod,
    NodePrice,
    PodInterval,
    Replica,
    Tokens,
    cluster_cost,
    default_api_prices,
    increase,
    node_prices,
)
from modelfleet.cost.budget import parse_namespace_budget
from modelfleet.handlers import metrics
from modelfleet.handlers.scrapes import PodSample
from modelfleet.plan.inventory import pod_gpus
from modelfleet.render.children import MANAGED_BY, OWNER_LABEL
from modelfleet.status.cost import WRITE_PERIOD_SECONDS, pod_intervals

__all__ = ["WRITE_PERIOD_SECONDS", "Ledger", "Seen", "ledger", "settings"]

log = logging.getLogger(__name__)

Owner = tuple[str, str]
CHECKPOINT_SECONDS = 30.0  # one remembered token sum per pod per this, for the last hour
KEEP_SECONDS = 3600.0 + 600.0  # the last hour, and time for the write that counts them
CLUSTER_SECONDS = 30.0  # the cluster's GPU cost on /metrics


@dataclass
class CostSettings:
    """How the operator prices and reports (set once at start-up by handlers/main.py)."""

    api_prices: ApiPriceTable = field(default_factory=default_api_prices)
    write_period: float = WRITE_PERIOD_SECONDS  # time-based status fields, at most this often
    opencost: bool = False  # also publish OpenCost's series names


settings = CostSettings()


@dataclass
class PodCost:
    """One pod as seen so far."""

    interval: PodInterval | None = None  # GPU interval as last seen (None: not bound yet)
    ended: bool = False  # gone from the watch
    last_seen: float = 0.0
    first: Tokens | None = None  # the engine's counters at the first scrape
    raw: CounterSample | None = None  # the latest scrape's counters, as exported
    counted: Tokens = field(default_factory=Tokens)  # increases since the first scrape
    checkpoints: list[CounterSample] = field(default_factory=list)  # counted, >= 30 s apart
    latest: CounterSample | None = None  # counted at the latest scrape
    from_zero: bool | None = None  # the first scrape counts whole (bound after what was counted)
    written: Tokens = field(default_factory=Tokens)  # of `effective`, already in status
    late_since: float | None = None  # seen bound only after a watermark: its time since this counts

    @property
    def effective(self) -> Tokens:
        if self.first is None or self.from_zero is None:
            return Tokens()
        return self.counted + self.first if self.from_zero else self.counted

    def replica(self, now: float) -> Replica | None:
        """The pod for the last-hour window computed at `now` (whole seconds, as the API's
        timestamps): a scrape recorded within the second before counts at `now`, not after
        the window's end."""
        if self.interval is None:
            return None
        if self.first is None or self.from_zero is None:
            return Replica(self.interval)
        base = self.first if self.from_zero else Tokens()
        points = list(self.checkpoints)
        if self.latest is not None and (not points or self.latest.time > points[-1].time):
            points.append(self.latest)
        samples = [
            CounterSample(
                min(p.time, now),
                (p.prompt or 0.0) + base.input,
                (p.generation or 0.0) + base.output,
            )
            for p in points
        ]
        if self.from_zero and samples and samples[0].time > self.interval.start:
            # The engine started from zero when the pod did: what the first scrape reports
            # counts when it is reported, even for a pod bound before the window began.
            samples.insert(0, CounterSample(self.interval.start, 0.0, 0.0))
        return Replica(self.interval, samples)


@dataclass(frozen=True)
class Seen:
    """One deployment's ledger at a status computation, and what to remember if it is written."""

    ended: list[PodInterval]
    late: list[PodInterval]  # bound before a watermark computed without them
    new_tokens: Tokens | None
    replicas: list[Replica]
    pending: dict[str, Tokens]  # uid -> effective tokens, to mark written
    pod_ended: bool  # a pod went away since the last look: write its time now


class Ledger:
    """Every deployment's pods and token counters (thread-safe: scrapes record in the event
    loop, status writes read in pooled threads)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._owners: dict[Owner, dict[str, PodCost]] = {}
        self._inherited: dict[Owner, float | None] = {}  # what earlier leaders counted up to
        self._watching: dict[Owner, float] = {}  # spend counted up to, at this term's first look
        self.started = _whole(clock())

    def restart(self) -> None:
        """A new term as leader: forget everything; status is where the last term left off."""
        with self._lock:
            self._owners.clear()
            self._inherited.clear()
            self._watching.clear()
            self.started = _whole(self._clock())

    def forget(self, owner: Owner) -> None:
        with self._lock:
            self._owners.pop(owner, None)
            self._inherited.pop(owner, None)
            self._watching.pop(owner, None)

    def record(self, sample: PodSample) -> None:
        """A scrape of one pod (the scrape loop's listener)."""
        engine = sample.engine
        if engine is None:
            return
        now = CounterSample(sample.unix_time, engine.prompt_tokens, engine.generation_tokens)
        with self._lock:
            pod = self._owners.setdefault(sample.pod.owner, {}).setdefault(
                sample.pod.uid, PodCost(last_seen=sample.unix_time)
            )
            if pod.raw is None:
                pod.first = Tokens(now.prompt or 0.0, now.generation or 0.0)
            else:
                pod.counted += increase(pod.raw, now)
            pod.raw = now
            pod.latest = CounterSample(now.time, pod.counted.input, pod.counted.output)
            if not pod.checkpoints or now.time - pod.checkpoints[-1].time >= CHECKPOINT_SECONDS:
                pod.checkpoints.append(pod.latest)
            horizon = now.time - KEEP_SECONDS
            while len(pod.checkpoints) > 2 and pod.checkpoints[1].time < horizon:
                pod.checkpoints.pop(0)

    def see(
        self,
        owner: Owner,
        pods: Sequence[Mapping[str, Any]],
        prices: Mapping[str, NodePrice],
        counted_until: float | None,
        now: float,
        accrued_until: float | None = None,
    ) -> Seen:
        """Bring the deployment's pods up to date with the watch and total what is unwritten.

        `counted_until`: status.cost.accruedUntil when status holds tokens (None: no tokens
        were ever written); `accrued_until`: status.cost.accruedUntil (None: never accrued).
        The first `counted_until` this leader sees is what earlier leaders counted:
        a pod bound after it counts every token its engine reports; an older one was counted up
        to then by an earlier leader, so its first scrape is a baseline.

        A pod this term first sees bound after its first look at the owner is `late`: the watch
        may deliver a binding after an accrual of the same second, whose watermark then skipped
        the pod's first moments; they count from its start until written (from the watermark
        of the first look at most: earlier leaders counted what they saw up to it).
        """
        intervals = {interval.uid: interval for interval in pod_intervals(pods, prices)}
        with self._lock:
            inherited = self._inherited.setdefault(owner, counted_until)
            first_look = owner not in self._watching
            watching = self._watching.setdefault(
                owner, -math.inf if accrued_until is None else accrued_until
            )
            ledger = self._owners.setdefault(owner, {})
            for uid, interval in intervals.items():
                pod = ledger.setdefault(uid, PodCost())
                if pod.interval is None and not first_look:
                    pod.late_since = watching
                pod.interval, pod.ended, pod.last_seen = interval, False, now
            pod_ended = False
            for uid, pod in ledger.items():
                if uid not in intervals and not pod.ended and pod.interval is not None:
                    pod.ended, pod_ended = True, True
                    if pod.interval.end is None:  # gone without being seen terminating
                        pod.interval = dataclasses.replace(pod.interval, end=pod.last_seen)
                if pod.from_zero is None and pod.first is not None and pod.interval is not None:
                    pod.from_zero = inherited is None or pod.interval.start >= inherited
            self._prune(ledger, now)
            counted = [pod for pod in ledger.values() if pod.from_zero is not None]
            pending = {
                uid: pod.effective for uid, pod in ledger.items() if pod.from_zero is not None
            }
            return Seen(
                ended=[p.interval for p in ledger.values() if p.ended and p.interval is not None],
                late=[
                    dataclasses.replace(p.interval, start=max(p.interval.start, p.late_since))
                    for p in ledger.values()
                    if p.late_since is not None and p.interval is not None
                ],
                new_tokens=(
                    sum((Tokens(*_difference(p.effective, p.written)) for p in counted), Tokens())
                    if counted
                    else None
                ),
                replicas=[r for p in ledger.values() if (r := p.replica(now)) is not None],
                pending=pending,
                pod_ended=pod_ended,
            )

    def written(self, owner: Owner, pending: Mapping[str, Tokens]) -> None:
        """The tokens of `pending` and the late pods' early time are in status now."""
        with self._lock:
            ledger = self._owners.get(owner, {})
            for uid, tokens in pending.items():
                if uid in ledger:
                    ledger[uid].written = tokens
            for pod in ledger.values():
                pod.late_since = None

    def _prune(self, ledger: dict[str, PodCost], now: float) -> None:
        """Drop pods gone for longer than the window whose tokens are all written."""
        for uid in [
            uid
            for uid, pod in ledger.items()
            if pod.ended
            and pod.interval is not None
            and (pod.interval.end or pod.last_seen) < now - KEEP_SECONDS
            and pod.effective == pod.written
        ]:
            del ledger[uid]

    def __len__(self) -> int:
        with self._lock:
            return sum(len(pods) for pods in self._owners.values())


def _whole(unix: float) -> float:
    """Counting starts at the whole second, like the API's timestamps: a pod bound in the same
    second as the term began (its PodScheduled time truncated) is counted from its start."""
    return float(int(unix))


def _difference(now: Tokens, before: Tokens) -> tuple[float, float]:
    return max(0.0, now.input - before.input), max(0.0, now.output - before.output)


ledger = Ledger()


def publish_deployment(md: ModelDeployment, cost: CostStatus, row: ApiPrice, pods: int) -> None:
    """One deployment's cost series, from its fresh cost block (fresher than its status)."""
    owner = (md.metadata.namespace, md.metadata.name)
    tokens, per_million = cost.tokens, cost.per_million_tokens
    metrics.DEPLOYMENT_COSTS.deployments[owner] = metrics.DeploymentCost(
        hourly=cost.hourly,
        spend=cost.spend,
        replicas=pods,
        gpus=cost.gpus,
        compare_to=row.key,
        api_price=(row.input, row.output),
        tokens=(tokens.input, tokens.output) if tokens is not None else None,
        per_million=(per_million.output, per_million.total) if per_million is not None else None,
        api_equivalent=cost.api_equivalent.usd if cost.api_equivalent is not None else None,
        idle_gpu_hours=cost.idle_gpu_hours,
        budget=md.spec.budget.max_hourly if md.spec.budget is not None else None,
    )


def forget(owner: Owner) -> None:
    """A deleted deployment: its ledger goes (metrics.forget drops its series)."""
    ledger.forget(owner)


def gpu_pods(pods: Iterable[Mapping[str, Any]]) -> list[GpuPod]:
    """Pods of the gpu_pods index as cost sees them: node, GPUs, and the owner of engine pods."""
    found = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        owner = (
            (str(meta.get("namespace")), str(labels[OWNER_LABEL]))
            if labels.get("app.kubernetes.io/managed-by") == MANAGED_BY and labels.get(OWNER_LABEL)
            else None
        )
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        found.append(GpuPod(node, pod_gpus(pod), owner))
    return found


def publish_cluster(
    nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]], memo: kopf.Memo
) -> None:
    """Every GPU node's price, the cluster's GPU cost split and the namespace budgets, on
    /metrics."""
    prices = node_prices(nodes, memo.prices)
    split = cluster_cost(prices, gpu_pods(pods))
    metrics.NODE_GPU_HOURLY.clear()
    for price in prices.values():
        if price.usd_per_gpu_hour is not None:
            metrics.NODE_GPU_HOURLY.labels(price.node, price.product or "").set(
                price.usd_per_gpu_hour
            )
    for allocation, usd, gpus in (
        ("modelfleet", split.modelfleet_hourly, sum(n.modelfleet_gpus for n in split.nodes)),
        ("other", split.other_hourly, sum(n.other_gpus for n in split.nodes)),
        ("idle", split.free_hourly, sum(n.free_gpus for n in split.nodes)),
    ):
        metrics.CLUSTER_HOURLY.labels(allocation).set(usd)
        metrics.CLUSTER_GPUS.labels(allocation).set(gpus)
    metrics.NAMESPACE_BUDGET_HOURLY.clear()
    for namespace, values in memo.indexes.budget_namespaces.items():
        for value in values:
            with contextlib.suppress(ValueError):  # invalid: logged where budgets are read
                budget = parse_namespace_budget(value)
                if budget is not None:
                    metrics.NAMESPACE_BUDGET_HOURLY.labels(namespace).set(budget)
    if memo.get("opencost"):
        metrics.publish_opencost(prices.values(), _engine_pods(memo))


def _engine_pods(memo: kopf.Memo) -> list[Mapping[str, Any]]:
    return [pod for pods in memo.indexes.engine_pods.values() for pod in pods]


async def cluster_loop(memo: kopf.Memo) -> None:
    """Publish the cluster's GPU cost every CLUSTER_SECONDS until cancelled (with kopf)."""
    while "indexes" not in memo:  # kopf's start-up handler puts them there
        await asyncio.sleep(0.5)
    while True:
        try:
            nodes = list(memo.indexes.gpu_nodes.get(None, []))
            pods = list(memo.indexes.gpu_pods.get(None, []))
            publish_cluster(nodes, pods, memo)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not end the loop
            metrics.HANDLER_ERRORS.labels("cost").inc()
            log.exception("publishing the cluster's GPU cost failed")
        await asyncio.sleep(CLUSTER_SECONDS)
