"""Periodic work without kopf timers or daemons: the resync of every ModelDeployment and the
autoscaler intervals.

kopf's timers and daemons put a finalizer on every object they serve, so a ModelDeployment
deleted while no operator runs would hang, and its namespace with it; they also cost a task per
object and kind. Here one loop keeps the due times of every known object and starts at most
MAX_RUNNING pieces of work at once, each through the object's lock like every other handler.
The objects come from a watch event handler, which needs no finalizer either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import kopf

from modelfleet.api.types import GROUP, PLURAL, VERSION
from modelfleet.autoscale.policy import AutoscalerState
from modelfleet.cost.budget import NAMESPACE_BUDGET_ANNOTATION, parse_namespace_budget
from modelfleet.handlers import autoscaler, budgets, costs, metrics, slo
from modelfleet.handlers.modeldeployment import RESYNC_SECONDS, measured, seeing, serial
from modelfleet.kube.client import Kube, NotLeader

log = logging.getLogger(__name__)

Key = tuple[str, str]
Kind = Literal["resync", "autoscale"]
MAX_RUNNING = 32  # pieces of periodic work in flight; the rest wait for the next tick
TICK_SECONDS = 0.5


@dataclass
class Entry:
    resync_due: float
    autoscale_due: float | None = None  # None: not autoscaled
    autoscale_interval: float = 0.0
    state: AutoscalerState | None = None  # the autoscaler's memory of recent load
    busy: set[str] = field(default_factory=set)


class Schedule:
    """Due times per object; pure bookkeeping, driven by a clock the caller passes in."""

    def __init__(
        self,
        resync_seconds: float,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.resync_seconds = resync_seconds
        self._jitter = jitter
        self.entries: dict[Key, Entry] = {}

    def observe(self, key: Key, autoscale_interval: float | None, now: float) -> None:
        """The object exists (again); autoscale_interval None means it is not autoscaled."""
        entry = self.entries.get(key)
        if entry is None:
            # Spread first resyncs over a period: a restart must not resync everything at once.
            entry = self.entries[key] = Entry(resync_due=now + self._jitter() * self.resync_seconds)
        if autoscale_interval is None:
            entry.autoscale_due, entry.state = None, None
        elif entry.autoscale_due is None:
            entry.autoscale_due = now + self._jitter() * autoscale_interval
        entry.autoscale_interval = autoscale_interval or 0.0

    def forget(self, key: Key) -> None:
        self.entries.pop(key, None)

    def hurry(self, namespace: str, now: float, but: Key | None = None) -> None:
        """Make the resync of every object of `namespace` (except `but`) due now: something
        their namespace budget shares changed."""
        for key, entry in self.entries.items():
            if key[0] == namespace and key != but:
                entry.resync_due = min(entry.resync_due, now)

    def due(self, now: float, limit: int) -> list[tuple[Key, Kind]]:
        """Work due now, at most `limit`: autoscaler intervals first (they are late when they
        wait; a resync is a safety net), then earliest first. Each is marked busy until done."""
        candidates: list[tuple[float, Key, Kind]] = []
        for key, entry in self.entries.items():
            if "resync" not in entry.busy and entry.resync_due <= now:
                candidates.append((entry.resync_due, key, "resync"))
            due = entry.autoscale_due
            if "autoscale" not in entry.busy and due is not None and due <= now:
                candidates.append((due, key, "autoscale"))
        chosen = sorted(candidates, key=lambda c: (c[2] != "autoscale", c[0], c[1]))[
            : max(0, limit)
        ]
        for _, key, kind in chosen:
            self.entries[key].busy.add(kind)
        return [(key, kind) for _, key, kind in chosen]

    def waiting(self, now: float) -> int:
        """Work due now and not started (the limit held it back): the queue of pending work."""
        count = 0
        for entry in self.entries.values():
            count += "resync" not in entry.busy and entry.resync_due <= now
            due = entry.autoscale_due
            count += "autoscale" not in entry.busy and due is not None and due <= now
        return count

    def done(self, key: Key, kind: Kind, started: float, interval: float | None = None) -> None:
        """The work started at `started` ended; the next is due an interval after that start."""
        entry = self.entries.get(key)
        if entry is None:
            return  # deleted meanwhile
        entry.busy.discard(kind)
        if kind == "resync":
            entry.resync_due = started + self.resync_seconds
        elif entry.autoscale_due is not None:
            entry.autoscale_due = started + (interval or entry.autoscale_interval)

    def __len__(self) -> int:
        return len(self.entries)


schedule = Schedule(RESYNC_SECONDS)


# What each object's namespace-budget share depends on, as last seen (budgets.claim_digest).
_claims: dict[Key, tuple[Any, ...]] = {}
# Each namespace's budget annotation as last seen.
_namespace_budgets: dict[str, str | None] = {}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def track(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Keep the schedule's object set level with the cluster's; when a change can move the
    namespace budget's shares, resync the namespace's other objects now."""
    key = (str(body.metadata.namespace), str(body.metadata.name))
    if event.get("type") == "DELETED":
        schedule.forget(key)
        serial.forget(key)
        metrics.forget(*key)
        costs.forget(key)
        slo.ledger.forget(key)
        budgets.forget(key)
        if _claims.pop(key, None) is not None and budgets.has_budget(memo.indexes, key[0]):
            schedule.hurry(key[0], time.monotonic())
        return
    digest = budgets.claim_digest(body)
    if _claims.get(key) != digest:
        _claims[key] = digest
        if budgets.has_budget(memo.indexes, key[0]):
            schedule.hurry(key[0], time.monotonic(), but=key)
    spec = body.get("spec") or {}
    autoscaled = spec.get("maxReplicas") is not None
    interval = float((spec.get("autoscaling") or {}).get("intervalSeconds") or 0) or (
        autoscaler.DEFAULT_INTERVAL
    )
    schedule.observe(key, interval if autoscaled else None, time.monotonic())
    if not autoscaled:
        metrics.forget_autoscaler(*key)  # autoscaling off: its decision series goes (only)


