"""Status of a ModelDeployment from what its children report: replicas and three conditions.

Pure: it reads plain object dicts (Deployment, Pods, Nodes) so it is tested with tables and the
handlers stay thin. Conditions keep their lastTransitionTime while their status holds, so
recomputing an unchanged state yields an identical status and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfleet.api.cache import CacheStatus
from modelfleet.api.types import (
    Condition,
    ConditionStatus,
    ConditionType,
    ModelDeployment,
    ModelDeploymentStatus,
    PlacementStatus,
)
from modelfleet.autoscale.count import ReplicaCount, budget_min_replicas, replica_count
from modelfleet.cost.budget import Budget
from modelfleet.render.children import (
    GPU_RESOURCE,
    endpoint_url,
    selector_string,
    serving,
)

# Container states that will not fix themselves: the pod needs a human or a spec change.
FAILING_CONTAINER_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass(frozen=True)
class Observed:
    """What exists now for one ModelDeployment."""

    deployment: dict[str, Any] | None
    pods: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    unanswered: tuple[str, ...] = ()  # ready pods whose metrics failed past the grace period


def unanswered_pods(
    pods: list[dict[str, Any]],
    unanswered_since: Mapping[str, float | None],
    now: float,
    grace: float,
) -> tuple[str, ...]:
    """Ready pods whose scrapes have failed for more than `grace` seconds, by name (sorted).

    `unanswered_since`: pod name -> when its scrapes began failing (None: it answers); a pod the
    scrape loop has not tried yet is not counted (it is given its first chance).
    """
    names = []
    for pod in pods:
        name = str((pod.get("metadata") or {}).get("name"))
        since = unanswered_since.get(name)
        if serving(pod) and since is not None and now - since > grace:
            names.append(name)
    return tuple(sorted(names))


def metrics_verdict(md: ModelDeployment, unanswered: tuple[str, ...]) -> _Verdict | None:
    """MetricsUnavailable: True naming the ready pods the operator cannot scrape; False once
    they answer again; None (no condition) while it never happened."""
    if unanswered:
        shown = ", ".join(unanswered[:5]) + (
            f" and {len(unanswered) - 5} more" if len(unanswered) > 5 else ""
        )
        return _Verdict(
            "True",
            "ScrapesFailing",
            f"{len(unanswered)} ready pod(s) do not answer on their engine's /metrics: {shown}; "
            "they count as unknown (no scale-down, no tokens, no SLO data); see "
            "docs/troubleshooting.md (MetricsUnavailable)",
        )
    if md.status.condition("MetricsUnavailable") is not None:
        return _Verdict("False", "MetricsAvailable", "every ready engine pod answers")
    return None


@dataclass(frozen=True)
class _Verdict:
    status: ConditionStatus
    reason: str
    message: str


def compute_status(
    md: ModelDeployment,
    observed: Observed,
    placement: PlacementStatus,
    generation: int | None,
    now: str,
    budget: Budget | None = None,
    cache: CacheStatus | None = None,
) -> ModelDeploymentStatus:
    """The status the ModelDeployment should have, given its placement and its children.

    `cache` is status.cache (status/cache.py): while the weights download, Progressing says so
    (and Ready, when no replica exists yet); a failed download is Degraded with its reason.

    `generation` is the spec generation the placement and children were made for: a reconcile
    passes the current one, a status refresh between reconciles keeps the last reconciled one.
    `budget` caps the count and sets BudgetLimited (absent when no budget applies).
    """
    count = replica_count(md.spec, md.status, budget)
    desired = count.replicas
    dep_status = (observed.deployment or {}).get("status") or {}
    existing = int(dep_status.get("replicas") or 0)
    ready = int(dep_status.get("readyReplicas") or 0)
    updated = int(dep_status.get("updatedReplicas") or 0)
    own_pods = [p for p in observed.pods if not (p.get("metadata") or {}).get("deletionTimestamp")]

    unschedulable = _unschedulable_message(placement, own_pods, observed.nodes)
    failing = _failing_message(own_pods)
    rollout_current = observed.deployment is not None and _deployment_caught_up(observed.deployment)
    settled = rollout_current and existing == desired and updated == desired and ready == desired
    stuck = _progress_deadline_exceeded(observed.deployment)

    ready_verdict = _ready(desired, ready, observed, unschedulable, failing)
    if settled:
        progressing = _Verdict("False", "Complete", f"{ready}/{desired} replicas ready")
    elif unschedulable:
        progressing = _Verdict("True", "WaitingForGPUs", unschedulable)
    elif stuck:
        progressing = _Verdict("False", "RolloutStuck", stuck)
    elif not rollout_current:
        progressing = _Verdict("True", "RollingOut", "the Deployment is taking up the new spec")
    else:
        progressing = _Verdict("True", *_progress_phase(desired, existing, ready, updated))

    if unschedulable:
        degraded = _Verdict("True", "Unschedulable", unschedulable)
    elif failing:
        degraded = _Verdict("True", "EngineFailing", failing)
    elif stuck:
        degraded = _Verdict("True", "RolloutStuck", stuck)
    else:
        degraded = _Verdict("False", "AsExpected", "")

    if cache is not None and cache.phase in ("Pending", "Downloading", "Failed"):
        reason = "DownloadFailed" if cache.phase == "Failed" else "DownloadingWeights"
        progressing = _Verdict(
            "False" if cache.phase == "Failed" else "True", reason, cache.message
        )
        if cache.phase == "Failed":
            degraded = _Verdict("True", reason, cache.message)
        if observed.deployment is None:
            ready_verdict = _Verdict("False", reason, cache.message)
    verdicts: dict[ConditionType, _Verdict] = {
        "Ready": ready_verdict,
        "Progressing": progressing,
        "Degraded": degraded,
    }
    limited = budget_verdict(md, count, budget)
    if limited is not None:
        verdicts["BudgetLimited"] = limited
    scraping = metrics_verdict(md, observed.unanswered)
    if scraping is not None:
        verdicts["MetricsUnavailable"] = scraping
    return ModelDeploymentStatus(
        observed_generation=generation,
        replicas=existing,
        ready_replicas=ready,
        selector=selector_string(md),
        endpoint=endpoint_url(md),
        placement=placement,
        desired_replicas=desired,
        seen_spec_replicas=count.seen_spec_replicas,
        last_scale_time=now if count.manual_scale else md.status.last_scale_time,
        last_scale_reason=count.reason if count.manual_scale else md.status.last_scale_reason,
        autoscaling=md.status.autoscaling if md.spec.autoscaled else None,
        slo=md.status.slo,
        cache=cache,
        conditions=_merge_conditions(md.status, generation, verdicts, now),
    )


def budget_verdict(
    md: ModelDeployment, count: ReplicaCount, budget: Budget | None
) -> _Verdict | None:
    """BudgetLimited: True while a budget holds the count below what was wanted, with the
    numbers; False (WithinBudget) otherwise; None (no condition) without any budget.

    With autoscaling, "wanted" is the autoscaler's latest count before the budget when this
    operator has it (the autoscaler records the capped count, so status alone cannot tell). A
    count held at the cap keeps its True condition as written: the autoscaler's wish moves with
    the load, and rewriting the message each time would write status in a steady state.
    """
    if budget is None or not budget.applies or count.budget is None:
        return None
    previous = md.status.condition("BudgetLimited")
    held = (
        md.spec.autoscaled
        and previous is not None
        and previous.status == "True"
        and count.replicas == md.status.desired_replicas
    )
    minimum = budget_min_replicas(md.spec)
    cap = count.budget
    if md.spec.autoscaled and not count.manual_scale and budget.autoscaler_wants is not None:
        cap = budget.cap(budget.autoscaler_wants, minimum)
    if cap.limited or (
        held and budget.autoscaler_wants is None and budget.cap(count.replicas + 1, minimum).limited
    ):
        if held and previous is not None:
            return _Verdict("True", previous.reason, previous.message)
        return _Verdict("True", "BudgetLimited", cap.reason)
    return _Verdict("False", "WithinBudget", budget.within(count.replicas))


UNPLACEABLE_REASONS = frozenset({"InvalidSpec", "NoFeasiblePlacement"})


def unplaceable(md: ModelDeployment) -> bool:
    """The last reconcile of this very spec found nothing to run."""
    ready = md.status.condition("Ready")
    return (
        ready is not None
        and ready.reason in UNPLACEABLE_REASONS
        and md.status.observed_generation == md.metadata.generation
    )


def invalid_spec_status(
    md_generation: int,
    previous: ModelDeploymentStatus,
    message: str,
    now: str,
    reason: str = "InvalidSpec",
) -> ModelDeploymentStatus:
    """Status for a spec the operator cannot act on (invalid, or fitting no GPU in the cluster).

    Children of an earlier spec are left serving as they are.
    """
    verdict = _Verdict("False", reason, message)
    verdicts: dict[ConditionType, _Verdict] = {
        "Ready": verdict,
        "Progressing": verdict,
        "Degraded": _Verdict("True", reason, message),
    }
    return previous.model_copy(
        update={
            "observed_generation": md_generation,
            "conditions": _merge_conditions(previous, md_generation, verdicts, now),
        }
    )


def _ready(
    desired: int, ready: int, observed: Observed, unschedulable: str, failing: str
) -> _Verdict:
    if desired == 0:
        return _Verdict("False", "ScaledToZero", "replicas is 0: nothing is serving")
    if ready >= desired:
        return _Verdict("True", "AllReplicasReady", f"{ready}/{desired} replicas ready")
    counts = f"{ready}/{desired} replicas ready"
    if unschedulable:
        return _Verdict("False", "Unschedulable", f"{counts}; {unschedulable}")
    if failing:
        return _Verdict("False", "EngineFailing", f"{counts}; {failing}")
    if observed.deployment is None:
        return _Verdict("False", "Creating", "creating the engine Deployment")
    if any(_phase(p) == "Running" for p in observed.pods):
        return _Verdict("False", "ModelLoading", f"{counts}; engines are loading the model")
    return _Verdict("False", "ReplicasNotReady", f"{counts}; waiting for engine pods to start")


def _progress_phase(desired: int, existing: int, ready: int, updated: int) -> tuple[str, str]:
    if updated < existing or (updated < desired and existing >= desired):
        return "RollingOut", f"{updated}/{desired} replicas on the current spec"
    if existing < desired:
        return "ScalingUp", f"{existing}/{desired} replicas exist"
    if existing > desired:
        return "ScalingDown", f"{existing} replicas exist, {desired} wanted"
    return "ModelLoading", f"{ready}/{desired} replicas ready"


def _deployment_caught_up(deployment: dict[str, Any]) -> bool:
    generation = int((deployment.get("metadata") or {}).get("generation") or 0)
    seen = int((deployment.get("status") or {}).get("observedGeneration") or 0)
    return seen >= generation


def _progress_deadline_exceeded(deployment: dict[str, Any] | None) -> str:
    for cond in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return str(cond.get("message") or "the rollout made no progress before its deadline")
    return ""


def _phase(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _unschedulable_message(
    placement: PlacementStatus, pods: list[dict[str, Any]], nodes: list[dict[str, Any]]
) -> str:
    """Plain words for why pods wait, from the scheduler's own reason and the GPU inventory."""
    pending = [msg for p in pods if (msg := _scheduler_refusal(p))]
    if not pending:
        return ""
    product, count = placement.gpu_product, placement.gpus_per_replica
    label = placement.gpu_label
    per_node = [_allocatable_gpus(n) for n in nodes if _gpu_product(n, label) == product]
    replicas = "1 replica cannot" if len(pending) == 1 else f"{len(pending)} replicas cannot"
    if not per_node:
        products = sorted({p for n in nodes if (p := _gpu_product(n, label))})
        known = ", ".join(products) if products else "none"
        why = f"no node has GPU product {product} (GPU products in the cluster: {known})"
    elif max(per_node) < count:
        why = (
            f"a replica needs {count} GPUs on one node, but {product} nodes have at most "
            f"{max(per_node)}"
        )
    else:
        why = (
            f"no {product} node has {count} free GPUs; the pods wait until GPUs are freed "
            "or nodes are added"
        )
    return f"{replicas} be scheduled: {why} (scheduler: {pending[0]})"


