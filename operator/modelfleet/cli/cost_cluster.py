"""What `modelfleet cost` reads from the API server, through the kube layer, with every failure
turned into one line for the user (CostError) instead of a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import config
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException
from kubernetes.dynamic.exceptions import ResourceNotFoundError
from urllib3.exceptions import HTTPError, MaxRetryError

from modelfleet.api.types import API_VERSION, KIND
from modelfleet.cli.cost import IN_CLUSTER_NAMESPACE, CostError
from modelfleet.kube.client import Kube, load_api_client

T = TypeVar("T")
Objects = list[dict[str, Any]]


class ClusterReader:
    def __init__(self, kubeconfig: str | None) -> None:
        self.kubeconfig = kubeconfig
        try:
            api_client = load_api_client(kubeconfig)
        except (ConfigException, OSError) as error:
            raise CostError(f"no cluster to read: {error}") from None
        self.server = str(api_client.configuration.host)
        self.kube: Kube = self._call("connect", lambda: Kube(api_client))

    def default_namespace(self) -> str:
        """The kubeconfig context's namespace, else the pod's own in a cluster, else default."""
        try:
            contexts = config.list_kube_config_contexts  # untyped client
            _, active = contexts(config_file=self.kubeconfig)  # type: ignore[no-untyped-call]
            namespace = (active or {}).get("context", {}).get("namespace")
        except (ConfigException, OSError, TypeError):
            try:
                namespace = IN_CLUSTER_NAMESPACE.read_text().strip()
            except OSError:
                namespace = None
        return str(namespace or "default")

    def require_namespace(self, namespace: str) -> None:
        """CostError when the namespace does not exist (one that may not be read is let pass)."""
        try:
            found = self.kube.get("v1", "Namespace", namespace)
        except ApiException as error:
            if error.status == 403:
                return
            raise CostError(self._refused("read namespace " + namespace, error)) from None
        except (HTTPError, OSError) as error:
            raise CostError(self._unreachable(error)) from None
        if found is None:
            raise CostError(f"namespace {namespace} not found", 2)

    def model_deployments(self, namespace: str | None) -> Objects:
        def listed() -> Objects:
            try:
                return self.kube.list(API_VERSION, KIND, namespace=namespace)
            except ResourceNotFoundError:
                raise CostError(
                    f"no ModelDeployment API ({API_VERSION}) on {self.server}: is the modelfleet "
                    "CRD installed?"
                ) from None

        return self._call("list ModelDeployments", listed)

    def nodes_and_pods(self) -> tuple[Objects, Objects] | str:
        """Every Node and Pod; a note instead when they may not be read (RBAC)."""
        try:
            return self.kube.list("v1", "Node"), self.kube.list("v1", "Pod")
        except ApiException as error:
            if error.status == 403:
                return (
                    "no cluster section: this user may not list Nodes and Pods in every "
                    f"namespace ({error.status} {error.reason})"
                )
            raise CostError(self._refused("list Nodes and Pods", error)) from None
        except (HTTPError, OSError) as error:
            raise CostError(self._unreachable(error)) from None

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except ApiException as error:
            raise CostError(self._refused(what, error)) from None
        except (HTTPError, OSError) as error:
            raise CostError(self._unreachable(error)) from None

    def _unreachable(self, error: Exception) -> str:
        reason = error.reason if isinstance(error, MaxRetryError) else error
        return f"cannot reach the API server at {self.server}: {reason}"

    def _refused(self, what: str, error: ApiException) -> str:
        return f"the API server at {self.server} refused to {what}: {error.status} {error.reason}"
