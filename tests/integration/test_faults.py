"""Faults on the real control plane (issue 9): the operator killed mid-reconcile, the API server
stopped, two operator instances, a GPU node deleted, a deployment deleted while scaling."""

from __future__ import annotations

import os
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelfleet.dev.cluster import control_plane
from modelfleet.render.children import OWNER_LABEL
from tests.integration.node_fixtures import A10G, a10g_pool, extra_nodes
from tests.integration.operator_fixtures import ModelDeployments, OperatorProcess, wait_until

pytestmark = pytest.mark.integration

L4_SPEC: dict[str, Any] = {
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "gpu": {"product": "NVIDIA-L4", "count": 1},
}
LEASE_SECONDS = 15  # modelfleet.kube.lease.LeaseTiming().lease_seconds


def ready(mds: ModelDeployments, namespace: str, name: str) -> bool:
    return mds.condition(namespace, name, "Ready").get("status") == "True"


def children_by_owner(api: Any, namespace: str) -> dict[str, dict[str, list[str]]]:
    """Deployments, ReplicaSets, Services and Pods labelled as modelfleet children, by owner."""
    apps: Any = client.AppsV1Api(api)
    core: Any = client.CoreV1Api(api)
    selector = OWNER_LABEL
    found: dict[str, dict[str, list[str]]] = {}
    kinds = {
        "Deployment": apps.list_namespaced_deployment,
        "ReplicaSet": apps.list_namespaced_replica_set,
        "Service": core.list_namespaced_service,
        "Pod": core.list_namespaced_pod,
    }
    for kind, lister in kinds.items():
        for item in lister(namespace, label_selector=selector).items:
            if item.metadata.deletion_timestamp:
                continue
            owner = item.metadata.labels[OWNER_LABEL]
            found.setdefault(owner, {}).setdefault(kind, []).append(item.metadata.name)
    return found


def test_killed_mid_reconcile_the_restarted_operator_leaves_exactly_the_right_children(
    api: Any, namespace: str, mds: ModelDeployments, operator_process: OperatorProcess
) -> None:
    names = [f"kill-{index}" for index in range(4)]
    for name in names:
        mds.create(namespace, name, {**L4_SPEC, "replicas": 1})
    apps: Any = client.AppsV1Api(api)
    # Kill it as soon as it has applied something and before it has finished everything.
    wait_until(lambda: apps.list_namespaced_deployment(namespace).items, 30, "the first Deployment")
    operator_process.kill()
    operator_process.start()
    for name in names:
        wait_until(partial(ready, mds, namespace, name), 90, f"{name} Ready=True")
    children = children_by_owner(api, namespace)
    assert sorted(children) == names
    for name in names:
        assert children[name]["Deployment"] == [name]
        assert children[name]["Service"] == [name]
        assert len(children[name]["ReplicaSet"]) == 1, children[name]
        assert len(children[name]["Pod"]) == 1, children[name]
        assert mds.get(namespace, name)["status"]["observedGeneration"] == 1


def test_an_api_server_stopped_for_30s_is_survived_without_a_restart(
    api: Any,
    kubeconfig: Path,
    namespace: str,
    mds: ModelDeployments,
    operator_process: OperatorProcess,
) -> None:
    mds.create(namespace, "outage", {**L4_SPEC, "replicas": 1})
    wait_until(lambda: ready(mds, namespace, "outage"), 60, "Ready=True before the outage")
    pid = operator_process.pid
    stop_api_server(kubeconfig, seconds=30)
    # Leadership went (renew deadline 10 s) and must come back, with the same process.
    wait_until(lambda: leads(operator_process), 60, "the operator leading again")
    assert operator_process.pid == pid and not operator_process.exited
    assert operator_process.healthz()[0] == 200
    mds.patch_spec(namespace, "outage", {"replicas": 2})
    wait_until(
        lambda: (mds.get(namespace, "outage").get("status") or {}).get("readyReplicas") == 2,
        90,
        "the change after the outage served (2 ready replicas)",
    )
    log = operator_process.log_path.read_text()
    assert "leadership lost: handlers stopped, standing by" in log


