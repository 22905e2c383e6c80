"""What the operator knows of the cluster between API calls: kopf indexes over the watch streams.

Reconciles used to LIST every Pod and Node of the cluster; now four indexes, filled from watches
kopf keeps anyway, answer every read a reconcile or a status refresh needs:
- gpu_nodes: every Node, slimmed to what the planner and cost read (labels, the GPU price
  annotation, capacity, allocatable, readiness);
- gpu_pods: pods that hold GPUs on a node, slimmed to node, GPUs and owner labels (other
  workloads' GPUs count too, so this watch cannot be label-filtered; terminal pods are filtered
  out server-side);
- engine_pods, engine_deployments, engine_services and engine_pdbs: modelfleet's own children,
  by owner (Deployments, Services and PodDisruptionBudgets are label-filtered server-side); a
  resync applies a child only when it differs from what the watch last saw
  (render.children.already_applied);
- budget_namespaces and budget_deployments (handlers/budgets.py): what a budget reads.
Every engine index keeps a slimmed copy with interned strings, never the watched body (issue 10:
at a thousand deployments the full bodies were ~48 KB of Python objects per deployment, the
slimmed ones ~20 KB): a pod keeps identity, labels, times, node, containers' names and
resources, phase, IP, conditions, container states and init containers' (last) states; a
Deployment, Service or PodDisruptionBudget keeps apiVersion, kind, identity, labels,
annotations, owner references and the whole spec (already_applied compares every rendered
field), and a Deployment its replica counts and conditions. A new reader of a dropped field
must add it here (tests/unit/test_cache_slim.py checks the readers on full and slim bodies).
kopf fills the indexes from the initial listing before it runs any handler, so a restarted
operator never plans on an empty cluster. They are read in the event loop (ClusterView.take),
then handed to the pooled thread as plain lists: kopf mutates them only in the loop.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from modelfleet.api.types import ModelDeployment, PlacementStatus
from modelfleet.autoscale.budget import budget_for
from modelfleet.cost.budget import Budget
from modelfleet.cost.node_prices import GPU_HOURLY_ANNOTATION
from modelfleet.handlers import budgets
from modelfleet.plan.inventory import GPU_RESOURCE, pod_gpus
from modelfleet.render.cache import CACHE_KEY_LABEL, WEIGHTS_OF_LABEL
from modelfleet.render.children import MANAGED_BY, OWNER_LABEL

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CHILD_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
# The kopf indexes below, by name (handlers.main hands them to ClusterView.take).
INDEXES = (
    "gpu_nodes",
    "gpu_pods",
    "engine_pods",
    "engine_deployments",
    "engine_services",
    "engine_pdbs",
    "budget_namespaces",
    "budget_deployments",
    "weights_jobs",
    "weights_volumes",
    "weights_pods",
)
# kopf keeps one worker per object that had an event, holding that event's whole body, until no
# event came for this long (kopf's default: 5 s): during a rollout of hundreds of deployments that
# is hundreds of full bodies at once. A worker that exits is started again by the next event.
IDLE_WORKER_SECONDS = 0.5
# The initial listing of each watched resource in pages of this many objects, not one response
# holding every object (a restart at a thousand deployments lists thousands of pods).
LIST_CHUNK = 200


def watch_selectors(settings: kopf.OperatorSettings) -> None:
    """Server-side filters on the watch streams (and their initial lists), and how much of each
    stream kopf holds at once (issue 10: memory)."""
    settings.watching.label_selectors["apps", "deployments"] = CHILD_SELECTOR
    settings.watching.label_selectors["", "services"] = CHILD_SELECTOR
    settings.watching.label_selectors["policy", "poddisruptionbudgets"] = CHILD_SELECTOR
    settings.watching.label_selectors["batch", "jobs"] = CHILD_SELECTOR
    settings.watching.label_selectors["", "persistentvolumeclaims"] = CHILD_SELECTOR
    settings.watching.field_selectors["", "pods"] = LIVE_PODS
    settings.queueing.idle_timeout = IDLE_WORKER_SECONDS
    settings.watching.chunk_size = LIST_CHUNK


@kopf.index("", "v1", "nodes")
def gpu_nodes(body: kopf.Body, **_: Any) -> dict[None, dict[str, Any]]:
    status = body.get("status") or {}
    name = body.metadata.name
    return {
        None: _compact(
            {
                "metadata": {
                    "name": name,
                    "labels": dict(body.metadata.labels or {}),
                    "annotations": {
                        key: value
                        for key, value in (body.metadata.annotations or {}).items()
                        if key == GPU_HOURLY_ANNOTATION
                    },
                },
                "spec": {"unschedulable": bool((body.get("spec") or {}).get("unschedulable"))},
                "status": {
                    "allocatable": {
                        GPU_RESOURCE: (status.get("allocatable") or {}).get(GPU_RESOURCE)
                    },
                    "capacity": {GPU_RESOURCE: (status.get("capacity") or {}).get(GPU_RESOURCE)},
                    "conditions": [
                        {"type": c.get("type"), "status": c.get("status")}
                        for c in status.get("conditions") or []
                        if c.get("type") == "Ready"
                    ],
                },
            }
        )
    }


@kopf.index("", "v1", "pods")
def gpu_pods(body: kopf.Body, **_: Any) -> dict[None, dict[str, Any]] | None:
    namespace = body.metadata.namespace
    node = (body.get("spec") or {}).get("nodeName")
    gpus = pod_gpus(body)
    if not node or not gpus:
        return None  # holds no GPU (yet)
    return {
        None: _compact(
            {
                "metadata": {"namespace": namespace, "labels": dict(body.metadata.labels or {})},
                "spec": {
                    "nodeName": node,
                    "containers": [{"resources": {"limits": {GPU_RESOURCE: str(gpus)}}}],
                },
                "status": {"phase": (body.get("status") or {}).get("phase")},
            }
        )
    }


@kopf.index("", "v1", "pods", labels={OWNER_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY})
def engine_pods(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {_owner(body): slim_pod(body)}


@kopf.index(
    "apps", "v1", "deployments", labels={OWNER_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY}
)
def engine_deployments(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {_owner(body): slim_deployment(body)}


@kopf.index("", "v1", "services", labels={OWNER_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY})
def engine_services(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {_owner(body): slim_service(body)}


@kopf.index(
    "policy",
    "v1",
    "poddisruptionbudgets",
    labels={OWNER_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY},
)
def engine_pdbs(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {_owner(body): slim_service(body)}  # like a Service: the whole spec, no status


# The weights cache (render/cache.py): download Jobs and volumes by owner, and the download
# pods (labelled weights-of, never as engine replicas) for their progress endpoint.
@kopf.index("batch", "v1", "jobs", labels={OWNER_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY})
def weights_jobs(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {_owner(body): slim_job(body)}


@kopf.index(
    "",
    "v1",
    "persistentvolumeclaims",
    labels={OWNER_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY},
)
def weights_volumes(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    slim = _pick(body, ("apiVersion", "kind"))
    slim["metadata"] = _pick(body.get("metadata") or {}, WEIGHTS_METADATA)
    slim["status"] = _pick(body.get("status") or {}, ("phase",))
    return {_owner(body): _compact(slim)}


@kopf.index("", "v1", "pods", labels={WEIGHTS_OF_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY})
def weights_pods(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    owner = (str(body.metadata.namespace), str(body.metadata.labels[WEIGHTS_OF_LABEL]))
    status = body.get("status") or {}
    return {
        owner: _compact(
            {
                "metadata": _pick(body.get("metadata") or {}, ("name", "labels")),
                "status": _pick(status, POD_STATUS),
            }
        )
    }


JOB_STATUS = ("active", "succeeded", "failed", "ready")
# Jobs and volumes are created once and never re-applied (their specs are immutable): identity,
# labels (the cache key) and whether they are being deleted (superseded ones are deleted once).
WEIGHTS_METADATA = ("name", "namespace", "uid", "labels", "deletionTimestamp")


def slim_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """A download Job: identity, and how far it is (never re-applied: create only)."""
    status = body.get("status") or {}
    slim: dict[str, Any] = {
        **_pick(body, ("apiVersion", "kind")),
        "metadata": _pick(body.get("metadata") or {}, WEIGHTS_METADATA),
        "status": _pick(status, JOB_STATUS),
    }
    if "conditions" in status:
        slim["status"]["conditions"] = [
            _pick(c, DEPLOYMENT_CONDITION) for c in status["conditions"] or []
        ]
    return _compact(slim)


def weights_key_of(obj: Mapping[str, Any]) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(CACHE_KEY_LABEL) or "")


def _owner(body: kopf.Body) -> tuple[str, str]:
    return str(body.metadata.namespace), str(body.metadata.labels[OWNER_LABEL])


# What the readers of the engine indexes read; everything else of the watched body is dropped.
# Readers: status/conditions.compute_status, handlers/modeldeployment (_observe, cost wiring),
# handlers/autoscaler (render.children.serving, scrapes.Samples.load), cost/spend.pod_interval,
# handlers/metrics.publish_opencost, and render.children.already_applied for the live
# Deployment and Service (every field the operator renders: apiVersion, kind, metadata name,
# namespace, labels, annotations, ownerReferences, and the whole spec).
POD_METADATA = (
    "name",
    "namespace",
    "uid",
    "labels",
    "creationTimestamp",
    "deletionTimestamp",
)
POD_CONTAINER = ("name", "resources")
POD_STATUS = ("phase", "podIP")
POD_CONDITION = ("type", "status", "reason", "message", "lastTransitionTime")
CONTAINER_STATUS = ("name", "ready", "restartCount", "state")
# PerNode's weights init container (status/cache.pod_fill): its last run tells a permanent
# failure (exit 2, with the termination message) while the kubelet waits to restart it.
INIT_CONTAINER_STATUS = ("name", "state", "lastState")
CHILD_METADATA = (
    "name",
    "namespace",
    "uid",
    "generation",
    "labels",
    "annotations",
    "ownerReferences",
)
DEPLOYMENT_STATUS = (
    "observedGeneration",
    "replicas",
    "readyReplicas",
    "updatedReplicas",
    "availableReplicas",
    "unavailableReplicas",
)
DEPLOYMENT_CONDITION = ("type", "status", "reason", "message")


def slim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """An engine pod as its readers see it: identity, labels, times, node, GPUs, readiness."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    slim: dict[str, Any] = {"metadata": _pick(body.get("metadata") or {}, POD_METADATA)}
    slim["spec"] = _pick(spec, ("nodeName",))
    for key in ("containers", "initContainers"):
        if key in spec:
            slim["spec"][key] = [_pick(c, POD_CONTAINER) for c in spec[key] or []]
    slim["status"] = _pick(status, POD_STATUS)
    if "conditions" in status:
        slim["status"]["conditions"] = [_pick(c, POD_CONDITION) for c in status["conditions"] or []]
    if "containerStatuses" in status:
        slim["status"]["containerStatuses"] = [
            _pick(c, CONTAINER_STATUS) for c in status["containerStatuses"] or []
        ]
    if "initContainerStatuses" in status:
        slim["status"]["initContainerStatuses"] = [
            _pick(c, INIT_CONTAINER_STATUS) for c in status["initContainerStatuses"] or []
        ]
    return _compact(slim)


