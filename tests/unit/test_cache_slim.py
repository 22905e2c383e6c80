"""The engine indexes keep slimmed bodies (issue 10: memory); every reader still sees its fields.

The live objects below are the rendered children and an engine pod as the local control plane's
API server hands them back (defaults, status, managed fields and server bookkeeping added), so a
field the slimming drops that a reader needs fails here.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from modelfleet.api.types import PlacementStatus
from modelfleet.cost.spend import pod_interval
from modelfleet.handlers.cache import slim_deployment, slim_pod, slim_service
from modelfleet.handlers.scrapes import engine_pod
from modelfleet.plan.inventory import pod_gpus
from modelfleet.render.children import already_applied, children, serving
from modelfleet.status.conditions import Observed, compute_status
from tests.unit.factories import model_deployment, node

PLACEMENT = PlacementStatus(gpu_product="NVIDIA-L4", gpus_per_replica=1, tensor_parallel=1)
NOW = "2026-12-01T18:40:00Z"
MANAGED_FIELDS = [
    {
        "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app.kubernetes.io/name": {}}}},
        "manager": "modelfleet",
        "operation": "Apply",
        "time": "2026-12-01T18:32:15Z",
    }
]
PROBE_DEFAULTS = {"successThreshold": 1, "timeoutSeconds": 1}


def served_deployment(child: dict[str, Any]) -> dict[str, Any]:
    """The Deployment as the API server returns it (copied from a local-cluster object)."""
    live = copy.deepcopy(child)
    meta = live["metadata"]
    meta |= {
        "annotations": {"deployment.kubernetes.io/revision": "2"},
        "creationTimestamp": "2026-12-01T18:32:15Z",
        "generation": 2,
        "managedFields": MANAGED_FIELDS,
        "resourceVersion": "9661",
        "uid": "ec5a042f-0eb6-448a-bcf5-89918ade3a21",
    }
    spec = live["spec"]
    spec |= {"progressDeadlineSeconds": 600, "revisionHistoryLimit": 10}
    pod_spec = spec["template"]["spec"]
    pod_spec |= {
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
    }
    pod_spec.setdefault("securityContext", {})  # the server's default when none is rendered
    for container in pod_spec["containers"]:
        container |= {
            "imagePullPolicy": "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            container[probe] |= PROBE_DEFAULTS
            container[probe]["httpGet"]["scheme"] = "HTTP"
    live["status"] = {
        "availableReplicas": 1,
        "conditions": [
            {
                "lastTransitionTime": "2026-12-01T18:32:18Z",
                "lastUpdateTime": "2026-12-01T18:32:18Z",
                "message": "Deployment has minimum availability.",
                "reason": "MinimumReplicasAvailable",
                "status": "True",
                "type": "Available",
            },
            {
                "lastTransitionTime": "2026-12-01T18:32:16Z",
                "lastUpdateTime": "2026-12-01T18:35:30Z",
                "message": 'Created new replica set "md-0010-f78b9674c"',
                "reason": "NewReplicaSetCreated",
                "status": "True",
                "type": "Progressing",
            },
        ],
        "observedGeneration": 2,
        "readyReplicas": 1,
        "replicas": 1,
        "terminatingReplicas": 0,
        "updatedReplicas": 1,
    }
    return live


def served_service(child: dict[str, Any]) -> dict[str, Any]:
    live = copy.deepcopy(child)
    live["metadata"] |= {
        "creationTimestamp": "2026-12-01T18:32:16Z",
        "managedFields": MANAGED_FIELDS,
        "resourceVersion": "785",
        "uid": "dea0d050-2e10-4286-8b14-92de7cb8ee87",
    }
    live["spec"] |= {
        "clusterIP": "10.96.31.99",
        "clusterIPs": ["10.96.31.99"],
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "sessionAffinity": "None",
    }
    live["spec"]["ports"][0]["protocol"] = "TCP"
    live["status"] = {"loadBalancer": {}}
    return live


def engine_pod_body(
    *,
    ready: bool = True,
    deleting: bool = False,
    unschedulable: bool = False,
    waiting: str = "",
) -> dict[str, Any]:
    """An engine pod of the rendered Deployment as the watch delivers it."""
    template = children(model_deployment(), PLACEMENT)[0]["spec"]["template"]
    spec = copy.deepcopy(template["spec"])
    spec["containers"][0]["volumeMounts"].append(
        {"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access"}
    )
    spec |= {"dnsPolicy": "ClusterFirst", "priority": 0, "serviceAccountName": "default"}
    if not unschedulable:
        spec["nodeName"] = "l4-a-0"
    scheduled = {
        "lastProbeTime": None,
        "lastTransitionTime": "2026-12-01T18:32:17Z",
        "status": "True",
        "type": "PodScheduled",
    }
    if unschedulable:
        scheduled |= {
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/7 nodes are available: 2 Insufficient nvidia.com/gpu.",
        }
    conditions = [
        scheduled,
        {
            "lastProbeTime": None,
            "lastTransitionTime": "2026-12-01T18:32:18Z",
            "status": "True" if ready else "False",
            "type": "Ready",
        },
    ]
    state: dict[str, Any] = {"running": {"startedAt": "2026-12-01T18:32:16Z"}}
    if waiting:
        state = {"waiting": {"reason": waiting, "message": "back-off 5m0s restarting"}}
    metadata: dict[str, Any] = {
        "creationTimestamp": "2026-12-01T18:32:16Z",
        "generateName": "qwen-7778997b8f-",
        "labels": {**template["metadata"]["labels"], "pod-template-hash": "7778997b8f"},
        "managedFields": MANAGED_FIELDS,
        "name": "qwen-7778997b8f-vxzpd",
        "namespace": "team-a",
        "ownerReferences": [{"kind": "ReplicaSet", "name": "qwen-7778997b8f", "uid": "rs-1"}],
        "resourceVersion": "946",
        "uid": "2ec3c5a4-ebfa-4805-93d8-4744a32a8960",
    }
    if deleting:
        metadata |= {"deletionTimestamp": "2026-12-01T18:39:00Z", "deletionGracePeriodSeconds": 60}
    status: dict[str, Any] = {
        "conditions": conditions,
        "phase": "Pending" if unschedulable else "Running",
        "qosClass": "BestEffort",
    }
    if not unschedulable:
        status |= {
            "containerStatuses": [
                {
                    "image": "vllm/vllm-openai:v0.11.0",
                    "imageID": "",
                    "lastState": {},
                    "name": "engine",
                    "ready": ready,
                    "restartCount": 0,
                    "started": True,
                    "state": state,
                }
            ],
            "hostIP": "127.0.0.1",
            "podIP": "127.127.0.3",
            "podIPs": [{"ip": "127.127.0.3"}],
            "startTime": "2026-12-01T18:32:16Z",
        }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def test_rendered_children_are_already_applied_to_their_slimmed_live_copies() -> None:
    md = model_deployment(replicas=1)
    deployment, service, pdb = children(md, PLACEMENT)
    assert already_applied(deployment, slim_deployment(served_deployment(deployment)))
    assert already_applied(service, slim_service(served_service(service)))
    served_pdb = copy.deepcopy(pdb)
    served_pdb["metadata"] |= {"managedFields": MANAGED_FIELDS, "resourceVersion": "786"}
    served_pdb["status"] = {"currentHealthy": 1, "desiredHealthy": 0, "expectedPods": 1}
    assert already_applied(pdb, slim_service(served_pdb))  # engine_pdbs slims it alike


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"replicas": 2}, id="replicas"),
        pytest.param({"image": "vllm/vllm-openai:v0.12.0"}, id="image"),
        pytest.param({"extraArgs": ["--max-num-seqs=64"]}, id="args"),
    ],
)
def test_a_changed_spec_is_not_already_applied_after_slimming(change: dict[str, Any]) -> None:
    before = children(model_deployment(replicas=1), PLACEMENT)[0]
    after = children(model_deployment(**{"replicas": 1, **change}), PLACEMENT)[0]
    assert not already_applied(after, slim_deployment(served_deployment(before)))


def test_slimmed_children_drop_what_no_reader_needs() -> None:
    deployment, service, _ = children(model_deployment(), PLACEMENT)
    slim = slim_deployment(served_deployment(deployment))
    assert "managedFields" not in slim["metadata"]
    assert "resourceVersion" not in slim["metadata"]
    assert "lastUpdateTime" not in slim["status"]["conditions"][0]
    assert "status" not in slim_service(served_service(service))
    pod = slim_pod(engine_pod_body())
    assert set(pod["spec"]) == {"nodeName", "containers"}
    assert set(pod["spec"]["containers"][0]) == {"name", "resources"}
    assert "managedFields" not in pod["metadata"]
    assert "lastState" not in pod["status"]["containerStatuses"][0]


POD_CASES = [
    pytest.param({}, id="ready"),
    pytest.param({"ready": False}, id="loading"),
    pytest.param({"deleting": True}, id="terminating"),
    pytest.param({"unschedulable": True}, id="unschedulable"),
    pytest.param({"waiting": "CrashLoopBackOff", "ready": False}, id="crash-looping"),
]


@pytest.mark.parametrize("pod_case", POD_CASES)
@pytest.mark.parametrize("stuck", [False, True])
def test_compute_status_is_the_same_on_full_and_slimmed_bodies(
    pod_case: dict[str, Any], stuck: bool
) -> None:
    md = model_deployment(replicas=1)
    deployment = served_deployment(children(md, PLACEMENT)[0])
    if stuck:
        deployment["status"]["conditions"][1] |= {
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "qwen-1" has timed out progressing.',
            "status": "False",
        }
    deployment["status"]["readyReplicas"] = 0 if pod_case else 1
    pods = [engine_pod_body(**pod_case), engine_pod_body()]
    nodes = [node("NVIDIA-L4", 4), node("NVIDIA-A100-80GB", 8)]
    full = Observed(deployment, pods, nodes)
    slim = Observed(slim_deployment(deployment), [slim_pod(p) for p in pods], nodes)
    assert compute_status(md, slim, PLACEMENT, 2, NOW) == compute_status(
        md, full, PLACEMENT, 2, NOW
    )


@pytest.mark.parametrize("pod_case", POD_CASES)
def test_pod_readers_see_the_same_on_full_and_slimmed_pods(pod_case: dict[str, Any]) -> None:
    full = engine_pod_body(**pod_case)
    slim = slim_pod(full)
    assert serving(slim) == serving(full)
    assert engine_pod(slim) == engine_pod(full)
    assert pod_gpus(slim) == pod_gpus(full) == 1
    assert pod_interval(slim, 0.8) == pod_interval(full, 0.8)
    for key in ("name", "namespace", "uid", "labels", "creationTimestamp", "deletionTimestamp"):
        assert slim["metadata"].get(key) == full["metadata"].get(key)
    assert slim["spec"].get("nodeName") == full["spec"].get("nodeName")
    assert [(c["name"], c["resources"]) for c in slim["spec"]["containers"]] == [
        (c["name"], c["resources"]) for c in full["spec"]["containers"]
    ]
    scheduled = [c for c in full["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert [c for c in slim["status"]["conditions"] if c["type"] == "PodScheduled"] == [
        {k: v for k, v in c.items() if k != "lastProbeTime"} for c in scheduled
    ]


def test_slimmed_bodies_share_their_strings() -> None:
    """Interned: a thousand pods hold one copy of each label key and repeated value, where
    decoding each watch event's JSON makes new ones."""
    one, two = (slim_pod(json.loads(json.dumps(engine_pod_body()))) for _ in range(2))
    key = "app.kubernetes.io/managed-by"
    assert next(k for k in one["metadata"]["labels"] if k == key) is next(
        k for k in two["metadata"]["labels"] if k == key
    )
    assert one["status"]["phase"] is two["status"]["phase"]


