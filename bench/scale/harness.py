"""The scale benchmark's moving parts: its own local cluster, an identity for the operator,
the operator and the engine emulator as subprocesses, and bulk API calls from a thread pool.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from modelfleet.api.crd import crd
from modelfleet.dev.cluster import audit
from modelfleet.dev.cluster.credentials import token_kubeconfig

OPERATOR_NAMESPACE = "modelfleet-system"
OPERATOR_ACCOUNT = "modelfleet"
OPERATOR_USER = audit.service_account_user(OPERATOR_NAMESPACE, OPERATOR_ACCOUNT)
TOKEN_SECONDS = 24 * 3600
WORKERS = 8  # concurrent API calls of the benchmark's own bulk creates and deletes
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def admin_client(kubeconfig: Path) -> Any:
    """An ApiClient with a connection pool for the bulk workers plus the trackers' watches."""
    configuration = client.Configuration()
    kube_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = 4 * WORKERS
    return client.ApiClient(configuration)


def install_crd(api: Any) -> None:
    extensions: Any = client.ApiextensionsV1Api(api)
    body = crd()
    try:
        extensions.create_custom_resource_definition(body)
    except ApiException as error:
        if error.status != 409:
            raise
    name = body["metadata"]["name"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conditions = extensions.read_custom_resource_definition(name).status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(0.2)
    raise RuntimeError(f"CRD {name} not established after 60 s")


def create_namespace(api: Any, name: str) -> None:
    core: Any = client.CoreV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": name}})
    except ApiException as error:
        if error.status != 409:
            raise
    deadline = time.monotonic() + 60
    while not core.list_namespaced_service_account(
        name, field_selector="metadata.name=default"
    ).items:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no default ServiceAccount in {name} after 60 s")
        time.sleep(0.2)


def operator_kubeconfig(api: Any, admin: Path, path: Path) -> Path:
    """A ServiceAccount bound to cluster-admin, and a kubeconfig with a token of it: the
    operator's requests are its own user's in the audit log."""
    core: Any = client.CoreV1Api(api)
    rbac: Any = client.RbacAuthorizationV1Api(api)
    create_namespace(api, OPERATOR_NAMESPACE)
    try:
        core.create_namespaced_service_account(
            OPERATOR_NAMESPACE, {"metadata": {"name": OPERATOR_ACCOUNT}}
        )
    except ApiException as error:
        if error.status != 409:
            raise
    binding = {
        "metadata": {"name": "modelfleet-bench-operator"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": OPERATOR_ACCOUNT, "namespace": OPERATOR_NAMESPACE}
        ],
    }
    try:
        rbac.create_cluster_role_binding(binding)
    except ApiException as error:
        if error.status != 409:
            raise
    token = core.create_namespaced_service_account_token(
        OPERATOR_ACCOUNT, OPERATOR_NAMESPACE, {"spec": {"expirationSeconds": TOKEN_SECONDS}}
    ).status.token
    return token_kubeconfig(admin, token, path)


def modelfleet(args: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`python -m modelfleet.cli ARGS` in the background, appending to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "modelfleet.cli", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )


def operator_env(kubeconfig: Path, metrics_port: int) -> dict[str, str]:
    """As a platform team runs it: the default resync (MODELFLEET_RESYNC_SECONDS unset)."""
    env = {k: v for k, v in os.environ.items() if k != "MODELFLEET_RESYNC_SECONDS"}
    return {
        **env,
        "KUBECONFIG": str(kubeconfig),
        "MODELFLEET_METRICS_PORT": str(metrics_port),
        "MODELFLEET_NAMESPACE": OPERATOR_NAMESPACE,
    }


def terminate(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def bulk(call: Callable[[Any], object], items: Iterable[Any], workers: int = WORKERS) -> int:
    """Run `call` on every item from a small thread pool; the number of items. Errors raise."""
    with ThreadPoolExecutor(workers) as pool:
        return sum(1 for _ in pool.map(call, items))


def clear_namespaces(api: Any, namespaces: list[str], timeout: float = 900) -> float:
    """Delete everything in the namespaces with collection deletes (a few requests, not one per
    object), then the namespaces; wait until their pods are gone. Seconds taken."""
    started = time.monotonic()
    core: Any = client.CoreV1Api(api)
    apps: Any = client.AppsV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    for namespace in namespaces:
        try:
            custom.delete_collection_namespaced_custom_object(
                "modelfleet.dev", "v1alpha1", namespace, "modeldeployments"
            )
            apps.delete_collection_namespaced_deployment(namespace)
            apps.delete_collection_namespaced_replica_set(namespace)
            core.delete_collection_namespaced_service(namespace)
            core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
            core.delete_namespace(namespace)
        except ApiException as error:
            if error.status != 404:
                raise
    deadline = time.monotonic() + timeout
    while True:
        left = sum(
            len(core.list_namespaced_pod(namespace, limit=1).items) for namespace in namespaces
        )
        existing = {ns.metadata.name for ns in core.list_namespace().items}
        if not left and not existing & set(namespaces):
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise RuntimeError(f"namespaces {namespaces} not gone after {timeout:.0f} s")
        time.sleep(1)
