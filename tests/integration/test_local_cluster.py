"""The local cluster behaves like a GPU cluster: real scheduling, kwok-played pod lifecycle."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from kubernetes import client

pytestmark = pytest.mark.integration

T = TypeVar("T")
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll `probe` until it returns something other than None/False, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def gpu_pod(name: str, gpus: int, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **metadata},
        "spec": {
            "tolerations": [GPU_TOLERATION],
            "containers": [
                {
                    "name": "engine",
                    "image": "registry.invalid/engine:test",
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
        },
    }


def condition(pod: Any, kind: str) -> Any:
    return next((c for c in pod.status.conditions or [] if c.type == kind), None)


def is_ready(pod: Any) -> bool:
    ready = condition(pod, "Ready")
    return ready is not None and ready.status == "True"


def ready_pod(core: Any, name: str, namespace: str) -> Any:
    pod = core.read_namespaced_pod(name, namespace)
    return pod if is_ready(pod) else None


def test_gpu_nodes_are_ready_with_gpu_resources_and_gfd_labels(api: Any) -> None:
    core: Any = client.CoreV1Api(api)
    nodes = {node.metadata.name: node for node in core.list_node().items}
    assert {"l4-0", "l4-1", "a100-0", "h100-0", "h200-0", "cpu-0", "cpu-1"} <= nodes.keys()
    for node in nodes.values():
        assert condition(node, "Ready").status == "True", node.metadata.name
    l4 = nodes["l4-0"]
    assert l4.status.allocatable["nvidia.com/gpu"] == "4"
    assert l4.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-L4"
    assert l4.metadata.labels["nvidia.com/gpu.memory"] == "23034"
    assert nodes["h200-0"].status.allocatable["nvidia.com/gpu"] == "8"
    assert "nvidia.com/gpu" not in nodes["cpu-0"].status.allocatable


def test_gpu_pod_is_scheduled_on_an_l4_node_and_becomes_ready(api: Any, namespace: str) -> None:
    core: Any = client.CoreV1Api(api)
    pod = gpu_pod("on-l4", gpus=2)
    pod["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-L4"}
    core.create_namespaced_pod(namespace, pod)

    ready = wait_for("on-l4 Ready", lambda: ready_pod(core, "on-l4", namespace))
    assert ready.spec.node_name in {"l4-0", "l4-1"}
    assert ipaddress.ip_address(ready.status.pod_ip) in ipaddress.ip_network("127.0.0.0/8")


def test_pod_needing_more_gpus_than_any_node_stays_pending(api: Any, namespace: str) -> None:
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, gpu_pod("too-big", gpus=9))

    def unschedulable() -> Any:
        pod = core.read_namespaced_pod("too-big", namespace)
        scheduled = condition(pod, "PodScheduled")
        return pod if scheduled is not None and scheduled.status == "False" else None

    pod = wait_for("PodScheduled=False on too-big", unschedulable)
    assert pod.status.phase == "Pending"
    assert "nvidia.com/gpu" in condition(pod, "PodScheduled").message


def test_simulated_load_delay_keeps_a_running_pod_unready(api: Any, namespace: str) -> None:
    core: Any = client.CoreV1Api(api)
    annotations = {"modelfleet.dev/simulated-load-delay": "4s"}
    core.create_namespaced_pod(namespace, gpu_pod("slow-load", gpus=1, annotations=annotations))

    def running_pod() -> Any:
        pod = core.read_namespaced_pod("slow-load", namespace)
        return pod if pod.status.phase == "Running" else None

    running = wait_for("slow-load Running", running_pod)
    assert not is_ready(running)
    assert running.status.pod_ip
    started = running.status.container_statuses[0]
    assert started.started and not started.ready

    ready = wait_for("slow-load Ready", lambda: ready_pod(core, "slow-load", namespace))
    loaded_after = condition(ready, "Ready").last_transition_time - ready.status.start_time
    assert loaded_after.total_seconds() >= 3  # 4s, minus timestamps' one-second resolution
