"""A ModelDeployment on a real control plane: scheduling, validation, rollout, GC, diagnosis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.operator_fixtures import ModelDeployments, OperatorProcess, wait_until

pytestmark = pytest.mark.integration

L4 = "NVIDIA-L4"
SPEC = {
    "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "maxContextLength": 32768,
    "gpu": {"product": L4, "count": 2},
}


def pods(api: Any, namespace: str, name: str) -> list[Any]:
    core: Any = client.CoreV1Api(api)
    return list(
        core.list_namespaced_pod(
            namespace, label_selector=f"modelfleet.dev/deployment={name}"
        ).items
    )


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_pods_are_scheduled_on_the_requested_gpus_and_become_ready(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    mds.create(namespace, "r1-distill", {**SPEC, "replicas": 2})

    ready = wait_until(
        lambda: mds.condition(namespace, "r1-distill", "Ready").get("status") == "True",
        60,
        "Ready=True",
    )
    assert ready
    status = mds.get(namespace, "r1-distill")["status"]
    assert (status["replicas"], status["readyReplicas"], status["observedGeneration"]) == (2, 2, 1)
    assert status["endpoint"] == f"http://r1-distill.{namespace}.svc.cluster.local:8000/v1"

    core: Any = client.CoreV1Api(api)
    running = pods(api, namespace, "r1-distill")
    assert len(running) == 2 and all(is_ready(p) for p in running)
    for pod in running:
        node = core.read_node(pod.spec.node_name)
        assert node.metadata.labels["nvidia.com/gpu.product"] == L4
        assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "2"
        assert pod.status.pod_ip.startswith("127.")

    service = core.read_namespaced_service("r1-distill", namespace)
    assert service.spec.ports[0].port == 8000

    def announced() -> list[str]:
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.kind=ModelDeployment"
        ).items
        return [e.reason for e in events if e.involved_object.name == "r1-distill"]

    assert "AllReplicasReady" in wait_until(announced, 30, "a Ready event on the ModelDeployment")


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({**SPEC, "engine": "tgi"}, "spec.engine", "Unsupported value"),
        ({**SPEC, "gpu": {"product": L4, "count": 9}}, "spec.gpu.count", "less than or equal to 8"),
        ({**SPEC, "gpu": {"product": L4, "count": 3}}, "spec.gpu.count", "must be 1, 2, 4 or 8"),
        ({**SPEC, "extraArgs": ["--port=9000"]}, "spec.extraArgs", "must not set"),
        ({**SPEC, "replicas": -1}, "spec.replicas", "greater than or equal to 0"),
        ({"gpu": {"product": L4}}, "spec.model", "Required value"),
        ({**SPEC, "gpus": 2}, "spec.gpus", "unknown field"),
        (
            {**SPEC, "minReplicas": 3, "maxReplicas": 2},
            "spec.minReplicas",
            "minReplicas must not exceed maxReplicas",
        ),
        ({**SPEC, "minReplicas": 1}, "spec.maxReplicas", "autoscaling is on when maxReplicas"),
        (
            {**SPEC, "maxReplicas": 3, "autoscaling": {"targetKVCacheUsage": 0}},
            "spec.autoscaling.targetKVCacheUsage",
            "greater than 0",
        ),
    ],
    ids=[
        "engine",
        "gpu-count-max",
        "gpu-count-cel",
        "extra-args-cel",
        "replicas",
        "model",
        "unknown",
        "min-above-max-cel",
        "min-without-max-cel",
        "kv-target",
    ],
)
def test_invalid_specs_are_rejected_with_the_field_named(
    namespace: str, mds: ModelDeployments, spec: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ApiException) as rejected:
        mds.create(namespace, "bad", spec)
    assert rejected.value.status in (400, 422)
    assert field in rejected.value.body
    assert words in rejected.value.body


def test_spec_change_rolls_out(api: Any, namespace: str, mds: ModelDeployments) -> None:
    mds.create(namespace, "roll", {**SPEC, "gpu": {"product": L4, "count": 1}})
    wait_until(
        lambda: mds.condition(namespace, "roll", "Ready").get("status") == "True",
        60,
        "first rollout",
    )

    mds.patch_spec(namespace, "roll", {"extraArgs": ["--max-model-len=8192"]})

    def rolled_out() -> bool:
        status = mds.get(namespace, "roll")["status"]
        current = pods(api, namespace, "roll")
        return (
            status["observedGeneration"] == 2
            and mds.condition(namespace, "roll", "Progressing").get("reason") == "Complete"
            and len(current) == 1
            and "--max-model-len=8192" in current[0].spec.containers[0].args
            and is_ready(current[0])
        )

    wait_until(rolled_out, 90, "the new spec rolled out to a Ready pod")


def test_deleting_removes_the_children(api: Any, namespace: str, mds: ModelDeployments) -> None:
    mds.create(namespace, "gone", {**SPEC, "gpu": {"product": L4, "count": 1}})
    apps: Any = client.AppsV1Api(api)
    core: Any = client.CoreV1Api(api)
    wait_until(lambda: apps.list_namespaced_deployment(namespace).items, 30, "a Deployment")

    mds.delete(namespace, "gone")

    wait_until(
        lambda: (
            not apps.list_namespaced_deployment(namespace).items
            and not [s for s in core.list_namespaced_service(namespace).items]
            and not pods(api, namespace, "gone")
        ),
        60,
        "garbage collection of Deployment, Service and pods",
    )


@pytest.mark.parametrize(
    ("gpu", "explanation"),
    [
        ({"product": "NVIDIA-B200", "count": 1}, "no NVIDIA-B200 nodes in the cluster"),
        ({"product": L4, "count": 8}, "needs 8 GPUs on one node, NVIDIA-L4 nodes have at most 4"),
    ],
    ids=["missing-product", "too-many-gpus"],
)
def test_a_spec_that_fits_nowhere_is_explained_and_creates_nothing(
    api: Any, namespace: str, mds: ModelDeployments, gpu: dict[str, Any], explanation: str
) -> None:
    mds.create(namespace, "nowhere", {**SPEC, "gpu": gpu})

    ready = wait_until(
        lambda: (
            (c := mds.condition(namespace, "nowhere", "Ready")).get("reason")
            == "NoFeasiblePlacement"
            and c
        ),
        60,
        "Ready=False NoFeasiblePlacement",
    )
    assert ready["status"] == "False"
    assert explanation in ready["message"]
    assert mds.condition(namespace, "nowhere", "Degraded")["status"] == "True"
    apps: Any = client.AppsV1Api(api)
    assert apps.list_namespaced_deployment(namespace).items == []

    mds.patch_spec(namespace, "nowhere", {"gpu": {"product": L4, "count": 1}})
    wait_until(
        lambda: mds.condition(namespace, "nowhere", "Ready").get("status") == "True",
        60,
        "recovery once the spec fits",
    )


def test_a_replica_without_free_gpus_is_explained_in_status(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    # Two L4 nodes with 4 GPUs each: the third 4-GPU replica has nowhere to go.
    mds.create(namespace, "stuck", {**SPEC, "gpu": {"product": L4, "count": 4}, "replicas": 3})

    degraded = wait_until(
        lambda: (
            (c := mds.condition(namespace, "stuck", "Degraded")).get("reason") == "Unschedulable"
            and c
        ),
        60,
        "Degraded=Unschedulable",
    )
    assert degraded["status"] == "True"
    # Pods of earlier tests may still hold L4s while their namespaces go: count not asserted.
    assert "cannot be scheduled: no NVIDIA-L4 node has 4 free GPUs" in degraded["message"]
    assert "(scheduler: " in degraded["message"]
    ready = mds.condition(namespace, "stuck", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Unschedulable")
    core: Any = client.CoreV1Api(api)
    warnings = wait_until(
        lambda: [
            e
            for e in core.list_namespaced_event(namespace).items
            if e.type == "Warning"
            and e.reason == "Unschedulable"
            and e.involved_object.kind == "ModelDeployment"
        ],
        30,
        "a Warning event explaining the unschedulable replica",
    )
    assert "no NVIDIA-L4 node has 4 free GPUs" in warnings[0].message

    mds.patch_spec(namespace, "stuck", {"replicas": 2})
    wait_until(
        lambda: mds.condition(namespace, "stuck", "Ready").get("status") == "True",
        60,
        "recovery once the replicas fit",
    )


def test_a_steady_deployment_is_not_churned_by_periodic_reconciles(
    namespace: str, mds: ModelDeployments, operator_process: OperatorProcess
) -> None:
    mds.create(namespace, "steady", {**SPEC, "gpu": {"product": L4, "count": 1}})
    wait_until(
        lambda: mds.condition(namespace, "steady", "Progressing").get("reason") == "Complete",
        60,
        "a settled rollout",
    )
    version = mds.get(namespace, "steady")["metadata"]["resourceVersion"]

    def counter(name: str, labels: dict[str, str]) -> float:
        for family in text_string_to_metric_families(operator_process.metrics()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return 0.0

    def timer_runs() -> float:
        """Periodic reconciles done, from the operator's /metrics (this test's object is the
        only one left: every other test's namespace is gone before the next test starts)."""
        return counter("modelfleet_reconciles_total", {"trigger": "timer", "result": "ok"})

    def child_applies() -> float:
        return sum(
            counter("modelfleet_child_applies_total", {"kind": kind})
            for kind in ("Deployment", "Service", "PodDisruptionBudget")
        )

    applies = child_applies()

    seen = timer_runs()
    wait_until(lambda: timer_runs() >= seen + 3, 60, "three more periodic reconciles")

    assert mds.get(namespace, "steady")["metadata"]["resourceVersion"] == version
    assert child_applies() == applies, "a resync re-applied unchanged children"


