"""Leader election on a coordination.k8s.io Lease: only the holder runs the operator's writers.

Two operator instances (a rolling update, replicas: 2 for fail-over) would otherwise apply
children, write status and scale from two memories. The rules are client-go's:
- a candidate takes the lease only after it has watched the holder's record stay unchanged for a
  whole lease duration, timed by its own monotonic clock (never the holder's renewTime against the
  local wall clock: clocks of two nodes disagree);
- the leader renews every retry period and steps down when it has not renewed for the renew
  deadline, which is shorter than the lease duration, so it stops acting before anyone else may
  start;
- every write is a compare-and-swap on resourceVersion, and no error ends the loop: an API server
  restart is a few failed rounds, not the end of leadership elections.

Hand-rolled because the kubernetes client's leaderelection dies on network errors (its LeaseLock
catches only ApiException), reads the global default configuration, and sets no request timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from modelfleet.kube.client import Kube

log = logging.getLogger(__name__)

LEASE_API = "coordination.k8s.io/v1"


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's defaults: fail-over within lease_seconds of the leader's last renewal."""

    lease_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0
    request_timeout_seconds: float = 4.0

    def __post_init__(self) -> None:
        if not (
            self.retry_seconds < self.renew_deadline_seconds < self.lease_seconds
            and self.request_timeout_seconds < self.renew_deadline_seconds
        ):
            raise ValueError("want retry < renew deadline < lease, request timeout < deadline")


@dataclass(frozen=True)
class Sighting:
    """A holder's lease record and the local monotonic time it was first seen unchanged."""

    record: tuple[Any, ...]
    since: float


def sight(previous: Sighting | None, spec: dict[str, Any], now: float) -> Sighting:
    """Keep the first-seen time while the record is unchanged; a new record restarts the clock."""
    record = (
        spec.get("holderIdentity"),
        spec.get("renewTime"),
        spec.get("acquireTime"),
        spec.get("leaseTransitions"),
        spec.get("leaseDurationSeconds"),
    )
    if previous is not None and previous.record == record:
        return previous
    return Sighting(record, now)


def may_take(sighting: Sighting, identity: str, now: float, timing: LeaseTiming) -> bool:
    """Free, ours, or unchanged for the whole lease duration it states (by our own clock)."""
    holder, duration = sighting.record[0], sighting.record[4]
    if not holder or holder == identity:
        return True
    return now >= sighting.since + float(duration or timing.lease_seconds)


class LeaderElector:
    """Campaigns for the lease in a thread; `held` says whether this instance may write now."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube, self._namespace, self._name, self.identity = kube, namespace, name, identity
        self.timing = timing or LeaseTiming()
        self._clock = clock
        self._renewed_at: float | None = None  # start of the last successful acquire or renew
        self._sighting: Sighting | None = None
        self._leading = False
        self._heartbeat = clock()
        self._on_lost: Callable[[], None] = lambda: None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="leader-election", daemon=True)

    @property
    def held(self) -> bool:
        """Renewed within the renew deadline: the only test writers may rely on."""
        renewed = self._renewed_at
        return renewed is not None and self._clock() < renewed + self.timing.renew_deadline_seconds

    @property
    def alive(self) -> bool:
        """The campaign loop runs and has come round recently (the liveness probe's question)."""
        overdue = self.timing.retry_seconds + 2 * self.timing.request_timeout_seconds + 5
        return self._thread.is_alive() and self._clock() - self._heartbeat < overdue

    @property
    def holder(self) -> str | None:
        return None if self._sighting is None else self._sighting.record[0]

    def start(self, on_lost: Callable[[], None] = lambda: None) -> None:
        """Start campaigning; on_lost runs (in the thread) once if leadership is lost."""
        self._on_lost = on_lost
        self._thread.start()

    def wait_held(self, timeout: float) -> bool:
        deadline = self._clock() + timeout
        while not self.held and self._clock() < deadline and not self._stop.is_set():
            self._stop.wait(0.1)
        return self.held

    def stop(self) -> None:
        """Stop campaigning and hand the lease over at once, so a successor need not wait."""
        was_held = self.held
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timing.request_timeout_seconds + 1)
        self._renewed_at = None
        if was_held:
            try:
                lease = self._read()
                if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                    self._write({"holderIdentity": None, "leaseDurationSeconds": 1}, lease)
            except Exception as error:  # best effort on the way out
                log.info("could not release the leader lease: %s", error)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._heartbeat = self._clock()
            self.campaign_once()
            self._stop.wait(self.timing.retry_seconds)

    def campaign_once(self) -> None:
        """One round: acquire or renew if allowed; step down after the renew deadline."""
        started = self._clock()
        try:
            if self._try_acquire_or_renew(started):
                self._renewed_at = started
        except Exception as error:  # any failure is one failed round
            log.warning("leader lease %s/%s: %s", self._namespace, self._name, error)
        if self.held and not self._leading:
            self._leading = True
            log.info("leading: acquired the leader lease %s/%s", self._namespace, self._name)
        elif self._leading and not self.held:
            self._leading = False
            log.error("lost the leader lease %s/%s (holder: %s)", *self._key(), self.holder)
            self._on_lost()

    def _key(self) -> tuple[str, str]:
        return self._namespace, self._name

    def _try_acquire_or_renew(self, now: float) -> bool:
        lease = self._read()
        spec = (lease or {}).get("spec") or {}
        self._sighting = sight(self._sighting, spec, now)
        if lease is not None and not may_take(self._sighting, self.identity, now, self.timing):
            return False
        holder = spec.get("holderIdentity")
        stamp = _micro_time(datetime.now(UTC))
        update: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.timing.lease_seconds),
            "renewTime": stamp,
        }
        if holder != self.identity:
            update["acquireTime"] = stamp
            update["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
                1 if holder else 0
            )
        try:
            written = self._write(update, lease)
        except (ConflictError, NotFoundError):
            return False  # someone else wrote or deleted it first; look again next round
        self._sighting = sight(self._sighting, (written or {}).get("spec") or {}, now)
        return True

    def _read(self) -> dict[str, Any] | None:
        try:
            found = self._resource().get(
                name=self._name,
                namespace=self._namespace,
                _request_timeout=self.timing.request_timeout_seconds,
            )
        except NotFoundError:
            return None
        lease: dict[str, Any] = found.to_dict()
        return lease

    def _write(self, spec_update: dict[str, Any], lease: dict[str, Any] | None) -> dict[str, Any]:
        timeout = self.timing.request_timeout_seconds
        if lease is None:
            body = {
                "apiVersion": LEASE_API,
                "kind": "Lease",
                "metadata": {"name": self._name, "namespace": self._namespace},
                "spec": spec_update,
            }
            created = self._resource().create(
                body=body, namespace=self._namespace, _request_timeout=timeout
            )
            result: dict[str, Any] = created.to_dict()
            return result
        # resourceVersion makes this a compare-and-swap: two candidates cannot both win.
        body = {**lease, "spec": {**(lease.get("spec") or {}), **spec_update}}
        replaced = self._resource().replace(
            body=body, name=self._name, namespace=self._namespace, _request_timeout=timeout
        )
        result = replaced.to_dict()
        return result

    def _resource(self) -> Any:
        return self._kube.resource(LEASE_API, "Lease")


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
