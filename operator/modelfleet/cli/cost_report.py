"""The cost report of `modelfleet cost`, built from what was read (pure: no API, no clock).

Two sources for the deployments, one for the cluster:

- live: each ModelDeployment's `status.cost` as the operator wrote it (spend and tokens to date);
- history: the operator's Prometheus series over a window (spend, tokens and the API
  equivalent are what the window added; hourly cost and replicas are the latest sample);
- the cluster section always comes from the Nodes and Pods read now, priced with the cost core
  (`node_prices`, `cluster_cost`): the annotation `modelfleet.dev/gpu-hourly-usd` wins over the
  price sheet, so the cluster's hourly cost is every GPU node's GPUs at its price.

`Report.as_dict()` is the JSON of `modelfleet cost -o json` (USD as numbers); `format_table`
prints it for a terminal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from modelfleet.cli.tables import table
from modelfleet.cost import ClusterCost, GpuPod, cluster_cost, node_prices
from modelfleet.plan.inventory import pod_gpus
from modelfleet.plan.prices import PriceSheet

OWNER_LABEL = "modelfleet.dev/deployment"  # render.children.OWNER_LABEL: engine pods carry it
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "modelfleet"

Owner = tuple[str, str]  # (namespace, name)
Point = tuple[float, float]  # (unix seconds, value)
Source = Literal["status", "prometheus"]

# --- durations -------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """A positive duration like Prometheus writes them: 90s, 30m, 6h, 7d, 2w, 1h30m."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"want a duration like 30m, 6h, 7d or 1h30m, got {text!r}")
    seconds = sum(int(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"want a duration above zero, got {text!r}")
    if seconds > 5 * 365 * 86400:
        raise ValueError(f"want a duration of at most 5 years, got {text!r}")
    return timedelta(seconds=seconds)


def format_duration(span: timedelta) -> str:
    """The shortest spelling parse_duration reads back: 1h30m, 7d, 45s."""
    seconds = int(span.total_seconds())
    out = ""
    for unit, size in (("w", _UNITS["w"]), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0s"


# --- deployments ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentCost:
    """One ModelDeployment's line of the report."""

    namespace: str
    name: str
    model: str | None = None
    gpu_product: str | None = None
    gpus_per_replica: int | None = None
    gpus: int = 0  # GPUs held now
    replicas: int = 0
    hourly: float = 0.0  # USD per hour now
    spend: float = 0.0  # USD to date (status) or over the window (history)
    tokens_input: int = 0
    tokens_output: int = 0
    per_million_output: float | None = None
    per_million_total: float | None = None
    api_equivalent: float | None = None  # USD the same tokens cost on compare_to
    compare_to: str | None = None
    api_as_of: str | None = None
    idle_gpu_hours: float | None = None
    spend_since: str | None = None
    unpriced_gpus: int = 0
    reported: bool = True  # False: no status.cost (or no series) for it yet

    @property
    def key(self) -> Owner:
        return (self.namespace, self.name)

    @property
    def savings(self) -> float | None:
        """What the hosted API would have cost more than the GPUs did (negative: it is cheaper)."""
        return None if self.api_equivalent is None else self.api_equivalent - self.spend

    def as_dict(self) -> dict[str, Any]:
        per_million = (
            None
            if self.per_million_total is None
            else {"output": self.per_million_output, "total": self.per_million_total}
        )
        return {
            "namespace": self.namespace,
            "name": self.name,
            "model": self.model,
            "gpuProduct": self.gpu_product,
            "gpus": self.gpus,
            "gpusPerReplica": self.gpus_per_replica,
            "replicas": self.replicas,
            "hourly": self.hourly,
            "spend": self.spend,
            "spendSince": self.spend_since,
            "tokens": {"input": self.tokens_input, "output": self.tokens_output},
            "perMillionTokens": per_million,
            "apiEquivalent": self.api_equivalent,
            "compareTo": self.compare_to,
            "apiPriceAsOf": self.api_as_of,
            "savings": self.savings,
            "idleGpuHours": self.idle_gpu_hours,
            "unpricedGpus": self.unpriced_gpus,
            "reported": self.reported,
        }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    """A finite JSON number (bool is not one); anything else is absent."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _count(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None and number >= 0 else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def deployment_from_status(md: Mapping[str, Any]) -> DeploymentCost:
    """A ModelDeployment's line from its live object (status.cost, CostStatus's JSON names).

    Read leniently: an operator older or newer than this CLI may write fewer or more fields, and
    the report should still show what is there.
    """
    meta, spec, status = (_mapping(md.get(k)) for k in ("metadata", "spec", "status"))
    placement = _mapping(status.get("placement"))
    cost = status.get("cost")
    reported = isinstance(cost, Mapping)
    cost = _mapping(cost)
    tokens = _mapping(cost.get("tokens"))
    per_million = _mapping(cost.get("perMillionTokens"))
    api = _mapping(cost.get("apiEquivalent"))
    requested = _mapping(spec.get("gpu"))
    product = _text(placement.get("gpuProduct"))
    if product is None and _text(requested.get("product")) not in (None, "auto"):
        product = _text(requested.get("product"))
    per_replica = _count(placement.get("gpusPerReplica")) or _count(requested.get("count"))
    return DeploymentCost(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        model=_text(spec.get("model")),
        gpu_product=product,
        gpus_per_replica=per_replica or None,
        gpus=_count(cost.get("gpus")),
        replicas=_count(status.get("replicas")),
        hourly=_number(cost.get("hourly")) or 0.0,
        spend=_number(cost.get("spend")) or 0.0,
        tokens_input=_count(tokens.get("input")),
        tokens_output=_count(tokens.get("output")),
        per_million_output=_number(per_million.get("output")),
        per_million_total=_number(per_million.get("total")),
        api_equivalent=_number(api.get("usd")),
        compare_to=_text(api.get("compareTo")),
        api_as_of=_text(api.get("asOf")),
        idle_gpu_hours=_number(cost.get("idleGpuHours")),
        spend_since=_text(cost.get("spendSince")),
        unpriced_gpus=_count(cost.get("unpricedGpus")),
        reported=reported,
    )


# --- history (Prometheus series over a window) ----------------------------------------------


@dataclass(frozen=True)
class Series:
    """One range-query result: its labels and its (time, value) samples, oldest first."""

    labels: Mapping[str, str]
    points: tuple[Point, ...]

    def owner(self) -> Owner:
        return (self.labels.get("namespace", ""), self.labels.get("name", ""))


@dataclass(frozen=True)
class History:
    """The operator's series over [start, end] every `step` seconds (max over instances)."""

    start: float
    end: float
    step: float
    hourly: Sequence[Series] = ()
    spend: Sequence[Series] = ()
    tokens: Sequence[Series] = ()  # label direction: input | output
    api_equivalent: Sequence[Series] = ()  # label compare_to
    replicas: Sequence[Series] = ()
    gpus: Sequence[Series] = ()
    idle_gpu_hours: Sequence[Series] = ()
    cluster: Sequence[Series] = ()  # label allocation: modelfleet | other | idle


def increase(points: Sequence[Point]) -> float:
    """What a to-date total added between its first and last sample, read like a counter.

    A drop is a reset (the deployment was deleted and created again): the new value counts from
    zero. The first sample's own value never counts: it may hold everything before the window
    (or before Prometheus first scraped the operator), so a deployment created inside the
    window is short by what it had accrued when its series was first scraped (seconds of GPU
    time: the operator accrues from the pod's scheduling time).
    """
    return cumulative(points)[-1][1] if points else 0.0


def cumulative(points: Sequence[Point]) -> list[Point]:
    """increase() up to each sample: the running total the window added."""
    out: list[Point] = []
    total = 0.0
    for index, (at, value) in enumerate(points):
        if index:
            before = points[index - 1][1]
            total += value - before if value >= before else value
        out.append((at, total))
    return out


def _latest(series: Iterable[Series], end: float, step: float) -> dict[Owner, float]:
    """Each deployment's last sample, when it is at the window's end (else it is gone: 0)."""
    latest: dict[Owner, float] = {}
    for one in series:
        if one.points:
            at, value = one.points[-1]
            latest[one.owner()] = value if at >= end - step else 0.0
    return latest


def deployments_from_history(
    history: History, live: Mapping[Owner, DeploymentCost] | None = None
) -> list[DeploymentCost]:
    """Each deployment's line over the window; model and GPU come from the live object, if any.

    spend, tokens and the API equivalent are what the window added; $/1M is the window's spend
    over its tokens; hourly, GPUs and replicas are the latest sample (0 for a deployment whose
    series ended: it was deleted).
    """
    live = live or {}
    end, step = history.end, history.step
    hourly = _latest(history.hourly, end, step)
    replicas = _latest(history.replicas, end, step)
    gpus = _latest(history.gpus, end, step)
    idle = _latest(history.idle_gpu_hours, end, step)
    spend: dict[Owner, float] = {}
    for one in history.spend:
        spend[one.owner()] = spend.get(one.owner(), 0.0) + increase(one.points)
    tokens: dict[tuple[Owner, str], float] = {}
    for one in history.tokens:
        key = (one.owner(), one.labels.get("direction", ""))
        tokens[key] = tokens.get(key, 0.0) + increase(one.points)
    api: dict[Owner, float] = {}
    compare: dict[Owner, tuple[float, str]] = {}  # the compare_to of the latest sample
    for one in history.api_equivalent:
        owner = one.owner()
        api[owner] = api.get(owner, 0.0) + increase(one.points)
        if one.points and one.points[-1][0] >= compare.get(owner, (-math.inf, ""))[0]:
            compare[owner] = (one.points[-1][0], one.labels.get("compare_to", ""))
    owners = set(hourly) | set(spend) | set(api) | {owner for owner, _ in tokens}
    lines = []
    for owner in sorted(owners):
        now = live.get(owner)
        tokens_in = round(tokens.get((owner, "input"), 0.0))
        tokens_out = round(tokens.get((owner, "output"), 0.0))
        window_spend = spend.get(owner, 0.0)
        per_total = (
            window_spend / (tokens_in + tokens_out) * 1e6 if tokens_in + tokens_out else None
        )
        per_output = window_spend / tokens_out * 1e6 if tokens_out else None
        lines.append(
            DeploymentCost(
                namespace=owner[0],
                name=owner[1],
                model=now.model if now else None,
                gpu_product=now.gpu_product if now else None,
                gpus_per_replica=now.gpus_per_replica if now else None,
                gpus=round(gpus.get(owner, 0.0)),
                replicas=round(replicas.get(owner, 0.0)),
                hourly=hourly.get(owner, 0.0),
                spend=window_spend,
                tokens_input=tokens_in,
                tokens_output=tokens_out,
                per_million_output=per_output,
                per_million_total=per_total,
                api_equivalent=api.get(owner) if owner in compare else None,
                compare_to=compare[owner][1] if owner in compare else None,
                api_as_of=now.api_as_of if now and owner in compare else None,
                idle_gpu_hours=idle.get(owner),
                unpriced_gpus=now.unpriced_gpus if now else 0,
            )
        )
    return lines


# --- cluster ---------------------------------------------------------------------------------


def gpu_pods(pods: Iterable[Mapping[str, Any]]) -> list[GpuPod]:
    """Pods holding GPUs on a node now (bound, not finished); modelfleet's engine pods owned.

    Read as the planner's inventory reads them (`pod_gpus`, phase not Succeeded or Failed).
    """
    held = []
    for pod in pods:
        meta, spec, status = (_mapping(pod.get(k)) for k in ("metadata", "spec", "status"))
        node = spec.get("nodeName")
        gpus = pod_gpus(pod)
        if not node or gpus <= 0 or status.get("phase") in ("Succeeded", "Failed"):
            continue
        labels = _mapping(meta.get("labels"))
        owner = None
        if labels.get(OWNER_LABEL) and labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
            owner = (str(meta.get("namespace") or ""), str(labels[OWNER_LABEL]))
        held.append(GpuPod(str(node), gpus, owner))
    return held


@dataclass(frozen=True)
class ClusterSection:
    """Every GPU node's cost per hour now, split by who holds its GPUs."""

    cost: ClusterCost
    problems: tuple[str, ...] = ()  # invalid price annotations (priced from the sheet)

    @property
    def gpus(self) -> dict[str, int]:
        nodes = self.cost.nodes
        return {
            "total": sum(n.price.gpus for n in nodes),
            "modelfleet": sum(n.modelfleet_gpus for n in nodes),
            "other": sum(n.other_gpus for n in nodes),
            "idle": sum(n.free_gpus for n in nodes),
        }

    def as_dict(self) -> dict[str, Any]:
        cost = self.cost
        return {
            "hourly": cost.hourly,
            "allocatedHourly": cost.allocated_hourly,
            "idleHourly": cost.free_hourly,
            "modelfleetHourly": cost.modelfleet_hourly,
            "otherHourly": cost.other_hourly,
            "gpus": self.gpus,
            "byNamespace": dict(sorted(cost.by_namespace.items())),
            "nodes": [
                {
                    "name": node.price.node,
                    "gpuProduct": node.price.product,
                    "gpus": node.price.gpus,
                    "usdPerGpuHour": node.price.usd_per_gpu_hour,
                    "priceSource": node.price.source,
                    "hourly": node.hourly,
                    "allocatedHourly": node.modelfleet_hourly + node.other_hourly,
                    "idleHourly": node.free_hourly,
                }
                for node in cost.nodes
            ],
            "unpricedNodes": list(cost.unpriced),
            "problems": list(self.problems),
        }


def cluster_section(
    nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]], sheet: PriceSheet
) -> ClusterSection:
    prices = node_prices(nodes, sheet)
    problems = tuple(p.problem for p in prices.values() if p.problem)
    return ClusterSection(cluster_cost(prices, gpu_pods(pods)), problems)


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    hourly: float
    spend: float
    tokens_input: int
    tokens_output: int
    api_equivalent: float | None
    savings: float | None
    idle_gpu_hours: float | None
    deployments: int

    @staticmethod
    def of(lines: Sequence[DeploymentCost]) -> Totals:
        compared = [line for line in lines if line.api_equivalent is not None]
        idle = [line.idle_gpu_hours for line in lines if line.idle_gpu_hours is not None]
        api = sum(line.api_equivalent or 0.0 for line in compared) if compared else None
        savings = sum(line.savings or 0.0 for line in compared) if compared else None
        return Totals(
            hourly=sum(line.hourly for line in lines),
            spend=sum(line.spend for line in lines),
            tokens_input=sum(line.tokens_input for line in lines),
            tokens_output=sum(line.tokens_output for line in lines),
            api_equivalent=api,
            savings=savings,
            idle_gpu_hours=sum(idle) if idle else None,
            deployments=len(lines),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "hourly": self.hourly,
            "spend": self.spend,
            "tokens": {"input": self.tokens_input, "output": self.tokens_output},
            "apiEquivalent": self.api_equivalent,
            "savings": self.savings,
            "idleGpuHours": self.idle_gpu_hours,
            "deployments": self.deployments,
        }