def test_no_finalizer_so_a_delete_completes_without_the_operator(
    api: Any, namespace: str, mds: ModelDeployments, operator_process: OperatorProcess
) -> None:
    mds.create(namespace, "unowned", {**SPEC, "gpu": {"product": L4, "count": 1}})
    wait_until(
        lambda: mds.condition(namespace, "unowned", "Ready").get("status") == "True", 60, "Ready"
    )
    assert not mds.get(namespace, "unowned")["metadata"].get("finalizers")
    operator_process.stop()
    try:
        mds.delete(namespace, "unowned")

        def gone() -> bool:
            try:
                mds.get(namespace, "unowned")
            except ApiException as error:
                return error.status == 404
            return False

        wait_until(gone, 30, "the ModelDeployment deleted with no operator running")
        apps: Any = client.AppsV1Api(api)
        wait_until(
            lambda: not apps.list_namespaced_deployment(namespace).items, 60, "children collected"
        )
    finally:
        operator_process.start()


def test_scale_subresource_scales_the_engines(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    mds.create(namespace, "scaled", {**SPEC, "gpu": {"product": L4, "count": 1}})
    wait_until(
        lambda: mds.condition(namespace, "scaled", "Ready").get("status") == "True", 60, "Ready"
    )

    mds.custom.patch_namespaced_custom_object_scale(
        "modelfleet.dev",
        "v1alpha1",
        namespace,
        "modeldeployments",
        "scaled",
        {"spec": {"replicas": 3}},
    )

    wait_until(
        lambda: (
            mds.get(namespace, "scaled")["status"].get("readyReplicas") == 3
            and len([p for p in pods(api, namespace, "scaled") if is_ready(p)]) == 3
        ),
        60,
        "three ready replicas after scaling through the scale subresource",
    )
    scale = mds.custom.get_namespaced_custom_object_scale(
        "modelfleet.dev", "v1alpha1", namespace, "modeldeployments", "scaled"
    )
    assert scale["status"]["selector"] == "modelfleet.dev/deployment=scaled"


def node_products(api: Any, namespace: str, name: str) -> set[str]:
    core: Any = client.CoreV1Api(api)
    return {
        core.read_node(p.spec.node_name).metadata.labels["nvidia.com/gpu.product"]
        for p in pods(api, namespace, name)
        if p.spec.node_name
    }


AUTO_7B = {"model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "maxContextLength": 32768}


def test_auto_lands_on_the_cheapest_gpu_that_fits(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    mds.create(namespace, "r1", {"model": "deepseek-ai/DeepSeek-R1"})
    mds.create(namespace, "small", AUTO_7B)

    for name in ("r1", "small"):
        wait_until(
            lambda name=name: mds.condition(namespace, name, "Ready").get("status") == "True",
            60,
            f"{name} Ready",
        )
    r1 = mds.get(namespace, "r1")["status"]["placement"]
    # 671B in fp8 needs about 648 GiB: only 8x H200 (1011 GiB usable) holds it here.
    assert (r1["gpuProduct"], r1["gpusPerReplica"], r1["quantization"]) == ("NVIDIA-H200", 8, "fp8")
    assert r1["hourlyCostPerReplica"] > 0
    assert node_products(api, namespace, "r1") == {"NVIDIA-H200"}

    small = mds.get(namespace, "small")["status"]["placement"]
    assert (small["gpuProduct"], small["gpusPerReplica"]) == (L4, 1)
    assert node_products(api, namespace, "small") == {L4}
    args = pods(api, namespace, "small")[0].spec.containers[0].args
    assert "--max-model-len=32768" in args


def test_an_expected_load_places_the_cheapest_fleet_and_a_spec_change_replans(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    """Issue 12: 10 requests/s of 1,000 + 200 tokens take 7 replicas of 1x L4 ($4.90/h) but one
    1x H100 ($3/h); a light load goes back to the cheapest replica, 1x L4."""
    heavy = {"requestsPerSecond": 10, "promptTokens": 1000, "outputTokens": 200}
    mds.create(namespace, "fleet", {**AUTO_7B, "expectedLoad": heavy})
    wait_until(
        lambda: mds.condition(namespace, "fleet", "Ready").get("status") == "True",
        60,
        "fleet Ready",
    )
    placement = mds.get(namespace, "fleet")["status"]["placement"]
    assert (placement["gpuProduct"], placement["gpusPerReplica"]) == (
        "NVIDIA-H100-80GB-HBM3",
        1,
    )
    assert placement["message"].startswith("1 replica of 1x H100-80GB at $3.00/h, the cheapest")
    assert "the cheapest replica would take 7 replicas of 1x L4 at $4.90/h" in placement["message"]
    assert node_products(api, namespace, "fleet") == {"NVIDIA-H100-80GB-HBM3"}

    mds.patch_spec(namespace, "fleet", {"expectedLoad": {**heavy, "requestsPerSecond": 0.1}})
    wait_until(
        lambda: (
            mds.get(namespace, "fleet")["status"]["placement"]["gpuProduct"] == L4
            and mds.condition(namespace, "fleet", "Ready").get("status") == "True"
        ),
        60,
        "fleet re-planned onto one L4 and Ready",
    )
    wait_until(
        lambda: node_products(api, namespace, "fleet") == {L4}, 60, "the H100 pod rolled away"
    )


def test_auto_falls_through_to_the_next_cheapest_pool_when_the_cheapest_is_full(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    mds.create(namespace, "hog", {**SPEC, "gpu": {"product": L4, "count": 4}, "replicas": 2})
    wait_until(
        lambda: mds.condition(namespace, "hog", "Ready").get("status") == "True",
        60,
        "every L4 GPU taken",
    )

    mds.create(namespace, "late", AUTO_7B)

    wait_until(
        lambda: mds.condition(namespace, "late", "Ready").get("status") == "True", 60, "late Ready"
    )
    placement = mds.get(namespace, "late")["status"]["placement"]
    assert placement["gpuProduct"] == "NVIDIA-A100-SXM4-80GB"
    assert "has no node with 1 free GPUs" in placement["message"]
    assert node_products(api, namespace, "late") == {"NVIDIA-A100-SXM4-80GB"}


def test_plan_reads_the_live_cluster(kubeconfig: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "r1.yaml"
    manifest.write_text("kind: ModelDeployment\nspec:\n  model: deepseek-ai/DeepSeek-R1\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelfleet.cli",
            "plan",
            "-f",
            str(manifest),
            "--kubeconfig",
            str(kubeconfig),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert (plan["feasible"], plan["gpuProduct"], plan["gpusPerReplica"]) == (
        True,
        "NVIDIA-H200",
        8,
    )
    assert any("8x H100" in (o.get("reason") or "") for o in plan["options"])
