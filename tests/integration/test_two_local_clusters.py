"""Two local clusters side by side, as after `make demo` (left running) and then `make test`: each
hands out pod IPs from its own range, and each cluster's emulator answers only its own pods.

Before per-cluster ranges both handed out 127.100.x.y, and the demo's emulator answered the test
cluster's requests. The second cluster here plays the demo's part.
"""

from __future__ import annotations

import ipaddress
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelfleet.dev.cluster import ClusterState, control_plane, pod_range
from modelfleet.dev.engine.pods import ENGINE_LABEL, MANAGED_BY_LABEL
from modelfleet.render.children import GPU_PRODUCT_LABEL, GPU_RESOURCE, MANAGED_BY, OWNER_LABEL
from modelfleet.render.engines import ENGINE_PORT
from tests.integration.engine_fixtures import log_tail, run_emulator
from tests.integration.operator_fixtures import wait_until

pytestmark = pytest.mark.integration

GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
# A different model per cluster tells which emulator answered on an IP.
SESSION_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
SECOND_MODEL = "Qwen/Qwen2.5-7B-Instruct"


@pytest.fixture(scope="module")
def session_cluster(api: Any) -> ClusterState:
    """The session cluster's state (its pod range), found by its API server address."""
    found = control_plane.find_by_server(api.configuration.host)
    if found is None:
        pytest.skip("the session cluster (MODELFLEET_TEST_KUBECONFIG) is not a local one")
    return found


@pytest.fixture(scope="module")
def second_cluster(session_cluster: ClusterState) -> Iterator[ClusterState]:
    """A second local cluster, started while the session's one runs; stopped afterwards."""
    name = f"modelfleet-test-{os.getpid()}-second"
    try:
        state = control_plane.up(name=name)
    except Exception as error:
        logs = control_plane.log_tails(name)
        control_plane.down(name)
        pytest.fail(f"second local cluster {name} did not start: {error}\n{logs}", pytrace=False)
    try:
        yield state
    finally:
        control_plane.down(name)


@pytest.fixture(scope="module")
def second_api(second_cluster: ClusterState) -> Iterator[Any]:
    with control_plane.api_client(Path(second_cluster.kubeconfig)) as api_client:
        yield api_client


def engine_pod(name: str, model: str) -> dict[str, Any]:
    """A pod as the operator renders it, as far as the emulator looks: labels, GPU, model arg."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, OWNER_LABEL: name, ENGINE_LABEL: "vllm"},
        },
        "spec": {
            "nodeSelector": {GPU_PRODUCT_LABEL: "NVIDIA-L4"},
            "tolerations": [GPU_TOLERATION],
            "containers": [
                {
                    "name": "engine",
                    "image": "registry.invalid/vllm:test",
                    "args": [f"--model={model}"],
                    "resources": {"limits": {GPU_RESOURCE: "1"}},
                }
            ],
        },
    }


def ready_pod_ips(api: Any, namespace: str, prefix: str, count: int, model: str) -> list[str]:
    """Create `count` engine pods serving `model`; wait until all are Ready; their IPs."""
    core: Any = client.CoreV1Api(api)
    names = [f"{prefix}-{index}" for index in range(count)]
    for name in names:
        core.create_namespaced_pod(namespace, engine_pod(name, model))

    def ips() -> list[str]:
        pods = [core.read_namespaced_pod(name, namespace) for name in names]
        ready = [
            pod.status.pod_ip
            for pod in pods
            if pod.status.pod_ip
            and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        ]
        return ready if len(ready) == count else []

    return wait_until(ips, 60, f"{count} engine pods Ready in {namespace}")


def served_model(ip: str) -> str | None:
    """The model the server on ip:8000 says it serves, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{ip}:{ENGINE_PORT}/v1/models", timeout=2) as reply:
            model: str = json.load(reply)["data"][0]["id"]
            return model
    except OSError:
        return None


def test_side_by_side_clusters_hand_out_disjoint_pod_ips(
    session_cluster: ClusterState,
    second_cluster: ClusterState,
    api: Any,
    second_api: Any,
    namespace: str,
) -> None:
    session_range = ipaddress.IPv4Network(session_cluster.pod_cidr)
    second_range = ipaddress.IPv4Network(second_cluster.pod_cidr)
    assert not session_range.overlaps(second_range)
    for network in (session_range, second_range):
        assert not network.overlaps(pod_range.RESERVED)  # the API servers' 127.0.0.1

    session_ips = ready_pod_ips(api, namespace, "ips", 2, SESSION_MODEL)
    second_ips = ready_pod_ips(second_api, "default", "ips", 2, SECOND_MODEL)
    assert all(ipaddress.ip_address(ip) in session_range for ip in session_ips), session_ips
    assert all(ipaddress.ip_address(ip) in second_range for ip in second_ips), second_ips
    assert not set(session_ips) & set(second_ips)


def test_each_clusters_emulator_answers_only_its_own_pods(
    second_cluster: ClusterState,
    api: Any,
    second_api: Any,
    namespace: str,
    emulator: Path,
    tmp_path: Path,
) -> None:
    """The session's emulator and the second cluster's run at once, each serving its own pods."""
    log_path = tmp_path / "second-emulator.log"
    with run_emulator(Path(second_cluster.kubeconfig), log_path) as process:
        session_ips = ready_pod_ips(api, namespace, "served", 2, SESSION_MODEL)
        second_ips = ready_pod_ips(second_api, "default", "served", 2, SECOND_MODEL)

        def every_pod_answered_by_its_own_emulator() -> dict[str, str | None]:
            models = {ip: served_model(ip) for ip in session_ips + second_ips}
            expected = {ip: SESSION_MODEL for ip in session_ips}
            expected |= {ip: SECOND_MODEL for ip in second_ips}
            return models if models == expected else {}

        try:
            wait_until(every_pod_answered_by_its_own_emulator, 30, "each emulator on its pods")
            assert process.poll() is None, "the second emulator exited"
            second_log = log_path.read_text()
            assert f"IPs in {second_cluster.pod_cidr}" in second_log
            assert "cannot serve" not in second_log  # no address taken by the other emulator
            assert namespace not in second_log  # never the session cluster's pods
        except BaseException:
            print(f"---- second cluster's emulator log ----\n{log_tail(log_path)}")
            raise
