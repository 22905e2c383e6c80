"""The only code that talks to the Kubernetes API server.

Writes are server-side applies under one field manager, so applying the same desired object
again is a no-op and fields other managers own are left alone. "Already exists", "not found" and
conflicts on the way are expected in a level-based operator and are not errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from kubernetes import config
from kubernetes.client import ApiClient
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError
from kubernetes.dynamic.resource import Resource

from modelfleet.api.types import API_VERSION, KIND

FIELD_MANAGER = "modelfleet"
# No call may hang a pooled thread for good when the API server stops answering mid-request.
REQUEST_TIMEOUT_SECONDS = 30

log = logging.getLogger(__name__)


def load_api_client(kubeconfig: str | None = None) -> ApiClient:
    """An API client from a kubeconfig path, the default kubeconfig, or the in-cluster account."""
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        return config.new_client_from_config()
    return ApiClient()


class NotLeader(RuntimeError):
    """A write was refused because this instance does not hold the leader lease (any more)."""


class Kube:
    """Typed-enough access to the few resources modelfleet reads and writes.

    may_write is asked before every write: an instance that is not (or no longer) the leader
    never writes, even from work that started while it led.
    """

    def __init__(self, api_client: ApiClient, may_write: Callable[[], bool] = lambda: True) -> None:
        self._dynamic = DynamicClient(api_client)
        self._resources: dict[tuple[str, str], Resource] = {}
        self.may_write = may_write

    def _check_leader(self) -> None:
        if not self.may_write():
            raise NotLeader("not the leader: writes are refused")

    def resource(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = self._dynamic.resources.get(api_version=api_version, kind=kind)
        return self._resources[key]

    def apply(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Server-side apply one object as modelfleet, taking over fields it must own.

        None when its namespace is being deleted: the API server refuses new objects there, and
        whatever asked for them goes with the namespace.
        """
        self._check_leader()
        meta = obj["metadata"]
        try:
            result = self.resource(obj["apiVersion"], obj["kind"]).server_side_apply(
                body=obj,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except ForbiddenError as error:
            if "NamespaceTerminating" in str(error.body):
                return None
            raise
        applied: dict[str, Any] = result.to_dict()
        return applied

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist (yet, or any more)."""
        try:
            obj = self.resource(api_version, kind).get(
                name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS
            )
        except NotFoundError:
            return None
        found: dict[str, Any] = obj.to_dict()
        return found

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        listed = self.resource(api_version, kind).get(
            namespace=namespace,
            label_selector=label_selector,
            _request_timeout=REQUEST_TIMEOUT_SECONDS,
        )
        items: list[dict[str, Any]] = listed.to_dict().get("items") or []
        return items

    def apply_model_deployment_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str
    ) -> bool:
        """Write our status fields over exactly the object version they were computed from.

        False when the ModelDeployment is gone; ConflictError (409) when it changed since: the
        caller recomputes from a fresh read instead of overwriting newer facts with older ones.
        """
        self._check_leader()
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
            "status": status,
        }
        try:
            self.resource(API_VERSION, KIND).status.server_side_apply(
                body=body,
                name=name,
                namespace=namespace,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except NotFoundError:
            log.debug("ModelDeployment %s/%s is gone; status not written", namespace, name)
            return False
        return True

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> None:
        """Delete one object, its dependents in the background; already gone is fine."""
        self._check_leader()
        with suppress(NotFoundError):
            self.resource(api_version, kind).delete(
                name=name,
                namespace=namespace,
                body={"propagationPolicy": "Background"},
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )

    def post_event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about `involved`, as `kubectl describe` shows them.

        Posted here rather than through kopf, so the leader gate covers Events too.
        """
        self._check_leader()
        meta = involved.get("metadata") or {}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = meta.get("namespace") or "default"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.resource("v1", "Event").create(
                body=body, namespace=namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS
            )
        except ForbiddenError as error:
            if "NamespaceTerminating" not in str(error.body):
                raise
