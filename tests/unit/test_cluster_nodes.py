"""Pure parts of the local cluster: node inventory, Node rendering, kwok stages, argv builders."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from modelfleet.dev.cluster import build, credentials, flags, paths
from modelfleet.dev.cluster.nodes import (
    load_inventory,
    parse_inventory,
    render_node,
    render_nodes,
)
from modelfleet.dev.cluster.stages import (
    LOAD_DELAY_ANNOTATION,
    parse_duration,
    render_stages,
    stage_documents,
)

L4_POOL = """
pools:
- name: l4
  gpuProduct: NVIDIA-L4
  gpuMemoryMiB: 23034
  gpusPerNode: 4
  count: 2
  cpu: "48"
  memory: 192Gi
- name: cpu
  count: 1
  cpu: "16"
  memory: 64Gi
"""


def _error_locations(text: str) -> list[tuple[Any, ...]]:
    with pytest.raises(pydantic.ValidationError) as caught:
        parse_inventory(text)
    return [error["loc"] for error in caught.value.errors()]


def _pool(**overrides: Any) -> str:
    fields = {"name": "l4", "count": 1, "cpu": "8", "memory": "32Gi", **overrides}
    return yaml.safe_dump({"pools": [fields]})


def test_parses_gpu_and_cpu_pools() -> None:
    inventory = parse_inventory(L4_POOL)
    l4, cpu = inventory.pools
    assert (l4.gpu_product, l4.gpu_memory_mib, l4.gpus_per_node) == ("NVIDIA-L4", 23034, 4)
    assert l4.node_names() == ["l4-0", "l4-1"]
    assert not cpu.has_gpus


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"gpusPerNode": 17, "gpuProduct": "X", "gpuMemoryMiB": 1}, ("pools", 0, "gpusPerNode")),
        ({"gpusPerNode": 0, "gpuProduct": "X", "gpuMemoryMiB": 1}, ("pools", 0, "gpusPerNode")),
        ({"count": 0}, ("pools", 0, "count")),
        ({"name": "L4_pool"}, ("pools", 0, "name")),
        ({"name": "-l4"}, ("pools", 0, "name")),
        ({"gpuCount": 4}, ("pools", 0, "gpuCount")),
        ({"memory": "lots"}, ("pools", 0, "memory")),
    ],
)
def test_validation_errors_name_the_field(
    overrides: dict[str, Any], location: tuple[Any, ...]
) -> None:
    assert location in _error_locations(_pool(**overrides))


def test_gpu_fields_must_come_together() -> None:
    with pytest.raises(pydantic.ValidationError, match="gpuProduct, gpuMemoryMiB and gpusPerNode"):
        parse_inventory(_pool(gpusPerNode=4))


def test_unknown_top_level_key_and_duplicate_pools_are_rejected() -> None:
    assert ("extra",) in _error_locations("pools: []\nextra: 1\n")
    with pytest.raises(pydantic.ValidationError, match="repeated: l4"):
        parse_inventory(yaml.safe_dump({"pools": [yaml.safe_load(_pool())["pools"][0]] * 2}))


def test_default_inventory_has_the_documented_gpus() -> None:
    nodes = render_nodes(load_inventory())
    products = [node["metadata"]["labels"].get("nvidia.com/gpu.product") for node in nodes]
    assert products == [
        "NVIDIA-L4",
        "NVIDIA-L4",
        "NVIDIA-A100-SXM4-80GB",
        "NVIDIA-H100-80GB-HBM3",
        "NVIDIA-H200",
        None,
        None,
    ]


def test_gpu_node_rendering() -> None:
    pool = parse_inventory(L4_POOL).pools[0]
    node = render_node(pool, "l4-1")
    assert node["metadata"]["name"] == "l4-1"
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    assert node["metadata"]["labels"] == {
        "type": "kwok",
        "kubernetes.io/hostname": "l4-1",
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "modelfleet.dev/pool": "l4",
        "nvidia.com/gpu.product": "NVIDIA-L4",
        "nvidia.com/gpu.memory": "23034",
        "nvidia.com/gpu.count": "4",
        "nvidia.com/gpu.present": "true",
    }
    assert node["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    ]
    expected = {"cpu": "48", "memory": "192Gi", "pods": "110", "nvidia.com/gpu": "4"}
    assert node["status"] == {"capacity": expected, "allocatable": expected}


def test_cpu_node_has_no_gpu_labels_taint_or_resource() -> None:
    node = render_node(parse_inventory(L4_POOL).pools[1], "cpu-0")
    assert not any(key.startswith("nvidia.com/") for key in node["metadata"]["labels"])
    assert "taints" not in node["spec"]
    assert node["status"]["allocatable"] == {"cpu": "16", "memory": "64Gi", "pods": "110"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3s", 3.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5s", 1.5), ("2h", 7200.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "3", "3 s", "s", "3sec", "-1s"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def _stage(name: str, delay: timedelta = timedelta(seconds=3)) -> dict[str, Any]:
    return next(doc for doc in stage_documents(delay) if doc["metadata"]["name"] == name)


def test_stage_set() -> None:
    names = [doc["metadata"]["name"] for doc in yaml.safe_load_all(render_stages())]
    assert names == [
        "node-initialize",
        "node-heartbeat-with-lease",
        "pod-running",
        "weights-init-running",
        "weights-init-complete",
        "weights-init-fail",
        "pod-ready",
        "weights-download-complete",
        "weights-download-fail",
        "pod-delete",
    ]


def test_per_node_init_containers_download_then_run_or_fail() -> None:
    """A PerNode engine pod is Pending with its IP while its weights init container runs (the
    operator reads progress there), then runs after the download time, or its init container
    exits 2 for the simulated missing repository and waits to be restarted; pods without init
    containers skip straight to Running."""
    running = _stage("pod-running")["spec"]
    assert {"key": ".spec.initContainers", "operator": "DoesNotExist"} in [
        e["jq"] for e in running["selector"]["matchExpressions"]
    ]
    init = _stage("weights-init-running")["spec"]["next"]["statusTemplate"]
    assert "phase: Pending" in init and "podIP:" in init and "running:" in init
    complete = _stage("weights-init-complete")["spec"]
    assert complete["delay"]["durationMilliseconds"] == 12_000
    assert "phase: Running" in complete["next"]["statusTemplate"]
    assert "podIP:" not in complete["next"]["statusTemplate"]  # keeps the IP it has
    failing = _stage("weights-init-fail")["spec"]["next"]["statusTemplate"]
    assert "CrashLoopBackOff" in failing and "exitCode: 2" in failing
    assert "phase:" not in failing  # stays Pending


def test_download_pods_complete_or_fail_and_never_become_ready() -> None:
    """Weights download pods (render/cache.py) run to an end instead of serving: Succeeded after
    the simulated download time, or Failed with exit 2 for the simulated missing repository."""
    complete = _stage("weights-download-complete")
    assert complete["spec"]["delay"]["durationMilliseconds"] == 12_000
    assert "phase: Succeeded" in complete["spec"]["next"]["statusTemplate"]
    assert "exitCode: 0" in complete["spec"]["next"]["statusTemplate"]
    failing = _stage("weights-download-fail")["spec"]
    assert "phase: Failed" in failing["next"]["statusTemplate"]
    assert "exitCode: 2" in failing["next"]["statusTemplate"]
    assert ["simulated/download-fails"] in [
        e["jq"].get("values") for e in failing["selector"]["matchExpressions"]
    ]
    label = '.metadata.labels["modelfleet.dev/weights-of"]'
    ready = _stage("pod-ready")["spec"]["selector"]["matchExpressions"]
    assert {"jq": {"key": label, "operator": "DoesNotExist"}} in ready


def test_pod_ready_waits_for_the_default_or_the_annotation() -> None:
    delay = _stage("pod-ready", timedelta(milliseconds=2500))["spec"]["delay"]
    assert delay["durationMilliseconds"] == 2500
    assert delay["durationFrom"]["jq"]["expression"] == (
        f'.metadata.annotations["{LOAD_DELAY_ANNOTATION}"]'
    )


def test_pod_running_gives_an_ip_but_not_ready() -> None:
    template = _stage("pod-running")["spec"]["next"]["statusTemplate"]
    assert "podIP: {{ PodIPWith" in template
    assert "phase: Running" in template
    assert 'status: "False"\n  type: Ready' in template
    assert "ready: false" in template and "started: true" in template


def _sample_layout() -> tuple[build.Binaries, flags.StateLayout, flags.Ports]:
    binaries = build.Binaries(*(Path(f"/bin/{name}") for name in "abcdef"))
    return binaries, flags.StateLayout(Path("/state")), flags.Ports(1, 2, 3, 4, 5)


def test_apiserver_flags_follow_the_local_cluster_rules() -> None:
    args = flags.apiserver_args(*_sample_layout())
    for flag in (
        "--advertise-address=127.0.0.1",
        "--bind-address=127.0.0.1",
        "--endpoint-reconciler-type=none",
        "--authorization-mode=RBAC",
        "--secure-port=3",
        "--etcd-servers=http://127.0.0.1:1",
        f"--service-cluster-ip-range={flags.SERVICE_CLUSTER_IP_RANGE}",
        # On top of the defaults, as OpenShift has it: blockOwnerDeletion needs finalizers RBAC.
        "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
    ):
        assert flag in args


def test_kwok_flags() -> None:
    binaries, layout, _ = _sample_layout()
    args = flags.kwok_args(binaries, layout, "127.42.0.0/16")
    assert "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake" in args
    assert "--node-lease-duration-seconds=40" in args
    assert "--cidr=127.42.0.0/16" in args


def test_token_file_puts_the_admin_in_system_masters() -> None:
    lines = credentials.render_token_file({"admin": "t1", "system:kube-scheduler": "t2"})
    assert (
        lines == 't1,admin,admin,"system:masters"\nt2,system:kube-scheduler,system:kube-scheduler\n'
    )


def test_version_ldflags_and_module_version() -> None:
    assert (
        build.module_version(
            "require (\n\tk8s.io/kubernetes v1.36.3 // indirect\n)", "k8s.io/kubernetes"
        )
        == "v1.36.3"
    )
    assert "-X k8s.io/client-go/pkg/version.gitMinor=36" in build.version_ldflags("v1.36.3")


def test_helm_ldflags_set_its_version_and_the_kubernetes_version_lint_assumes() -> None:
    go_mod = "require (\n\tk8s.io/client-go v0.37.0 // indirect\n)"
    flags = build.helm_ldflags("v3.22.0", go_mod)
    assert "-X helm.sh/helm/v3/internal/version.version=v3.22.0" in flags
    assert "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37" in flags
    assert "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1" in flags
    command = build.go_build_command(build.HELM, "v3.22.0", Path("/out"), go_mod)
    assert command[-3:] == ["-o", "/out/helm", "helm.sh/helm/v3/cmd/helm"]


def test_the_cluster_binaries_leave_out_helm() -> None:
    """`make demo` builds only what it runs; helm is built for the chart test alone."""
    assert [component.name for component in build.COMPONENTS] == ["etcd", "kubernetes", "kwok"]
    assert build.HELM.binaries == ("helm",)


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "Upper", ".hidden"])
def test_cluster_names_cannot_escape_the_state_dir(name: str) -> None:
    with pytest.raises(ValueError, match="invalid cluster name"):
        paths.cluster_name(name)
