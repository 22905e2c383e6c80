"""Desired child objects of a ModelDeployment: a Deployment of engine pods, a Service and a
PodDisruptionBudget.

Pure: the same ModelDeployment always renders the same objects, with deterministic names and an
owner reference, so applying them again is a no-op and deleting the owner collects them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelfleet.api.types import API_VERSION, KIND, ModelDeployment, PlacementStatus
from modelfleet.autoscale.count import replica_count
from modelfleet.cost.budget import Budget
from modelfleet.render import cache
from modelfleet.render.engines import ENGINE_PORT, profile
from modelfleet.render.resources import SHM_PER_GPU_GIB, container_resources, shm_gib

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_TAINT_KEY = "nvidia.com/gpu"
OWNER_LABEL = "modelfleet.dev/deployment"
ENGINE_LABEL = "modelfleet.dev/engine"
MANAGED_BY = "modelfleet"
__all__ = ["SHM_PER_GPU_GIB"]  # re-exported: it used to live here
MODEL_DIR = "/models"
MODEL_LOAD_TIMEOUT_SECONDS = 30 * 60
PORT_NAME = "http"


def selector_labels(md: ModelDeployment) -> dict[str, str]:
    """Labels that select a deployment's engine pods; never change them (selectors are fixed)."""
    return {OWNER_LABEL: md.metadata.name}


def selector_string(md: ModelDeployment) -> str:
    return ",".join(f"{k}={v}" for k, v in selector_labels(md).items())


def endpoint_url(md: ModelDeployment) -> str:
    """In-cluster base URL of the OpenAI-compatible API."""
    meta = md.metadata
    return f"http://{meta.name}.{meta.namespace}.svc.cluster.local:{ENGINE_PORT}/v1"


def children(
    md: ModelDeployment,
    placement: PlacementStatus,
    budget: Budget | None = None,
    weights_ready: bool = True,
) -> list[dict[str, Any]]:
    """Every object the ModelDeployment owns, in apply order; `budget` caps the replicas.

    A shared weights cache comes first (volume, download Job); until its download succeeded
    (`weights_ready` False) the Deployment is left out: a new one waits, an existing one keeps
    serving the revision it has, and no pod ever mounts a half-filled volume.
    """
    engines = [deployment(md, placement, budget)] if weights_ready else []
    return [*cache.cache_children(md), *engines, service(md), disruption_budget(md)]


def _labels(md: ModelDeployment) -> dict[str, str]:
    return {
        **selector_labels(md),
        "app.kubernetes.io/name": md.metadata.name,
        "app.kubernetes.io/component": "inference-engine",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        ENGINE_LABEL: str(md.spec.engine),
    }


def _metadata(md: ModelDeployment) -> dict[str, Any]:
    return {
        "name": md.metadata.name,
        "namespace": md.metadata.namespace,
        "labels": _labels(md),
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": md.metadata.name,
                "uid": md.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


# Surge one replica and never take one away first: a rollout must not cut serving capacity;
# when no GPUs are free for the surge, status explains the wait.
SURGE = {"maxSurge": 1, "maxUnavailable": 0}
# Under a budget that cannot pay for one more replica: replace pods one by one instead.
REPLACE = {"maxSurge": 0, "maxUnavailable": 1}


def rollout_strategy(replicas: int, budget: Budget | None) -> dict[str, Any]:
    """Surge, unless the surge replica would cost more than a budget leaves (surge_allowed)."""
    surge = budget is None or not budget.applies or budget.surge_allowed(replicas)
    return {"type": "RollingUpdate", "rollingUpdate": dict(SURGE if surge else REPLACE)}


def deployment(
    md: ModelDeployment, placement: PlacementStatus, budget: Budget | None = None
) -> dict[str, Any]:
    spec = md.spec
    replicas = replica_count(spec, md.status, budget).replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(md),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(md)},
            "strategy": rollout_strategy(replicas, budget),
            "template": {
                "metadata": {"labels": {**_labels(md), **cache.engine_pod_labels(md)}},
                "spec": pod_spec(md, placement),
            },
        },
    }