@dataclass(frozen=True)
class Report:
    deployments: tuple[DeploymentCost, ...]
    cluster: ClusterSection | None  # None when Nodes or Pods could not be read
    source: Source
    as_of: str  # RFC 3339, when it was read
    namespace: str | None = None  # None: all namespaces
    since: timedelta | None = None  # the window, with history
    history: History | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def totals(self) -> Totals:
        return Totals.of(self.deployments)

    @property
    def namespaces(self) -> dict[str, Totals]:
        grouped: dict[str, list[DeploymentCost]] = {}
        for line in self.deployments:
            grouped.setdefault(line.namespace, []).append(line)
        return {ns: Totals.of(lines) for ns, lines in sorted(grouped.items())}

    def as_dict(self) -> dict[str, Any]:
        return {
            "asOf": self.as_of,
            "source": self.source,
            "namespace": self.namespace,
            "since": format_duration(self.since) if self.since else None,
            "deployments": [line.as_dict() for line in self.deployments],
            "namespaces": {ns: t.as_dict() for ns, t in self.namespaces.items()},
            "totals": self.totals.as_dict(),
            "cluster": self.cluster.as_dict() if self.cluster else None,
            "notes": list(self.notes),
        }


def _sorted(lines: Iterable[DeploymentCost]) -> tuple[DeploymentCost, ...]:
    return tuple(sorted(lines, key=lambda line: line.key))


