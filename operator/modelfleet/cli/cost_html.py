"""`modelfleet cost --html FILE`: one self-contained HTML file with the report's charts (plotly).

Charts: cost over time, self-hosted against hosted-API cost, GPU allocation. plotly.js is
embedded once, so the file opens offline. Without Prometheus there is no history: the file says
so and draws what the live status gives (hourly cost now, spend to date, allocation now).
Imported only for --html: plotly is heavy, and no other command loads it.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]

from modelfleet.cli.cost_report import (
    Point,
    Report,
    Series,
    cumulative,
    format_duration,
    usd,
)

CHART_IDS = ("cost-over-time", "self-hosted-vs-api", "gpu-allocation")
NO_HISTORY = (
    "No history: this report was read from the live status (no --prometheus), so the charts "
    "show now (hourly cost, GPU allocation) and spend to date. Pass --prometheus URL --since 7d "
    "for cost over time."
)


def _times(points: Iterable[Point]) -> list[datetime]:
    return [datetime.fromtimestamp(at, UTC) for at, _ in points]


def _layout(figure: Any, title: str, y_title: str) -> Any:
    figure.update_layout(
        title=title,
        yaxis_title=y_title,
        template="plotly_white",
        height=420,
        margin={"l": 60, "r": 20, "t": 60, "b": 60},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _name(series: Series) -> str:
    namespace, name = series.owner()
    return f"{namespace}/{name}"


def cost_over_time(report: Report) -> Any:
    history = report.history
    figure = go.Figure()
    if history is None:
        lines = report.deployments
        figure.add_bar(
            x=[f"{line.namespace}/{line.name}" for line in lines],
            y=[line.hourly for line in lines],
            name="USD per hour now",
        )
        return _layout(figure, "Cost now, per deployment (no history)", "USD per hour")
    for series in sorted(history.hourly, key=_name):
        figure.add_scatter(
            x=_times(series.points),
            y=[value for _, value in series.points],
            name=_name(series),
            mode="lines",
            stackgroup="deployments",
        )
    return _layout(figure, "Cost over time, per deployment (stacked)", "USD per hour")


def _running_total(series: Sequence[Series]) -> list[Point]:
    """The sum over series of what each added since its first sample, on their common grid."""
    grid = sorted({at for one in series for at, _ in one.points})
    totals = dict.fromkeys(grid, 0.0)
    for one in series:
        steps = cumulative(one.points)
        index, last = 0, 0.0
        for at in grid:
            while index < len(steps) and steps[index][0] <= at:
                last = steps[index][1]
                index += 1
            totals[at] += last
    return sorted(totals.items())


def self_hosted_vs_api(report: Report) -> Any:
    history = report.history
    figure = go.Figure()
    if history is not None and history.spend:
        spend = _running_total(history.spend)
        api = _running_total(history.api_equivalent)
        figure.add_scatter(
            x=_times(spend), y=[v for _, v in spend], name="self-hosted (GPU spend)", mode="lines"
        )
        figure.add_scatter(
            x=_times(api), y=[v for _, v in api], name="hosted API, same tokens", mode="lines"
        )
        title = f"Self-hosted vs hosted API, cumulative over {_since(report)}"
        return _layout(figure, title, "USD")
    lines = report.deployments
    names = [f"{line.namespace}/{line.name}" for line in lines]
    figure.add_bar(x=names, y=[line.spend for line in lines], name="self-hosted (GPU spend)")
    figure.add_bar(
        x=names,
        y=[line.api_equivalent for line in lines],
        name="hosted API, same tokens",
        text=[line.compare_to or "" for line in lines],
    )
    figure.update_layout(barmode="group")
    return _layout(figure, "Self-hosted vs hosted API, spend to date", "USD")


def gpu_allocation(report: Report) -> Any:
    history = report.history
    figure = go.Figure()
    if history is not None and history.cluster:
        for series in sorted(history.cluster, key=lambda s: s.labels.get("allocation", "")):
            figure.add_scatter(
                x=_times(series.points),
                y=[value for _, value in series.points],
                name=series.labels.get("allocation", "?"),
                mode="lines",
                stackgroup="allocation",
            )
        return _layout(figure, "Cluster GPU cost by allocation (stacked)", "USD per hour")
    cluster = report.cluster
    if cluster is None:
        figure.add_annotation(text="Nodes and Pods could not be read", showarrow=False)
        return _layout(figure, "Cluster GPU allocation now", "")
    cost = cluster.cost
    labels = [f"modelfleet {ns}/{name}" for ns, name in sorted(cost.by_deployment)]
    values = [cost.by_deployment[owner] for owner in sorted(cost.by_deployment)]
    labels += ["other pods", "idle (free GPUs)"]
    values += [cost.other_hourly, cost.free_hourly]
    figure.add_pie(labels=labels, values=values, hole=0.4, sort=False)
    return _layout(
        figure, f"Cluster GPU allocation now: {usd(cost.hourly)} USD per hour", "USD per hour"
    )


def _since(report: Report) -> str:
    return format_duration(report.since) if report.since else "the window"


def _summary_table(report: Report) -> str:
    headers = ["Namespace", "Name", "Model", "GPU", "Replicas", "USD/h", "Spend", "API equiv."]
    rows = [
        [
            line.namespace,
            line.name,
            line.model or "-",
            line.gpu_product or "-",
            str(line.replicas),
            usd(line.hourly),
            usd(line.spend),
            usd(line.api_equivalent),
        ]
        for line in report.deployments
    ]
    totals = report.totals
    rows.append(["", "total", "", "", "", usd(totals.hourly), usd(totals.spend), ""])
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report) -> str:
    figures = [cost_over_time(report), self_hosted_vs_api(report), gpu_allocation(report)]
    charts = "\n".join(
        figure.to_html(full_html=False, include_plotlyjs=(index == 0), div_id=chart_id)
        for index, (figure, chart_id) in enumerate(zip(figures, CHART_IDS, strict=True))
    )
    if report.history is None:
        scope = f"live status as of {report.as_of}"
    else:
        scope = f"Prometheus history over the last {_since(report)} to {report.as_of}"
    cluster = report.cluster
    cluster_line = (
        ""
        if cluster is None
        else f"<p>Cluster GPUs: {usd(cluster.cost.hourly)} USD/h; allocated "
        f"{usd(cluster.cost.allocated_hourly)} USD/h; idle {usd(cluster.cost.free_hourly)} "
        "USD/h.</p>"
    )
    notes = "".join(f"<p class=note>{html.escape(note)}</p>" for note in report.notes)
    history_note = f"<p class=note>{html.escape(NO_HISTORY)}</p>" if report.history is None else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>modelfleet cost report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}}.note{{color:#a40}}</style>
</head><body>
<h1>modelfleet cost report</h1>
<p>{html.escape(scope)}{
        "" if report.namespace is None else ", namespace " + html.escape(report.namespace)
    }.</p>
{history_note}{_summary_table(report)}
{cluster_line}{notes}
{charts}
</body></html>
"""


def write_html(report: Report, path: Path) -> None:
    path.write_text(render_html(report), encoding="utf-8")
