"""Reading the operator's cost series from Prometheus' HTTP API (/api/v1/query_range).

Each query takes the max over the operator's instances (`max by (...)`): a standby or a former
leader may still export the last values it had, and a sum would count them twice.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from modelfleet.cli.cost_report import History, Series

TIMEOUT_SECONDS = 30
MAX_POINTS = 500  # per series; Prometheus refuses more than 11,000
MIN_STEP_SECONDS = 15

DEPLOYMENT = "namespace, name"
QUERIES: Mapping[str, tuple[str, str]] = {
    # History field -> (metric, labels it is kept by)
    "hourly": ("modelfleet_deployment_hourly_cost_usd", DEPLOYMENT),
    "spend": ("modelfleet_deployment_spend_usd", DEPLOYMENT),
    "tokens": ("modelfleet_deployment_tokens", f"{DEPLOYMENT}, direction"),
    "api_equivalent": ("modelfleet_deployment_api_equivalent_usd", f"{DEPLOYMENT}, compare_to"),
    "replicas": ("modelfleet_deployment_replicas", DEPLOYMENT),
    "gpus": ("modelfleet_deployment_gpus", DEPLOYMENT),
    "idle_gpu_hours": ("modelfleet_deployment_idle_gpu_hours", DEPLOYMENT),
    "cluster": ("modelfleet_cluster_gpu_hourly_cost_usd", "allocation"),
}


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or refused a query (one line, for the user)."""


def check_url(url: str) -> str:
    """An http(s) URL with a host, e.g. http://localhost:9090; ValueError otherwise."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"want an http(s) URL like http://localhost:9090, got {url!r}")
    return url.strip()


def step_for(since: timedelta) -> float:
    """Seconds between samples: at most MAX_POINTS per series, never below 15 s."""
    return float(max(MIN_STEP_SECONDS, math.ceil(since.total_seconds() / MAX_POINTS)))


def promql(metric: str, by: str, namespace: str | None) -> str:
    matcher = "" if namespace is None else "{namespace=" + json.dumps(namespace) + "}"
    return f"max by ({by}) ({metric}{matcher})"


def fetch_history(
    url: str, since: timedelta, end: datetime, namespace: str | None = None
) -> History:
    """Every cost series over [end - since, end]; PrometheusError on any failure."""
    try:
        url = check_url(url)
    except ValueError as error:
        raise PrometheusError(f"--prometheus: {error}") from None
    step = step_for(since)
    stop = math.floor(end.timestamp() / step) * step  # aligned: the same grid for every query
    start = stop - math.ceil(since.total_seconds() / step) * step
    found: dict[str, list[Series]] = {}
    for field, (metric, by) in QUERIES.items():
        found[field] = query_range(url, promql(metric, by, namespace), start, stop, step)
    return History(start=start, end=stop, step=step, **found)


def query_range(url: str, query: str, start: float, end: float, step: float) -> list[Series]:
    params = urllib.parse.urlencode({"query": query, "start": start, "end": end, "step": step})
    endpoint = url.rstrip("/") + "/api/v1/query_range"
    body = _post(endpoint, params.encode())
    data = body.get("data")
    if body.get("status") != "success" or not isinstance(data, Mapping):
        raise PrometheusError(f"Prometheus at {url} refused {query}: {body.get('error', body)}")
    if data.get("resultType") != "matrix":
        raise PrometheusError(f"Prometheus at {url}: {query} gave no range vector")
    return [_series(item) for item in data.get("result") or [] if isinstance(item, Mapping)]


def _post(endpoint: str, form: bytes) -> Mapping[str, Any]:
    request = urllib.request.Request(
        endpoint, data=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            text = response.read()
    except urllib.error.HTTPError as error:  # 400/422: a bad query; the body says why
        text = error.read()
        if not text.strip().startswith(b"{"):
            raise PrometheusError(
                f"Prometheus at {endpoint} answered HTTP {error.code} {error.reason}"
            ) from error
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise PrometheusError(f"cannot reach Prometheus at {endpoint}: {reason}") from error
    try:
        parsed = json.loads(text)
    except ValueError as error:
        raise PrometheusError(f"{endpoint} did not answer like Prometheus (not JSON)") from error
    if not isinstance(parsed, Mapping):
        raise PrometheusError(f"{endpoint} did not answer like Prometheus")
    return parsed


def _series(item: Mapping[str, Any]) -> Series:
    labels = item.get("metric") or {}
    points = []
    for pair in item.get("values") or []:
        try:
            at, value = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isfinite(value):
            points.append((at, value))
    return Series({str(k): str(v) for k, v in labels.items()}, tuple(points))