@kopf.on.event("", "v1", "namespaces")
async def namespace_budget_changed(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """A namespace budget set, changed or removed: every object of it resyncs now."""
    name = str(body.metadata.name)
    if event.get("type") == "DELETED":
        _namespace_budgets.pop(name, None)
        return
    value = (body.metadata.annotations or {}).get(NAMESPACE_BUDGET_ANNOTATION)
    if _namespace_budgets.get(name) != value:
        _namespace_budgets[name] = value
        schedule.hurry(name, time.monotonic())
        await _warn_if_invalid(memo.kube, body, value)


async def _warn_if_invalid(kube: Kube, body: kopf.Body, value: str | None) -> None:
    """An invalid namespace budget caps nothing: a Warning Event on the Namespace says so where
    the cluster admin who set it looks (`kubectl describe namespace`); the log says it too."""
    try:
        parse_namespace_budget(value)
        return
    except ValueError as error:
        message = f"annotation {NAMESPACE_BUDGET_ANNOTATION} {error}; no namespace budget applies"
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": body.metadata.name, "uid": body.metadata.uid},
    }
    with contextlib.suppress(NotLeader):  # not leading: the leader posts it
        await asyncio.to_thread(kube.post_event, namespace, "Warning", "InvalidBudget", message)


async def run(memo: kopf.Memo) -> None:
    """Start due work every tick until cancelled (when kopf stops); then cancel what runs."""
    running: set[asyncio.Task[None]] = set()
    try:
        while True:
            for key, kind in schedule.due(time.monotonic(), MAX_RUNNING - len(running)):
                task = asyncio.create_task(_perform(memo, key, kind))
                running.add(task)
                task.add_done_callback(running.discard)
            metrics.PERIODIC_RUNNING.set(len(running))
            metrics.PERIODIC_WAITING.set(schedule.waiting(time.monotonic()))
            await asyncio.sleep(TICK_SECONDS)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def _perform(memo: kopf.Memo, key: Key, kind: Kind) -> None:
    started = time.monotonic()
    interval: float | None = None
    try:
        if kind == "resync":
            await serial.run_seeing(
                key, seeing(memo, key), measured, "timer", memo, *key, raise_on_invalid=False
            )
        else:
            entry = schedule.entries.get(key)
            state = entry.state if entry is not None else None
            state, interval = await autoscaler.run_interval(memo, key, state)
            if entry is not None:
                entry.state = state
            if interval is None:
                schedule.forget(key)  # gone
                return
    except asyncio.CancelledError:
        raise
    except Exception as error:  # one failed round must not stop the object's schedule
        log.warning("%s/%s: periodic %s failed: %s", *key, kind, error)
    schedule.done(key, kind, started, interval)