def test_the_weights_readers_see_their_fields_in_the_slim_bodies() -> None:
    """Download Jobs, volumes and pods as the API server returns them (trimmed from local-cluster
    objects): job_state, cache_status, superseded and the progress pod pick read the same."""
    from modelfleet.handlers.cache import WEIGHTS_METADATA, slim_job
    from modelfleet.render import cache
    from modelfleet.status.cache import cache_status, job_state

    md = model_deployment(cache={"size": "40Gi"}, modelRevision="v2")
    rendered_job = cache.download_job(md)
    job = copy.deepcopy(rendered_job)
    job["metadata"] |= {
        "uid": "9b1", "resourceVersion": "77", "generation": 1, "managedFields": MANAGED_FIELDS,
        "deletionTimestamp": "2026-12-01T18:40:00Z",
    }  # fmt: skip
    job["status"] = {
        "startTime": "2026-12-01T18:32:15Z",
        "completionTime": "2026-12-01T18:32:30Z",
        "succeeded": 1,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
             "message": "Reached expected number of succeeded pods",
             "lastProbeTime": NOW, "lastTransitionTime": NOW},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached",
             "message": "Reached expected number of succeeded pods",
             "lastProbeTime": NOW, "lastTransitionTime": NOW},
        ],
    }  # fmt: skip
    slim = slim_job(job)
    assert job_state(slim) == job_state(job) == "Succeeded"
    assert cache_status(md, slim) == cache_status(md, job)
    assert cache.superseded(model_deployment(), [slim], True) == []  # being deleted already
    del job["metadata"]["deletionTimestamp"]
    assert cache.superseded(model_deployment(), [slim_job(job)], True) == [slim_job(job)]
    assert cache.superseded(md, [slim_job(job)], True) == []  # the current revision's
    slim = slim_job({**job, "metadata": {**job["metadata"], "deletionTimestamp": NOW}})
    assert slim["metadata"]["deletionTimestamp"]
    assert set(slim["metadata"]) <= set(WEIGHTS_METADATA)
    assert slim["apiVersion"] == "batch/v1" and slim["kind"] == "Job"


