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
kopf fills the indexes from the initial listing before it runs any handler, so a restarted
operator never plans on an empty cluster. They are read in the event loop (ClusterView.take),
then handed to the pooled thread as plain lists: kopf mutates them only in the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import kopf

from modelfleet.api.types import ModelDeployment, PlacementStatus
from modelfleet.autoscale.budget import budget_for
from modelfleet.cost.budget import Budget
from modelfleet.cost.node_prices import GPU_HOURLY_ANNOTATION
from modelfleet.handlers import budgets
from modelfleet.plan.inventory import GPU_RESOURCE, pod_gpus
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
)


def watch_selectors(settings: kopf.OperatorSettings) -> None:
    """Server-side filters on the watch streams (and their initial lists)."""
    settings.watching.label_selectors["apps", "deployments"] = CHILD_SELECTOR
    settings.watching.label_selectors["", "services"] = CHILD_SELECTOR
    settings.watching.label_selectors["policy", "poddisruptionbudgets"] = CHILD_SELECTOR
    settings.watching.field_selectors["", "pods"] = LIVE_PODS


@kopf.index("", "v1", "nodes")
def gpu_nodes(body: kopf.Body, **_: Any) -> dict[None, dict[str, Any]]:
    status = body.get("status") or {}
    name = body.metadata.name
    return {
        None: {
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
                "allocatable": {GPU_RESOURCE: (status.get("allocatable") or {}).get(GPU_RESOURCE)},
                "capacity": {GPU_RESOURCE: (status.get("capacity") or {}).get(GPU_RESOURCE)},
                "conditions": [
                    {"type": c.get("type"), "status": c.get("status")}
                    for c in status.get("conditions") or []
                    if c.get("type") == "Ready"
                ],
            },
        }
    }


@kopf.index("", "v1", "pods")
def gpu_pods(body: kopf.Body, **_: Any) -> dict[None, dict[str, Any]] | None:
    namespace = body.metadata.namespace
    node = (body.get("spec") or {}).get("nodeName")
    gpus = pod_gpus(body)
    if not node or not gpus:
        return None  # holds no GPU (yet)
    return {
        None: {
            "metadata": {"namespace": namespace, "labels": dict(body.metadata.labels or {})},
            "spec": {
                "nodeName": node,
                "containers": [{"resources": {"limits": {GPU_RESOURCE: str(gpus)}}}],
            },
            "status": {"phase": (body.get("status") or {}).get("phase")},
        }
    }


@kopf.index("", "v1", "pods", labels={OWNER_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY})
def engine_pods(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {_owner(body): _without_managed_fields(body)}


@kopf.index(
    "apps", "v1", "deployments", labels={OWNER_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY}
)
def engine_deployments(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {_owner(body): _without_managed_fields(body)}


@kopf.index("", "v1", "services", labels={OWNER_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY})
def engine_services(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {_owner(body): _without_managed_fields(body)}


@kopf.index(
    "policy",
    "v1",
    "poddisruptionbudgets",
    labels={OWNER_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY},
)
def engine_pdbs(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {_owner(body): _without_managed_fields(body)}


def _owner(body: kopf.Body) -> tuple[str, str]:
    return str(body.metadata.namespace), str(body.metadata.labels[OWNER_LABEL])


def _without_managed_fields(body: kopf.Body) -> dict[str, Any]:
    raw = dict(body)
    raw["metadata"] = {k: v for k, v in raw.get("metadata", {}).items() if k != "managedFields"}
    return raw


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

    def live(self, kind: str) -> dict[str, Any] | None:
        """The child of that kind as the watch last saw it."""
        return {
            "Deployment": self.own_deployment,
            "Service": self.own_service,
            "PodDisruptionBudget": self.own_pdb,
        }.get(kind)
