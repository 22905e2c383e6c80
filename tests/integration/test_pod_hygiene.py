"""Pod hygiene on a real control plane: the PodDisruptionBudget, the user's scheduling fields on
the engine pods, no writes to unchanged children, and a Hugging Face token that stays in its
Secret."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.node_fixtures import a10g_pool, extra_nodes
from tests.integration.operator_fixtures import ModelDeployments, OperatorProcess, wait_until

pytestmark = pytest.mark.integration

L4 = "NVIDIA-L4"
SPEC = {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": L4, "count": 1}}
CHILD_KINDS = ("Deployment", "Service", "PodDisruptionBudget")


def engine_pods(api: Any, namespace: str, name: str) -> list[Any]:
    core: Any = client.CoreV1Api(api)
    selector = f"modelfleet.dev/deployment={name}"
    return list(core.list_namespaced_pod(namespace, label_selector=selector).items)


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def ready(mds: ModelDeployments, namespace: str, name: str) -> bool:
    return mds.condition(namespace, name, "Ready").get("status") == "True"


def read_pdb(api: Any, namespace: str, name: str) -> Any | None:
    try:
        return client.PolicyV1Api(api).read_namespaced_pod_disruption_budget(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def counter(operator_process: OperatorProcess, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(operator_process.metrics()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_a_disruption_budget_follows_replicas_and_goes_with_the_deployment(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    md = mds.create(namespace, "budgeted", {**SPEC, "replicas": 2})
    wait_until(lambda: ready(mds, namespace, "budgeted"), 90, "Ready")

    pdb = wait_until(lambda: read_pdb(api, namespace, "budgeted"), 30, "the PodDisruptionBudget")
    assert pdb.spec.max_unavailable == 1
    assert pdb.spec.min_available is None
    assert pdb.spec.unhealthy_pod_eviction_policy == "AlwaysAllow"
    assert pdb.spec.selector.match_labels == {"modelfleet.dev/deployment": "budgeted"}
    [owner] = pdb.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == (
        "ModelDeployment",
        "budgeted",
        md["metadata"]["uid"],
    )

    # The disruption controller counts the pods it guards: the budget follows the replicas.
    def guarding(count: int) -> bool:
        status = (
            client.PolicyV1Api(api)
            .read_namespaced_pod_disruption_budget("budgeted", namespace)
            .status
        )
        return (status.expected_pods, status.current_healthy, status.disruptions_allowed) == (
            count,
            count,
            1,
        )

    wait_until(lambda: guarding(2), 60, "the budget guarding 2 healthy pods, 1 disruption allowed")
    mds.patch_spec(namespace, "budgeted", {"replicas": 3})
    wait_until(lambda: guarding(3), 90, "the budget guarding 3 healthy pods")
    assert read_pdb(api, namespace, "budgeted").spec.max_unavailable == 1  # never rewritten

    mds.delete(namespace, "budgeted")
    wait_until(lambda: read_pdb(api, namespace, "budgeted") is None, 60, "the budget collected")


TAINT = {"key": "dedicated", "value": "inference", "effect": "NoSchedule"}


def test_user_scheduling_and_identity_reach_the_pods_without_rewrites(
    api: Any, namespace: str, mds: ModelDeployments, operator_process: OperatorProcess
) -> None:
    """Tolerations, affinity, nodeSelector, priority class, pull secrets and ServiceAccount land
    on the pods, which schedule only on the tainted, labelled node the user asked for; then a
    steady state writes no child (quantities given as "0.5" come back as "500m")."""
    core: Any = client.CoreV1Api(api)
    scheduling: Any = client.SchedulingV1Api(api)
    priority = f"inference-{secrets.token_hex(3)}"
    scheduling.create_priority_class(
        {"metadata": {"name": priority}, "value": 1000, "globalDefault": False}
    )
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "engines"}})
    pool = a10g_pool(f"hygiene-{secrets.token_hex(2)}", nodes=2, gpus_per_node=2)
    try:
        with extra_nodes(core, pool) as names:
            dedicated, _other = names
            # Both nodes are alike but for this label and taint: only the user's fields pick.
            taints = [t.to_dict() for t in core.read_node(dedicated).spec.taints or []]
            core.patch_node(
                dedicated,
                {
                    "metadata": {"labels": {"pool": "dedicated"}},
                    "spec": {"taints": [*taints, TAINT]},
                },
            )
            spec = {
                "model": "Qwen/Qwen2.5-7B-Instruct",
                "gpu": {"product": "NVIDIA-A10G", "count": 1},
                "replicas": 2,
                "nodeSelector": {"pool": "dedicated"},
                "tolerations": [{**TAINT, "operator": "Equal"}],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "kubernetes.io/hostname",
                                            "operator": "In",
                                            "values": [dedicated],
                                        }
                                    ]
                                }
                            ]
                        }
                    }
                },
                "priorityClassName": priority,
                "imagePullSecrets": [{"name": "registry"}],
                "serviceAccountName": "engines",
                "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}},
                "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}],
            }
            mds.create(namespace, "placed", spec)
            wait_until(lambda: ready(mds, namespace, "placed"), 90, "Ready on the dedicated node")

            pods = engine_pods(api, namespace, "placed")
            assert len(pods) == 2 and all(is_ready(p) for p in pods)
            for pod in pods:
                assert pod.spec.node_name == dedicated
                assert pod.spec.node_selector == {
                    "pool": "dedicated",
                    "nvidia.com/gpu.product": "NVIDIA-A10G",
                }
                tolerated = {(t.key, t.operator, t.value, t.effect) for t in pod.spec.tolerations}
                assert ("dedicated", "Equal", "inference", "NoSchedule") in tolerated
                assert ("nvidia.com/gpu", "Exists", None, "NoSchedule") in tolerated
                node_affinity = pod.spec.affinity.node_affinity
                required = node_affinity.required_during_scheduling_ignored_during_execution
                assert required.node_selector_terms[0].match_expressions[0].values == [dedicated]
                assert pod.spec.priority_class_name == priority
                assert pod.spec.priority == 1000
                assert [s.name for s in pod.spec.image_pull_secrets] == ["registry"]
                assert pod.spec.service_account_name == "engines"
                assert pod.spec.automount_service_account_token is False
                assert pod.spec.security_context.seccomp_profile.type == "RuntimeDefault"
                [container] = pod.spec.containers
                assert container.security_context.allow_privilege_escalation is False
                assert container.security_context.capabilities.drop == ["ALL"]
                assert container.resources.requests == {
                    "cpu": "500m",
                    "memory": "1Gi",
                    "nvidia.com/gpu": "1",
                }
                assert container.resources.limits == {"memory": "1Gi", "nvidia.com/gpu": "1"}

            # Steady state: resyncs every 2 s find every child as applied.
            def applies() -> float:
                return sum(
                    counter(operator_process, "modelfleet_child_applies_total", {"kind": kind})
                    for kind in CHILD_KINDS
                )

            def timer_runs() -> float:
                labels = {"trigger": "timer", "result": "ok"}
                return counter(operator_process, "modelfleet_reconciles_total", labels)

            before, seen = applies(), timer_runs()
            wait_until(lambda: timer_runs() >= seen + 3, 60, "three more periodic reconciles")
            assert applies() == before, "a resync re-applied unchanged children"
            mds.delete(namespace, "placed")
            wait_until(lambda: not engine_pods(api, namespace, "placed"), 60, "pods gone")
    finally:
        scheduling.delete_priority_class(priority)


def _text(api: Any, obj: Any) -> str:
    return json.dumps(api.sanitize_for_serialization(obj))


def test_a_hugging_face_token_stays_in_its_secret(
    api: Any, namespace: str, mds: ModelDeployments, operator: Path
) -> None:
    """The token reaches the engine only by reference: no object the operator wrote (the
    Deployment and its ReplicaSet, the pods, the Service, the budget, the ModelDeployment and
    its status, the Events) and no line of the operator's log holds it, plain or base64."""
    token = f"hf_{secrets.token_hex(16)}"
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "hf"}, "stringData": {"token": token}}
    )
    spec = {
        **SPEC,
        "huggingFaceToken": {"secretKeyRef": {"name": "hf", "key": "token"}},
        "env": [{"name": "EXTRA", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}],
    }
    mds.create(namespace, "gated", spec)
    wait_until(lambda: ready(mds, namespace, "gated"), 90, "Ready")
    [pod] = engine_pods(api, namespace, "gated")
    env = {e.name: e for e in pod.spec.containers[0].env}
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "EXTRA"):
        assert env[name].value is None
        ref = env[name].value_from.secret_key_ref
        assert (ref.name, ref.key) == ("hf", "token")

    apps: Any = client.AppsV1Api(api)
    written = {
        "Deployment": apps.read_namespaced_deployment("gated", namespace),
        "ReplicaSets": apps.list_namespaced_replica_set(namespace),
        "Pods": core.list_namespaced_pod(namespace),
        "Service": core.read_namespaced_service("gated", namespace),
        "PodDisruptionBudget": client.PolicyV1Api(api).read_namespaced_pod_disruption_budget(
            "gated", namespace
        ),
        "ModelDeployment": mds.get(namespace, "gated"),
        "Events": core.list_namespaced_event(namespace),
        "ConfigMaps": core.list_namespaced_config_map(namespace),
    }
    assert written["Events"].items, "the operator posts events (Ready): something to search"
    encoded = base64.b64encode(token.encode()).decode()
    secret = core.read_namespaced_secret("hf", namespace)
    assert encoded in _text(api, secret)  # the search below would find it
    for kind, obj in written.items():
        text = _text(api, obj)
        assert token not in text and encoded not in text, f"the token is in the {kind}"
    log = operator.read_text()
    assert "Handler 'on_change' succeeded" in log  # the operator handled it and logged
    assert token not in log and encoded not in log, "the token is in the operator's log"
