"""Cost per hour now: each deployment's, and every GPU node's split by who holds its GPUs.

A pod costs from the moment it is bound to a node: every replica counts, ready or still loading
the model, and the surge replica of a rollout, and a terminating one until it is gone. A pending
pod holds no GPU and costs nothing (status says why it waits). Each pod is priced at its own
node's USD per GPU-hour (`node_prices`), so a per-node price counts where the pod runs.

A node's hourly cost is its GPUs at its price, split three ways (OpenCost's convention: idle =
node cost - allocated):

    allocated to modelfleet  = GPUs of modelfleet pods x price, by deployment and namespace
    allocated to other pods  = GPUs of any other pod x price
    free (idle)              = (GPUs - both) x price

Allocation goes past a node's GPUs only when the node lost GPUs under running pods; free is then
zero, never negative.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from modelfleet.cost.node_prices import NodePrice

Owner = tuple[str, str]  # (namespace, ModelDeployment name)


@dataclass(frozen=True)
class GpuPod:
    """A pod bound to a node and holding GPUs; `owner` is set for modelfleet's engine pods."""

    node: str
    gpus: int
    owner: Owner | None = None


@dataclass(frozen=True)
class Hourly:
    """USD per hour now of a set of pods."""

    usd: float
    gpus: int  # GPUs held
    unpriced_gpus: int = 0  # on nodes without a price (not in usd)


def hourly_cost(pods: Iterable[GpuPod], prices: Mapping[str, NodePrice]) -> Hourly:
    """Every pod bound to a node, at its node's price (a deployment's `status.cost.hourly`)."""
    usd, gpus, unpriced = 0.0, 0, 0
    for pod in pods:
        if pod.gpus <= 0:
            continue
        gpus += pod.gpus
        price = prices.get(pod.node)
        if price is None or price.usd_per_gpu_hour is None:
            unpriced += pod.gpus
        else:
            usd += pod.gpus * price.usd_per_gpu_hour
    return Hourly(usd, gpus, unpriced)


@dataclass(frozen=True)
class NodeCost:
    """One GPU node's GPUs by holder, and what each part costs per hour."""

    price: NodePrice
    modelfleet: Mapping[Owner, int] = field(default_factory=dict)  # GPUs by deployment
    other_gpus: int = 0

    @property
    def rate(self) -> float:
        """USD per GPU-hour; an unpriced node counts at zero (listed in `unpriced`)."""
        return self.price.usd_per_gpu_hour or 0.0

    @property
    def modelfleet_gpus(self) -> int:
        return sum(self.modelfleet.values())

    @property
    def free_gpus(self) -> int:
        return max(self.price.gpus - self.modelfleet_gpus - self.other_gpus, 0)

    @property
    def hourly(self) -> float:
        return self.price.gpus * self.rate

    @property
    def modelfleet_hourly(self) -> float:
        return self.modelfleet_gpus * self.rate

    @property
    def other_hourly(self) -> float:
        return self.other_gpus * self.rate

    @property
    def free_hourly(self) -> float:
        return self.free_gpus * self.rate


@dataclass(frozen=True)
class ClusterCost:
    nodes: tuple[NodeCost, ...]

    @property
    def hourly(self) -> float:
        return sum(node.hourly for node in self.nodes)

    @property
    def modelfleet_hourly(self) -> float:
        return sum(node.modelfleet_hourly for node in self.nodes)

    @property
    def other_hourly(self) -> float:
        return sum(node.other_hourly for node in self.nodes)

    @property
    def allocated_hourly(self) -> float:
        """Everything allocated, modelfleet or not (the cost report's `allocatedHourly`)."""
        return self.modelfleet_hourly + self.other_hourly

    @property
    def free_hourly(self) -> float:
        """Free GPUs (the cost report's `idleHourly`)."""
        return sum(node.free_hourly for node in self.nodes)

    @property
    def by_deployment(self) -> dict[Owner, float]:
        totals: dict[Owner, float] = {}
        for node in self.nodes:
            for owner, gpus in node.modelfleet.items():
                totals[owner] = totals.get(owner, 0.0) + gpus * node.rate
        return totals

    @property
    def by_namespace(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for (namespace, _), usd in self.by_deployment.items():
            totals[namespace] = totals.get(namespace, 0.0) + usd
        return totals

    @property
    def unpriced(self) -> tuple[str, ...]:
        """GPU nodes without a price: counted as GPUs, at zero USD."""
        return tuple(node.price.node for node in self.nodes if node.price.usd_per_gpu_hour is None)


def cluster_cost(prices: Mapping[str, NodePrice], pods: Iterable[GpuPod]) -> ClusterCost:
    """Every GPU node's cost split; pods on nodes not in `prices` (gone, no GPUs) are left out."""
    modelfleet: dict[str, dict[Owner, int]] = {name: {} for name in prices}
    other: dict[str, int] = dict.fromkeys(prices, 0)
    for pod in pods:
        if pod.node not in prices or pod.gpus <= 0:
            continue
        if pod.owner is None:
            other[pod.node] += pod.gpus
        else:
            held = modelfleet[pod.node]
            held[pod.owner] = held.get(pod.owner, 0) + pod.gpus
    return ClusterCost(
        tuple(
            NodeCost(price, modelfleet[name], other[name]) for name, price in sorted(prices.items())
        )
    )