def _scheduler_refusal(pod: dict[str, Any]) -> str:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return str(cond.get("message") or "no reason given").strip()
    return ""


def _failing_message(pods: list[dict[str, Any]]) -> str:
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in FAILING_CONTAINER_REASONS:
                name = (pod.get("metadata") or {}).get("name", "?")
                detail = waiting.get("message") or ""
                return f"pod {name}: {reason}" + (f": {detail}" if detail else "")
    return ""


def _gpu_product(node: dict[str, Any], label: str) -> str:
    return str(((node.get("metadata") or {}).get("labels") or {}).get(label) or "")


def _allocatable_gpus(node: dict[str, Any]) -> int:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    return int(allocatable.get(GPU_RESOURCE) or 0)


def _merge_conditions(
    previous: ModelDeploymentStatus,
    generation: int | None,
    verdicts: dict[ConditionType, _Verdict],
    now: str,
) -> list[Condition]:
    merged = []
    for type_, verdict in verdicts.items():
        before = previous.condition(type_)
        changed = before is None or before.status != verdict.status
        merged.append(
            Condition(
                type=type_,
                status=verdict.status,
                reason=verdict.reason,
                message=verdict.message,
                last_transition_time=now
                if changed or before is None
                else before.last_transition_time,
                observed_generation=generation,
            )
        )
    return merged