def slim_deployment(body: Mapping[str, Any]) -> dict[str, Any]:
    """An engine Deployment: what already_applied compares (the whole spec), and its rollout."""
    status = body.get("status") or {}
    slim = _slim_child(body)
    slim["status"] = _pick(status, DEPLOYMENT_STATUS)
    if "conditions" in status:
        slim["status"]["conditions"] = [
            _pick(c, DEPLOYMENT_CONDITION) for c in status["conditions"] or []
        ]
    return _compact(slim)


def slim_service(body: Mapping[str, Any]) -> dict[str, Any]:
    """An engine Service: what already_applied compares (the whole spec); no status."""
    return _compact(_slim_child(body))


def _slim_child(body: Mapping[str, Any]) -> dict[str, Any]:
    slim = _pick(body, ("apiVersion", "kind", "spec"))
    slim["metadata"] = _pick(body.get("metadata") or {}, CHILD_METADATA)
    return slim


def _pick(mapping: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The keys of `mapping` that are present (an absent key stays absent, a null stays null)."""
    return {key: mapping[key] for key in keys if key in mapping}


def _compact(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with every string interned: the thousands of bodies in the indexes share one copy
    of each key ("metadata", "app.kubernetes.io/managed-by", ...) and of each repeated value
    (images, probe paths, label values), where JSON decoding gives every object its own."""
    return {_intern(key): _compact_value(value) for key, value in mapping.items()}


def _compact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _compact(value)
    if isinstance(value, list):
        return [_compact_value(item) for item in value]
    return _intern(value)


def _intern(value: Any) -> Any:
    return sys.intern(value) if type(value) is str else value


@dataclass(frozen=True)
class ClusterView:
    """Plain copies of what one reconcile of one ModelDeployment reads."""

    nodes: list[dict[str, Any]]
    gpu_pods: list[dict[str, Any]]
    own_pods: list[dict[str, Any]]
    own_deployment: dict[str, Any] | None
    own_service: dict[str, Any] | None = None
    own_pdb: dict[str, Any] | None = None
    budget: budgets.BudgetInputs = field(default_factory=budgets.BudgetInputs)
    own_jobs: list[dict[str, Any]] = field(default_factory=list)
    own_volumes: list[dict[str, Any]] = field(default_factory=list)
    download_pods: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def take(cls, indexes: kopf.Memo, key: tuple[str, str]) -> ClusterView:
        """Copy in the event loop (kopf changes the indexes there), before a thread reads it."""
        deployments = list(indexes.engine_deployments.get(key, []))
        services = list(indexes.engine_services.get(key, []))
        pdbs = list(indexes.engine_pdbs.get(key, []))
        return cls(
            nodes=list(indexes.gpu_nodes.get(None, [])),
            gpu_pods=list(indexes.gpu_pods.get(None, [])),
            own_pods=list(indexes.engine_pods.get(key, [])),
            own_deployment=deployments[0] if deployments else None,
            own_service=services[0] if services else None,
            own_pdb=pdbs[0] if pdbs else None,
            budget=budgets.take(indexes, key),
            own_jobs=list(indexes.weights_jobs.get(key, [])),
            own_volumes=list(indexes.weights_volumes.get(key, [])),
            download_pods=list(indexes.weights_pods.get(key, [])),
        )

    def budget_of(self, md: ModelDeployment, placement: PlacementStatus) -> Budget:
        """The money limits on `md` running on `placement` (own and namespace budget)."""
        inputs = self.budget
        return budget_for(
            md,
            placement,
            self.nodes,
            inputs.prices,
            inputs.namespace_budget,
            inputs.neighbours,
            inputs.wants,
        )

    def live(self, kind: str, name: str | None = None) -> dict[str, Any] | None:
        """The child of that kind (and name, for the cache's) as the watch last saw it."""
        named = {"Job": self.own_jobs, "PersistentVolumeClaim": self.own_volumes}.get(kind)
        if named is not None:
            return next((c for c in named if (c.get("metadata") or {}).get("name") == name), None)
        return {
            "Deployment": self.own_deployment,
            "Service": self.own_service,
            "PodDisruptionBudget": self.own_pdb,
        }.get(kind)
