"""Which engine pods to emulate, and what each one serves (pure: dicts in, facts out).

Pods are the operator's engine pods (label app.kubernetes.io/managed-by=modelfleet). A pod is
served while it is Running, Ready, has an IP and is not being deleted. What it serves comes from
the pod itself where the pod says it (engine label, GPU product in its nodeSelector, GPU count
in its limits: right even mid-rollout) and otherwise from its ModelDeployment (label
modelfleet.dev/deployment): spec.model, spec.engine, status.placement.

An emulator serves only pods whose IP lies in its own cluster's pod range: another local cluster
never hands out those IPs, so two emulators side by side never answer for each other's pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelfleet.api.types import Engine
from modelfleet.dev.cluster.pod_range import contains
from modelfleet.render.children import (
    ENGINE_LABEL,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    MANAGED_BY,
    OWNER_LABEL,
    serving,
)

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
# A pod annotated with this set to "true" is not served, though Ready: an engine whose /metrics
# cannot be reached (tests of condition MetricsUnavailable; remove it to serve the pod again).
SILENT_ANNOTATION = "modelfleet.dev/emulator-silent"
POD_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
_MODEL_FLAGS = ("--served-model-name=", "--alias=", "--model=", "--model-path=", "--hf-repo=")


@dataclass(frozen=True)
class PodFacts:
    """One servable engine pod and what the emulator needs to imitate it."""

    namespace: str
    name: str
    uid: str
    ip: str
    deployment: str
    engine: Engine
    model: str
    gpu_product: str | None
    gpus: int
    quantization: str | None
    max_context: int | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_facts(pod: dict[str, Any], md: dict[str, Any] | None) -> PodFacts | None:
    """The facts of a servable pod (None otherwise); `md` is its ModelDeployment if readable."""
    if not serving(pod):
        return None
    meta = pod["metadata"]
    if (meta.get("annotations") or {}).get(SILENT_ANNOTATION) == "true":
        return None
    labels = meta.get("labels") or {}
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or [{}]
    container = containers[0]
    md_spec = (md or {}).get("spec") or {}
    placement = ((md or {}).get("status") or {}).get("placement") or {}

    engine = Engine(labels.get(ENGINE_LABEL) or md_spec.get("engine") or Engine.VLLM)
    model = md_spec.get("model") or _model_from_args(container.get("args") or [])
    limits = (container.get("resources") or {}).get("limits") or {}
    gpus = _int(limits.get(GPU_RESOURCE)) or _int(placement.get("gpusPerReplica")) or 1
    product_label = placement.get("gpuLabel") or GPU_PRODUCT_LABEL
    gpu_product = (spec.get("nodeSelector") or {}).get(product_label) or placement.get("gpuProduct")
    return PodFacts(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta.get("uid") or meta["name"],
        ip=pod["status"]["podIP"],
        deployment=labels.get(OWNER_LABEL, ""),
        engine=engine,
        model=model or labels.get("app.kubernetes.io/name") or meta["name"],
        gpu_product=gpu_product,
        gpus=gpus,
        quantization=placement.get("quantization"),
        max_context=_int(placement.get("maxContextLength"))
        or _int(md_spec.get("maxContextLength")),
    )


def desired(
    pods: list[dict[str, Any]],
    mds: dict[tuple[str, str], dict[str, Any]],
    pod_cidr: str | None = None,
) -> dict[str, PodFacts]:
    """Servable pods by uid; `mds` maps (namespace, name) to ModelDeployments. With `pod_cidr`
    (the cluster's pod range), pods with an IP outside it are left out."""
    found: dict[str, PodFacts] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(OWNER_LABEL, "")
        facts = pod_facts(pod, mds.get((meta.get("namespace", ""), owner)))
        if facts is not None and (pod_cidr is None or contains(pod_cidr, facts.ip)):
            found[facts.uid] = facts
    return found


def _model_from_args(args: list[str]) -> str | None:
    for flag in _MODEL_FLAGS:
        for arg in args:
            if arg.startswith(flag):
                return arg[len(flag) :]
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
