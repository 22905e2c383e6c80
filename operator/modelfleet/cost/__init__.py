"""Cost: money arithmetic for the status cost block, the cluster split and budgets (pure).

Prices in, USD out: hosted-API and per-node GPU prices, spend with a watermark, tokens from
engine counters, $/1M, the cluster's GPU cost split, budget caps and sharing, and when to write.
Nothing here reads a clock, the API server or a global: time and observations are arguments.
docs/cost.md has the design, the formulas and the bound on what a crash can lose.
"""

from modelfleet.cost.allocation import (
    ClusterCost,
    GpuPod,
    Hourly,
    NodeCost,
    cluster_cost,
    hourly_cost,
)
from modelfleet.cost.api_prices import (
    DEFAULT_COMPARE_TO,
    ApiPrice,
    ApiPriceError,
    ApiPriceTable,
    compare_to,
    default_api_prices,
    default_compare_to,
    model_class,
    parse_api_price_overrides,
    parse_api_prices,
)
from modelfleet.cost.budget import (
    BudgetCap,
    BudgetClaim,
    BudgetShare,
    NamespaceShare,
    cap_replicas,
    max_replicas_within,
    share_namespace_budget,
    surge_allowed,
)
from modelfleet.cost.node_prices import (
    GPU_HOURLY_ANNOTATION,
    NodePrice,
    node_price,
    node_prices,
    parse_gpu_hourly,
)
from modelfleet.cost.spend import (
    PodInterval,
    Spend,
    accrue,
    kube_time,
    pod_interval,
    window_cost,
    window_gpu_hours,
)
from modelfleet.cost.throttle import should_write
from modelfleet.cost.tokens import (
    ApiEquivalent,
    CounterSample,
    LastHour,
    PerMillion,
    Replica,
    Tokens,
    api_equivalent,
    idle_gpu_hours,
    increase,
    last_hour,
    per_million,
    served,
)

__all__ = [
    "DEFAULT_COMPARE_TO",
    "GPU_HOURLY_ANNOTATION",
    "ApiEquivalent",
    "ApiPrice",
    "ApiPriceError",
    "ApiPriceTable",
    "BudgetCap",
    "BudgetClaim",
    "BudgetShare",
    "ClusterCost",
    "CounterSample",
    "GpuPod",
    "Hourly",
    "LastHour",
    "NamespaceShare",
    "NodeCost",
    "NodePrice",
    "PerMillion",
    "PodInterval",
    "Replica",
    "Spend",
    "Tokens",
    "accrue",
    "api_equivalent",
    "cap_replicas",
    "cluster_cost",
    "compare_to",
    "default_api_prices",
    "default_compare_to",
    "hourly_cost",
    "idle_gpu_hours",
    "increase",
    "kube_time",
    "last_hour",
    "max_replicas_within",
    "model_class",
    "node_price",
    "node_prices",
    "parse_api_price_overrides",
    "parse_api_prices",
    "parse_gpu_hourly",
    "per_million",
    "pod_interval",
    "served",
    "share_namespace_budget",
    "should_write",
    "surge_allowed",
    "window_cost",
    "window_gpu_hours",
]