@pytest.mark.parametrize(
    "init_status",
    [
        {"state": {"running": {"startedAt": NOW}}},
        {
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
            "lastState": {
                "terminated": {"exitCode": 2, "reason": "Error", "message": "hf exited with 1",
                               "startedAt": NOW, "finishedAt": NOW, "containerID": "containerd://1"}
            },
        },
        {"state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": NOW,
                                  "finishedAt": NOW, "containerID": "containerd://2"}}},
    ],
)  # fmt: skip
def test_the_per_node_readers_see_the_same_on_full_and_slimmed_pods(
    init_status: dict[str, Any],
) -> None:
    """PerNode status reads each engine pod's weights init container (status/cache.pod_fill)."""
    from modelfleet.status.cache import node_fills, pod_fill

    full = engine_pod_body()
    full["metadata"]["labels"]["modelfleet.dev/cache-key"] = "k"
    full["status"]["initContainerStatuses"] = [
        {"name": "weights", "image": "python", "imageID": "sha", "ready": False,
         "restartCount": 1, "started": False, **init_status}
    ]  # fmt: skip
    slim = slim_pod(full)
    assert pod_fill(slim) == pod_fill(full) is not None
    assert node_fills([slim], "k") == node_fills([full], "k") != []
    assert "imageID" not in slim["status"]["initContainerStatuses"][0]
