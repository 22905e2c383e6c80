"""Run the real operator against the test cluster, and poll its results with deadlines."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.api.crd import crd
from modelfleet.api.types import GROUP, PLURAL, VERSION

T = TypeVar("T")


FAST_WRITE_SECONDS = "2"  # time-based status fields, for tests that read them (fast_writes)


def install_crd(api: Any) -> None:
    """Create or replace the CRD and wait until the API server serves it."""
    extensions: Any = client.ApiextensionsV1Api(api)
    body = crd()
    name = body["metadata"]["name"]
    try:
        extensions.create_custom_resource_definition(body)
    except ApiException as error:
        if error.status != 409:
            raise
        current = extensions.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        extensions.replace_custom_resource_definition(name, body)

    def established() -> bool:
        conditions = extensions.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_until(established, 30, "CRD established")


def wait_until(check: Callable[[], T], timeout: float, what: str) -> T:
    """Poll `check` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(0.25)
        last = check()
    return last


@contextmanager
def run_operator(
    kubeconfig: Path,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """`modelfleet run ARGS` as a subprocess, as in production; its log is printed on failure."""
    env = {**operator_env(kubeconfig), **(extra_env or {})}
    process = start_modelfleet(["run", *args], log_path, env)
    try:
        yield process
    finally:
        terminate(process)


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def http_status(url: str) -> tuple[int, str]:
    """Status and body of a GET to a local endpoint; (0, error) when nothing answers."""
    try:
        with _LOCAL.open(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


def http_get(url: str) -> str:
    status, body = http_status(url)
    return body if status == 200 else ""


def free_port() -> int:
    """A TCP port nobody listens on now: several operators run side by side in tests."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def operator_env(kubeconfig: Path) -> dict[str, str]:
    """The environment of a test operator: fast resync, its own /healthz and /metrics port."""
    return {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "MODELFLEET_RESYNC_SECONDS": "2",
        "MODELFLEET_METRICS_PORT": str(free_port()),
    }


def start_modelfleet(
    args: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`python -m modelfleet.cli ARGS` in the background, appending to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "modelfleet.cli", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class OperatorProcess:
    """`modelfleet run` for the whole session, restartable: a test can stop, kill and start it."""

    def __init__(self, kubeconfig: Path, log_path: Path) -> None:
        self.kubeconfig, self.log_path = kubeconfig, log_path
        self._process: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0

    def start(self, **env_overrides: str) -> None:
        """Start it; `env_overrides` (e.g. MODELFLEET_COST_WRITE_SECONDS) for this run only."""
        env = {**operator_env(self.kubeconfig), **env_overrides}
        self.metrics_port = int(env["MODELFLEET_METRICS_PORT"])
        self._process = start_modelfleet(["run"], self.log_path, env)

    def stop(self) -> None:
        if self._process is not None:
            terminate(self._process)
            self._process = None

    def kill(self) -> None:
        """SIGKILL: no cleanup, the lease is not released, work in flight is cut off."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def metrics(self) -> str:
        """The text of its /metrics ('' while it does not answer)."""
        return http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def healthz(self) -> tuple[int, str]:
        return http_status(f"http://127.0.0.1:{self.metrics_port}/healthz")

    def restart(self, **env_overrides: str) -> None:
        self.stop()
        self.start(**env_overrides)

    @property
    def exited(self) -> bool:
        return self._process is None or self._process.poll() is not None


class ModelDeployments:
    """ModelDeployment CRUD through the API server, as a user would do it."""

    def __init__(self, api: Any) -> None:
        self.custom: Any = client.CustomObjectsApi(api)

    def create(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": spec,
        }
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict"
        )
        return created

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
        return found

    def patch_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": spec}
        )

    def delete(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def condition(self, namespace: str, name: str, type_: str) -> dict[str, Any]:
        for cond in (self.get(namespace, name).get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                found: dict[str, Any] = cond
                return found
        return {}
