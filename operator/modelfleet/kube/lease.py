"""Leader election on a coordination.k8s.io Lease: only the holder runs the autoscaler.

Two operator instances (a rolling update, a mistaken replicas: 2) would otherwise scale the same
deployment from two memories. Reconciles stay on in every instance: they are server-side applies
of the same desired objects, so running them twice is harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.dynamic.exceptions import ConflictError, DynamicApiError, NotFoundError

from modelfleet.kube.client import Kube

log = logging.getLogger(__name__)

LEASE_SECONDS = 15  # a crashed holder is replaced within this; client-go's default is 15 s too


class LeaderLease:
    def __init__(self, kube: Kube, namespace: str, name: str, identity: str) -> None:
        self._kube, self._namespace, self._name, self._identity = kube, namespace, name, identity
        self._held_until = 0.0  # monotonic time until which we hold it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="leader-lease", daemon=True)

    @property
    def held(self) -> bool:
        return time.monotonic() < self._held_until

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and hand the lease over at once, so a successor need not wait."""
        self._stop.set()
        self._thread.join(timeout=5)
        if self.held:
            self._held_until = 0.0
            try:
                self._write({"holderIdentity": None}, self._read())
            except DynamicApiError as error:
                log.info("could not release the lease: %s", error)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._try_hold()
            except DynamicApiError as error:
                log.warning("leader lease %s/%s: %s", self._namespace, self._name, error)
            self._stop.wait(LEASE_SECONDS / 3)

    def _try_hold(self) -> None:
        started = time.monotonic()
        lease = self._read()
        spec = (lease or {}).get("spec") or {}
        holder = spec.get("holderIdentity")
        if holder and holder != self._identity and not _expired(spec):
            if self.held:
                log.warning("lost the leader lease to %s", holder)
            self._held_until = 0.0
            return
        now = _micro_time(datetime.now(UTC))
        update: dict[str, Any] = {
            "holderIdentity": self._identity,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now,
        }
        if holder != self._identity:
            update["acquireTime"] = now
            update["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
                1 if holder else 0
            )
        try:
            self._write(update, lease)
        except (ConflictError, NotFoundError):
            return  # someone else wrote or deleted it first; look again next round
        if not self.held:
            log.info("acquired the leader lease %s/%s", self._namespace, self._name)
        self._held_until = started + LEASE_SECONDS

    def _read(self) -> dict[str, Any] | None:
        return self._kube.get("coordination.k8s.io/v1", "Lease", self._name, self._namespace)

    def _write(self, spec_update: dict[str, Any], lease: dict[str, Any] | None) -> None:
        resource = self._kube.resource("coordination.k8s.io/v1", "Lease")
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self._name, "namespace": self._namespace},
                "spec": spec_update,
            }
            resource.create(body=body, namespace=self._namespace)
            return
        # resourceVersion makes this a compare-and-swap: two candidates cannot both win.
        body = {**lease, "spec": {**(lease.get("spec") or {}), **spec_update}}
        resource.replace(body=body, name=self._name, namespace=self._namespace)


def _expired(spec: dict[str, Any]) -> bool:
    renewed = spec.get("renewTime")
    if not renewed:
        return True
    duration = int(spec.get("leaseDurationSeconds") or LEASE_SECONDS)
    renewed_at = datetime.fromisoformat(str(renewed).replace("Z", "+00:00"))
    return datetime.now(UTC) > renewed_at + timedelta(seconds=duration)


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