def _unreported_note(lines: Sequence[DeploymentCost], what: str) -> tuple[str, ...]:
    missing = [f"{line.namespace}/{line.name}" for line in lines if not line.reported]
    if not missing:
        return ()
    return (f"{len(missing)} deployment(s) without {what} yet, counted as 0: {_some(missing)}",)


def _some(names: Sequence[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def live_report(
    mds: Iterable[Mapping[str, Any]],
    cluster: ClusterSection | None,
    as_of: str,
    namespace: str | None = None,
    notes: Sequence[str] = (),
) -> Report:
    """The report from the ModelDeployments' status.cost (no history)."""
    lines = _sorted(deployment_from_status(md) for md in mds)
    return Report(
        deployments=lines,
        cluster=cluster,
        source="status",
        as_of=as_of,
        namespace=namespace,
        notes=(*notes, *_unreported_note(lines, "status.cost")),
    )


def history_report(
    history: History,
    mds: Iterable[Mapping[str, Any]],
    cluster: ClusterSection | None,
    as_of: str,
    since: timedelta,
    namespace: str | None = None,
    notes: Sequence[str] = (),
) -> Report:
    """The report over a window of Prometheus history; live objects add model and GPU."""
    live = {line.key: line for line in (deployment_from_status(md) for md in mds)}
    lines = _sorted(deployments_from_history(history, live))
    missing = [f"{ns}/{name}" for ns, name in sorted(set(live) - {line.key for line in lines})]
    extra = (
        (f"no series in Prometheus for {len(missing)} live deployment(s): {_some(missing)}",)
        if missing
        else ()
    )
    return Report(
        deployments=lines,
        cluster=cluster,
        source="prometheus",
        as_of=as_of,
        namespace=namespace,
        since=since,
        history=history,
        notes=(*notes, *extra),
    )


# --- terminal table --------------------------------------------------------------------------


def usd(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def count(value: float) -> str:
    """Token counts as people read them: 950, 12.3k, 4.56M, 1.2B."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


def _gpu(line: DeploymentCost) -> str:
    product = line.gpu_product or "-"
    return f"{line.gpus_per_replica}x {product}" if line.gpus_per_replica else product


def format_table(report: Report) -> str:
    spend_header = f"SPEND {format_duration(report.since)}" if report.since else "SPEND"
    headers = [
        "NAMESPACE",
        "NAME",
        "MODEL",
        "GPU",
        "REPLICAS",
        "$/H",
        spend_header,
        "TOKENS IN/OUT",
        "$/1M OUT/ALL",
        "API EQUIV",
        "SAVINGS",
    ]
    rows = [
        [
            line.namespace,
            line.name,
            line.model or "-",
            _gpu(line),
            str(line.replicas),
            usd(line.hourly),
            usd(line.spend),
            f"{count(line.tokens_input)}/{count(line.tokens_output)}",
            f"{usd(line.per_million_output, 3)}/{usd(line.per_million_total, 3)}",
            usd(line.api_equivalent) + (f" ({line.compare_to})" if line.compare_to else ""),
            usd(line.savings),
        ]
        for line in report.deployments
    ]
    for ns, totals in report.namespaces.items():
        rows.append(_total_row(f"{ns} total", totals))
    rows.append(_total_row("all" if report.namespace is None else "total", report.totals))
    if report.source == "status":
        head = f"Cost as of {report.as_of} from status.cost (spend and tokens to date)"
    else:
        since = format_duration(report.since) if report.since else "?"
        head = f"Cost over the last {since} to {report.as_of} from Prometheus"
    lines = [head, "", table(headers, rows).rstrip("\n")]
    if report.cluster is not None:
        lines += ["", *cluster_lines(report.cluster)]
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def _total_row(label: str, totals: Totals) -> list[str]:
    return [
        "",
        label,
        f"{totals.deployments} deployment(s)",
        "",
        "",
        usd(totals.hourly),
        usd(totals.spend),
        f"{count(totals.tokens_input)}/{count(totals.tokens_output)}",
        "",
        usd(totals.api_equivalent),
        usd(totals.savings),
    ]


def cluster_lines(cluster: ClusterSection) -> list[str]:
    cost, gpus = cluster.cost, cluster.gpus
    lines = [
        f"Cluster GPUs: {usd(cost.hourly)} USD/h for {gpus['total']} GPUs on "
        f"{len(cost.nodes)} node(s); allocated {usd(cost.allocated_hourly)} USD/h "
        f"(modelfleet {usd(cost.modelfleet_hourly)} on {gpus['modelfleet']} GPUs, other pods "
        f"{usd(cost.other_hourly)} on {gpus['other']}); idle {usd(cost.free_hourly)} USD/h on "
        f"{gpus['idle']} free GPUs"
    ]
    if cost.unpriced:
        lines.append(f"note: no price for node(s) {', '.join(cost.unpriced)}: counted at 0 USD")
    lines += [f"note: {problem}" for problem in cluster.problems]
    return lines