def test_two_instances_one_leads_the_other_takes_over_when_it_dies(
    api: Any,
    namespace: str,
    mds: ModelDeployments,
    operator_process: OperatorProcess,
    tmp_path: Path,
) -> None:
    standby = OperatorProcess(operator_process.kubeconfig, tmp_path / "standby.log")
    standby.start()
    try:
        wait_until(lambda: standby.healthz()[0] == 200, 30, "the standby's /healthz")
        assert leads(operator_process) and not leads(standby)
        mds.create(namespace, "led", {**L4_SPEC, "replicas": 1})
        wait_until(lambda: ready(mds, namespace, "led"), 60, "Ready=True from the leader")
        assert "Handler" not in standby.log_path.read_text(), "the standby ran handlers"

        operator_process.kill()
        killed_at = time.monotonic()
        wait_until(lambda: leads(standby), LEASE_SECONDS + 10, "the standby taking over")
        took = time.monotonic() - killed_at
        assert took <= LEASE_SECONDS + 5, f"took over after {took:.1f}s"
        mds.patch_spec(namespace, "led", {"replicas": 2})
        wait_until(
            lambda: (mds.get(namespace, "led").get("status") or {}).get("readyReplicas") == 2,
            60,
            "the new leader serving a change",
        )
    finally:
        standby.stop()  # releases the lease: the session's operator takes over at once
        if operator_process.exited:
            operator_process.start()
    wait_until(lambda: leads(operator_process), 30, "the session operator leading again")


def test_a_deleted_gpu_node_moves_the_pod_or_the_status_explains(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    core: Any = client.CoreV1Api(api)
    pool = a10g_pool(f"fault-a10g-{namespace[-8:]}", 2, 1)
    with extra_nodes(core, pool) as nodes:
        mds.create(namespace, "moves", {**L4_SPEC, "gpu": {"product": A10G, "count": 1}})
        wait_until(lambda: ready(mds, namespace, "moves"), 60, "Ready=True on an A10G")
        first = _pod_node(core, namespace, "moves")
        core.delete_node(first)
        (other,) = set(nodes) - {first}
        wait_until(
            lambda: _pod_node(core, namespace, "moves") == other and ready(mds, namespace, "moves"),
            150,
            f"the replica moved to {other} and Ready again",
        )
        core.delete_node(other)
        # No A10G left: the waiting pod's refusal, or the next plan, says so in Ready.
        message = wait_until(
            lambda: _explained(mds, namespace, "moves"), 150, "status explaining the lost GPUs"
        )
        assert A10G in message, message


def test_a_deployment_deleted_while_scaling_leaves_nothing_behind(
    api: Any, namespace: str, mds: ModelDeployments, operator_process: OperatorProcess
) -> None:
    spec = {**L4_SPEC, "replicas": 1, "minReplicas": 1, "maxReplicas": 3}
    log_before = len(operator_process.log_path.read_text())  # the session's log is shared
    mds.create(namespace, "doomed", spec)
    wait_until(lambda: ready(mds, namespace, "doomed"), 60, "Ready=True")
    custom: Any = client.CustomObjectsApi(api)
    # kubectl scale, then delete at once: the operator is mid-way through growing it.
    custom.patch_namespaced_custom_object_scale(
        "modelfleet.dev",
        "v1alpha1",
        namespace,
        "modeldeployments",
        "doomed",
        {"spec": {"replicas": 3}},
    )
    apps: Any = client.AppsV1Api(api)
    wait_until(
        lambda: (apps.read_namespaced_deployment("doomed", namespace).spec.replicas or 0) > 1,
        30,
        "the scale-up under way",
    )
    mds.delete(namespace, "doomed")
    wait_until(lambda: not children_by_owner(api, namespace), 90, "every child collected")
    time.sleep(3 * 2)  # an absence takes watching: three resync periods, nothing comes back
    assert not children_by_owner(api, namespace)
    tail = operator_process.log_path.read_text()[log_before:]
    assert "Traceback" not in tail


def leads(operator: OperatorProcess) -> bool:
    return "modelfleet_leader 1.0" in operator.metrics()


def stop_api_server(kubeconfig: Path, seconds: float) -> None:
    """SIGSTOP the cluster's kube-apiserver for `seconds`: every client sees it hang."""
    state = control_plane.read_state(kubeconfig.parent.name)  # <state dir>/<name>/kubeconfig
    assert state is not None and Path(state.kubeconfig) == kubeconfig, "a local test cluster"
    (record,) = [p for p in state.processes if p.component == "kube-apiserver"]
    os.kill(record.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)  # the fault itself: the API server is gone this long
    finally:
        os.kill(record.pid, signal.SIGCONT)


def _pod_node(core: Any, namespace: str, name: str) -> str | None:
    pods = [
        p
        for p in core.list_namespaced_pod(namespace, label_selector=f"{OWNER_LABEL}={name}").items
        if not p.metadata.deletion_timestamp
    ]
    return pods[0].spec.node_name if len(pods) == 1 else None


def _explained(mds: ModelDeployments, namespace: str, name: str) -> str:
    ready_condition = mds.condition(namespace, name, "Ready")
    if ready_condition.get("reason") in ("Unschedulable", "NoFeasiblePlacement"):
        return str(ready_condition["message"])
    return ""
