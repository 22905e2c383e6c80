"""status.autoscaling: the autoscaler's recommendation and the rule holding the count (pure).

Written when the recommendation, the count or the rule changes, not every interval: the
decision's numbers (KV use, queue) move with every sample, so the message is refreshed only
with a change of those three.
"""

from __future__ import annotations

from modelfleet.api.types import AutoscalingStatus
from modelfleet.autoscale.policy import Decision


def autoscaling_status(
    previous: AutoscalingStatus | None, decision: Decision, now: str
) -> AutoscalingStatus:
    """The block for `decision`: `previous` as it is when it says the same, else a fresh one
    (with the decision's reason and `now`)."""
    recommendation = (
        decision.recommendation if decision.recommendation is not None else decision.replicas
    )
    if previous is not None and (
        previous.recommendation,
        previous.replicas,
        previous.held_by,
    ) == (recommendation, decision.replicas, decision.held_by):
        return previous
    return AutoscalingStatus(
        recommendation=recommendation,
        replicas=decision.replicas,
        held_by=decision.held_by,
        message=decision.reason,
        since=now,
    )
