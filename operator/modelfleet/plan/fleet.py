"""The fleet a load needs: replicas of one placement option, what they cost per hour and per 1M.

The planner (plan/planner.py) ranks placement options by the cost of one replica; with a load
known, the cheapest replica is often not the cheapest way to serve it (issue 12: DeepSeek-R1 on
4x B200 is $22/h a replica, but it holds so little KV cache that serving real traffic takes far
more of them than of 8x H200 at $32/h). For each feasible option, the replica's capacity within
the SLO (requests/s at the load's prompt and output lengths with the time to first token within
target; computed by the engine performance model, perf/capacity.py, passed in as a
`CapacityModel` because plan sits below perf) gives

    replicas = max(1, ceil(requests/s / capacity))     fleet $/h = replicas x $/h of a replica
    $/1M output tokens = fleet $/h / (requests/s x output tokens x 3600) x 1e6

and the planner picks the option with the cheapest fleet. An option whose replica cannot meet
the target even for one request alone is no candidate (its capacity carries the reason).
Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from modelfleet.catalog.models import ModelArch
    from modelfleet.plan.planner import Option
    from modelfleet.plan.request import PlacementRequest

DEFAULT_TTFT_SECONDS = 2.0  # spec.slo.ttftSeconds' default


class Load(BaseModel):
    """Traffic a deployment must serve: arrivals per second and the size of a typical request."""

    # camelCase as in spec.expectedLoad, snake_case in code: both are accepted.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    requests_per_second: Annotated[float, Field(gt=0, le=1e6)]
    prompt_tokens: Annotated[int, Field(ge=1, le=10_000_000)]
    output_tokens: Annotated[int, Field(ge=1, le=10_000_000)]

    @property
    def output_tokens_per_second(self) -> float:
        return self.requests_per_second * self.output_tokens

    def describe(self) -> str:
        return (
            f"{_number(self.requests_per_second)} requests/s of {self.prompt_tokens:,} prompt + "
            f"{self.output_tokens:,} output tokens"
        )


@dataclass(frozen=True)
class ReplicaCapacity:
    """What one replica serves within the SLO, for requests of one size.

    requests_per_s: the most arrivals per second it takes with the target met (0 with a reason
    when it cannot serve even one request within it). ttft_alone_s: time to first token of one
    request on an idle replica. step_s: the decode step (time per output token) at capacity.
    limit: what bounds the capacity ("ttft", "tpot", "kv cache", "max sequences", "tokens/step").
    """

    requests_per_s: float
    ttft_alone_s: float
    step_s: float = 0.0
    limit: str = ""
    reason: str | None = None


class CapacityModel(Protocol):
    """One replica of `option` serving `request.load` within `request`'s SLO."""

    def __call__(
        self, arch: ModelArch, option: Option, request: PlacementRequest
    ) -> ReplicaCapacity: ...


@dataclass(frozen=True)
class Fleet:
    """Replicas of one option for a load, and what they cost."""

    capacity: ReplicaCapacity
    replicas: int
    hourly_cost: float  # USD per hour, all replicas
    usd_per_million_output_tokens: float  # at the load: fleet $/h over the load's output tokens


def fleet_for(hourly_per_replica: float, capacity: ReplicaCapacity, load: Load) -> Fleet:
    """The replicas `load` needs at `capacity` per replica, at least one (see the docstring)."""
    if capacity.requests_per_s <= 0:
        raise ValueError("a replica that serves nothing within the SLO has no fleet")
    replicas = max(1, math.ceil(load.requests_per_second / capacity.requests_per_s - 1e-9))
    hourly = replicas * hourly_per_replica
    return Fleet(
        capacity=capacity,
        replicas=replicas,
        hourly_cost=hourly,
        usd_per_million_output_tokens=hourly / (load.output_tokens_per_second * 3600) * 1e6,
    )


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