def pod_spec(md: ModelDeployment, placement: PlacementStatus) -> dict[str, Any]:
    """The engine pod: the placement's GPUs, the user's scheduling and identity, hardened."""
    spec = md.spec
    pod: dict[str, Any] = {
        # The user's labels first: on the same key the placement's GPU label wins.
        "nodeSelector": {**spec.node_selector, placement.gpu_label: placement.gpu_product},
        "tolerations": [
            {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
            *(t.model_dump(by_alias=True, exclude_none=True) for t in spec.tolerations),
        ],
        "automountServiceAccountToken": spec.automount_service_account_token,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_engine_container(md, placement)],
        "volumes": [
            {
                "name": "dshm",
                "emptyDir": {
                    "medium": "Memory",
                    "sizeLimit": f"{shm_gib(placement.gpus_per_replica)}Gi",
                },
            },
            {"name": "model-cache", "emptyDir": {}},
            *cache.pod_volumes(md),
        ],
        # Engines drain in-flight requests on SIGTERM; long generations need time.
        "terminationGracePeriodSeconds": 60,
    }
    init = cache.init_containers(md)
    if init:
        pod["initContainers"] = init
    if spec.affinity is not None:
        pod["affinity"] = spec.affinity.model_dump(by_alias=True, exclude_defaults=True)
    if spec.priority_class_name:
        pod["priorityClassName"] = spec.priority_class_name
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s.name} for s in spec.image_pull_secrets]
    return pod


def _engine_container(md: ModelDeployment, placement: PlacementStatus) -> dict[str, Any]:
    spec = md.spec
    engine = profile(spec.engine)
    health = {"httpGet": {"path": engine.health_path, "port": PORT_NAME}}
    container: dict[str, Any] = {
        "name": "engine",
        "image": spec.image or engine.image,
        "args": engine.args(spec, placement, cache.model_path(md)),
        "ports": [{"name": PORT_NAME, "containerPort": ENGINE_PORT, "protocol": "TCP"}],
        "env": environment(md),
        "resources": container_resources(md, placement, GPU_RESOURCE),
        # Engines need no privilege: no escalation, no Linux capabilities. Root and a writable
        # root filesystem stay (docs/pods.md: the engine images write caches under $HOME).
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        # Loading weights can take many minutes: the startup probe allows for it, so liveness
        # never kills a replica that is still loading.
        "startupProbe": {
            **health,
            "periodSeconds": 10,
            "failureThreshold": MODEL_LOAD_TIMEOUT_SECONDS // 10,
        },
        "readinessProbe": {**health, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**health, "periodSeconds": 10, "failureThreshold": 6},
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "model-cache", "mountPath": MODEL_DIR},
            *cache.engine_mounts(md),
        ],
    }
    command = engine.command()
    if command:
        container["command"] = command
    if spec.env_from:
        container["envFrom"] = [
            e.model_dump(by_alias=True, exclude_none=True) for e in spec.env_from
        ]
    return container


def environment(md: ModelDeployment) -> list[dict[str, Any]]:
    """modelfleet's variables, then the user's (api.types.RESERVED_ENV keeps them apart).

    The Hugging Face token is a reference to the user's Secret under each name the engine
    reads: the kubelet resolves it, so its value is in no object modelfleet writes.
    """
    spec = md.spec
    env: list[dict[str, Any]] = [{"name": "HF_HOME", "value": MODEL_DIR}]
    if spec.hugging_face_token is not None:
        ref = spec.hugging_face_token.secret_key_ref.model_dump(by_alias=True, exclude_none=True)
        env += [
            {"name": name, "valueFrom": {"secretKeyRef": ref}}
            for name in profile(spec.engine).token_env
        ]
    env += [variable.model_dump(by_alias=True, exclude_none=True) for variable in spec.env]
    return env


def service(md: ModelDeployment) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(md),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(md),
            "ports": [
                {"name": PORT_NAME, "port": ENGINE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


def disruption_budget(md: ModelDeployment) -> dict[str, Any]:
    """At most one engine pod down to voluntary disruptions (node drains, evictions).

    maxUnavailable, not minAvailable: a one-replica deployment never blocks a drain, and the
    budget follows the replica count without being rewritten. AlwaysAllow lets a drain evict a
    pod that is not Ready (still loading weights, or crash-looping) rather than wait on it.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(md),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(md)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def serving(pod: Mapping[str, Any]) -> bool:
    """Running, Ready, with an IP, and not terminating: a pod whose engine should answer."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return (
        status.get("phase") == "Running"
        and ready
        and bool(status.get("podIP"))
        and not meta.get("deletionTimestamp")
    )


def already_applied(desired: Any, live: Any) -> bool:
    """Whether the live object already holds every field of the desired one, as applied.

    A resync re-renders every child; applying an unchanged one is still a write. Fields the API
    server adds (defaults, status, other managers' fields) are ignored; lists must match element
    by element; scalars compare as text, as quantities and ports come back ("1" and 1). Anything
    the server normalises differently only costs the apply this check would have saved.
    """
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and already_applied(value, live[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(already_applied(d, v) for d, v in zip(desired, live, strict=True))
        )
    if desired is None:
        return live is None
    return live is not None and str(desired) == str(live)