@dataclass(frozen=True)
class Announcement:
    """A Kubernetes Event worth posting: `kubectl describe md` shows the history."""

    type: str  # Normal or Warning
    reason: str
    message: str


def announcements(
    previous: ModelDeploymentStatus, current: ModelDeploymentStatus
) -> list[Announcement]:
    """Events for scaling and for conditions that changed reason: becoming ready, going wrong,
    a budget holding the count back (or a new cap) and letting go of it."""
    found = []
    if current.last_scale_time != previous.last_scale_time and current.last_scale_reason:
        found.append(Announcement("Normal", "Scaled", current.last_scale_reason))
    before, after = previous.condition("BudgetLimited"), current.condition("BudgetLimited")
    if after is not None and after.status == "True":
        if before is None or before.status != "True" or before.message != after.message:
            found.append(Announcement("Warning", "BudgetLimited", after.message))
    elif after is not None and before is not None and before.status == "True":
        found.append(Announcement("Normal", "WithinBudget", after.message))
    before, after = (
        previous.condition("MetricsUnavailable"),
        current.condition("MetricsUnavailable"),
    )
    if after is not None and after.status == "True":
        if before is None or before.status != "True" or before.message != after.message:
            found.append(Announcement("Warning", "MetricsUnavailable", after.message))
    elif after is not None and before is not None and before.status == "True":
        found.append(Announcement("Normal", "MetricsAvailable", after.message))
    for type_ in ("Ready", "Degraded"):
        before, after = previous.condition(type_), current.condition(type_)
        if after is None or (before is not None and before.reason == after.reason):
            continue
        if type_ == "Ready" and after.status == "True":
            found.append(Announcement("Normal", after.reason, after.message))
        elif type_ == "Degraded" and after.status == "True":
            found.append(Announcement("Warning", after.reason, after.message))
    return found
