"""How many replicas to run: spec.replicas, or the autoscaler's count kept in status.

With autoscaling on (maxReplicas set), the count lives in status.desiredReplicas, which only
the operator writes, so re-applying the user's YAML (GitOps, another field manager) never resets
it. spec.replicas is the starting count, and a later change to it (kubectl scale, an edit) is
taken once as a manual scale; status.seenSpecReplicas remembers the value last taken.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelfleet.api.types import ModelDeploymentSpec, ModelDeploymentStatus


@dataclass(frozen=True)
class ReplicaCount:
    replicas: int
    seen_spec_replicas: int | None  # None when autoscaling is off
    manual_scale: bool  # spec.replicas changed since the autoscaler last took it

    @property
    def reason(self) -> str:
        return f"spec.replicas changed: manual scale to {self.replicas}"


def replica_count(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> ReplicaCount:
    if spec.max_replicas is None:
        return ReplicaCount(spec.replicas, None, manual_scale=False)
    low, high = spec.min_replicas_or_default, spec.max_replicas
    seen = status.seen_spec_replicas
    if seen is None or status.desired_replicas is None:
        # Autoscaling just turned on (or a new object): start from spec.replicas.
        return ReplicaCount(clamp(spec.replicas, low, high), spec.replicas, manual_scale=False)
    if spec.replicas != seen:
        return ReplicaCount(clamp(spec.replicas, low, high), spec.replicas, manual_scale=True)
    # The bounds apply at once, e.g. when the user lowers maxReplicas.
    return ReplicaCount(clamp(status.desired_replicas, low, high), seen, manual_scale=False)


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))
