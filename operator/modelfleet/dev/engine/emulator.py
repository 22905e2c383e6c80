"""`modelfleet emulate`: one process that stands in for every engine pod of the local cluster.

Every POLL_SECONDS it lists the modelfleet engine pods and their ModelDeployments (blocking
kubernetes-client calls, in a worker thread so the event loop keeps serving), and makes the set
of PodServers match the servable pods: a new Ready pod gets a server on podIP:8000, a pod that
is gone, terminating or not Ready loses it. Polling is level-based: nothing to resume after a
watch expires, and an API error only delays the next change (running servers keep serving).
A bind failure (the address is taken, e.g. by a second emulator) is logged and retried. Only
pods in the cluster's own pod range are served (see `pods.desired`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.api.types import GROUP, PLURAL, VERSION
from modelfleet.dev.engine.pods import POD_SELECTOR, PodFacts, desired
from modelfleet.dev.engine.server import PodServer, engine_profile
from modelfleet.render.engines import ENGINE_PORT

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0

Observe = Callable[[], dict[str, PodFacts]]


class KubeObserver:
    """Reads the servable engine pods (by uid) from the API server; blocking. With `pod_cidr`,
    only pods whose IP is in that range (the cluster's own pod range)."""

    def __init__(
        self, api_client: Any, namespaces: list[str] | None = None, pod_cidr: str | None = None
    ) -> None:
        self._api = api_client
        self._core: Any = client.CoreV1Api(api_client)
        self._custom: Any = client.CustomObjectsApi(api_client)
        self._namespaces = namespaces or []
        self._pod_cidr = pod_cidr

    def __call__(self) -> dict[str, PodFacts]:
        pods: list[dict[str, Any]] = []
        if self._namespaces:
            for namespace in self._namespaces:
                listed = self._core.list_namespaced_pod(namespace, label_selector=POD_SELECTOR)
                pods += self._api.sanitize_for_serialization(listed.items)
        else:
            listed = self._core.list_pod_for_all_namespaces(label_selector=POD_SELECTOR)
            pods = self._api.sanitize_for_serialization(listed.items)
        return desired(pods, self._model_deployments() if pods else {}, self._pod_cidr)

    def _model_deployments(self) -> dict[tuple[str, str], dict[str, Any]]:
        try:
            if self._namespaces:
                items = []
                for namespace in self._namespaces:
                    items += self._custom.list_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL
                    )["items"]
            else:
                items = self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        except ApiException as error:
            if error.status != 404:  # no CRD: serve from the pods' own facts
                raise
            return {}
        return {(md["metadata"]["namespace"], md["metadata"]["name"]): md for md in items}


class Emulator:
    """Keeps one PodServer per servable pod."""

    def __init__(
        self, observe: Observe, *, port: int = ENGINE_PORT, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self._observe = observe
        self._port = port
        self._poll_seconds = poll_seconds
        self.servers: dict[str, PodServer] = {}
        self._bind_errors: dict[str, str] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and sync until `stop` is set; then stop every server."""
        failing = False
        try:
            while not stop.is_set():
                try:
                    want = await asyncio.to_thread(self._observe)
                except Exception as error:
                    if not failing:
                        log.warning("cannot list pods (will retry): %s", error)
                    failing = True
                else:
                    if failing:
                        log.info("listing pods works again")
                    failing = False
                    await self.sync(want)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._poll_seconds)
        finally:
            await self.sync({})

    async def sync(self, want: dict[str, PodFacts]) -> None:
        """Stop servers of pods no longer wanted, start servers for new ones."""
        gone = [
            uid
            for uid, server in self.servers.items()
            if uid not in want or want[uid].ip != server.facts.ip
        ]
        await asyncio.gather(*(self._stop(uid) for uid in gone))
        for uid, facts in want.items():
            if uid not in self.servers:
                await self._start(uid, facts)
        for uid in list(self._bind_errors):
            if uid not in want:
                del self._bind_errors[uid]

    async def _start(self, uid: str, facts: PodFacts) -> None:
        try:
            profile, note = engine_profile(facts)
        except ValueError as error:  # even the fallback is unknown: a broken catalog
            log.error("not serving %s: %s", facts.key, error)
            return
        server = PodServer(facts, profile, port=self._port)
        try:
            await server.start()
        except OSError as error:
            if self._bind_errors.get(uid) != str(error):
                log.error("cannot serve %s on %s:%d: %s", facts.key, facts.ip, self._port, error)
            self._bind_errors[uid] = str(error)
            return
        self._bind_errors.pop(uid, None)
        self.servers[uid] = server
        level = logging.WARNING if "fallback" in note else logging.INFO
        log.log(
            level,
            "serving %s (%s) on %s:%d: %s",
            facts.key,
            facts.engine,
            facts.ip,
            self._port,
            note,
        )

    async def _stop(self, uid: str) -> None:
        server = self.servers.pop(uid)
        await server.stop()
        log.info("stopped %s on %s:%d", server.facts.key, server.facts.ip, self._port)
