"""The chart's Grafana dashboard against a real Prometheus on the local control plane.

Prometheus (built from its Go module, `modelfleet.dev.cluster.prometheus`) scrapes the test's
operator and, through Kubernetes service discovery, the engine pods the emulator answers for.
After emulated load on one deployment (another one stays idle), every panel's query of
charts/modelfleet/dashboards/modelfleet-cost.json, with Grafana's variables substituted, must
evaluate without error and return data; a failure names the panel. The chart must carry that
same JSON in its sidecar-labelled ConfigMap.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from modelfleet.cost.budget import NAMESPACE_BUDGET_ANNOTATION
from modelfleet.dev.cluster import prometheus
from modelfleet.dev.cluster.build import ensure_helm
from modelfleet.dev.engine.load import LoadConfig, kube_targets, run_load
from tests.integration.engine_fixtures import wait_for_engines
from tests.integration.operator_fixtures import ModelDeployments, OperatorProcess, wait_until
from tests.integration.test_cost_report import modelfleet_cost

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelfleet"
DASHBOARD = CHART / "dashboards" / "modelfleet-cost.json"
SCRAPE_INTERVAL = 2.0
MODEL = "Qwen/Qwen2.5-7B-Instruct"
SPEC: dict[str, Any] = {
    "model": MODEL,
    "gpu": {"product": "NVIDIA-L4", "count": 1},
    "replicas": 1,
    "budget": {"maxHourly": 5.0},
}
LOADED, IDLE = "loaded", "idle"
LOAD = LoadConfig(rate=3.0, duration=30, prompt_tokens=200, output_tokens=50, drain_seconds=10)
# Grafana's built-in variables, as Grafana would expand them for a short time range.
BUILTINS = {"__rate_interval": "1m", "__interval": "10s", "__range": "5m"}
PANELS_TIMEOUT = 120.0


def dashboard() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return found


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Grafana's `$name`, `${name}` and `[[name]]` forms; an unknown variable is an error."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in variables:
            raise KeyError(f"unknown dashboard variable ${name} in {expr!r}")
        return variables[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def panel_queries(board: dict[str, Any], variables: dict[str, str]) -> list[tuple[str, str]]:
    """(panel title / refId, PromQL) of every target of every panel."""
    return [
        (f"{panel['title']!r} / {target.get('refId', '?')}", substitute(target["expr"], variables))
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


@pytest.fixture
def prom(
    kubeconfig: Path, operator_process: OperatorProcess, tmp_path: Path
) -> Iterator[prometheus.Prometheus]:
    """Prometheus scraping the session's operator and the cluster's engine pods."""
    running = prometheus.start(
        tmp_path / "prometheus",
        kubeconfig,
        [f"127.0.0.1:{operator_process.metrics_port}"],
        scrape_interval=SCRAPE_INTERVAL,
    )
    try:
        yield running
    finally:
        prometheus.stop(running)
        log = running.log.read_text(errors="replace")
        if log.strip():
            print(f"prometheus log:\n{log[-4000:]}")


def test_every_dashboard_panel_has_data_after_load(
    api: Any,
    namespace: str,
    mds: ModelDeployments,
    emulator: Path,
    prom: prometheus.Prometheus,
    kubeconfig: Path,
    tmp_path: Path,
) -> None:
    board = dashboard()
    variables = {
        variable["name"]: variable["name"] for variable in board["templating"]["list"]
    } | BUILTINS
    variables["namespace"] = namespace
    queries = panel_queries(board, variables)  # fails here on an unknown variable
    assert len(queries) >= 20, queries  # every panel has its query

    # A namespace budget set by the cluster admin (docs/cost.md), for the namespace headroom.
    client.CoreV1Api(api).patch_namespace(
        namespace, {"metadata": {"annotations": {NAMESPACE_BUDGET_ANNOTATION: "20"}}}
    )
    mds.create(namespace, LOADED, SPEC)
    mds.create(namespace, IDLE, SPEC)
    wait_for_engines(api, namespace, LOADED, 1)
    wait_for_engines(api, namespace, IDLE, 1)

    # Prometheus found both engine pods by service discovery and scrapes them on the pod IP.
    engines = f'up{{job="{prometheus.ENGINES_JOB}", namespace="{namespace}"}}'

    def both_up() -> list[dict[str, Any]]:
        found = prom.query(engines)
        return found if len(found) == 2 and all(s["value"][1] == "1" for s in found) else []

    up = wait_until(both_up, 60, f"{engines} == 1 for both engine pods")
    assert {s["metric"]["deployment"] for s in up} == {LOADED, IDLE}, up
    assert {s["metric"]["engine"] for s in up} == {"vllm"}, up
    operator_up = f'up{{job="{prometheus.OPERATOR_JOB}"}} == 1'
    wait_until(lambda: prom.query(operator_up), 30, f"{operator_up} (the operator scraped)")

    report = asyncio.run(run_load(kube_targets(api, namespace, LOADED), MODEL, LOAD))
    assert report["ok"] > 0, report

    # The engine's own counters through Prometheus: the load reached the loaded pod only.
    generated = f'sum by (deployment) (vllm:generation_tokens_total{{namespace="{namespace}"}})'

    def per_deployment() -> dict[str, float]:
        found = {s["metric"]["deployment"]: float(s["value"][1]) for s in prom.query(generated)}
        return found if found.keys() == {LOADED, IDLE} and found[LOADED] > 0 else {}

    tokens = wait_until(per_deployment, 30, f"{generated} of both pods, > 0 for {LOADED}")
    assert tokens[LOADED] > 0 and tokens[IDLE] == 0, tokens
    # Something the operator exports today, through Prometheus.
    assert prom.query("sum(modelfleet_reconciles_total) > 0"), "no reconciles scraped"

    # Every panel: an error fails at once (it will not go away); no data is retried until the
    # operator has written its series and Prometheus scraped them.
    deadline = time.monotonic() + PANELS_TIMEOUT
    while True:
        empty: list[str] = []
        for title, expr in queries:
            try:
                result = prom.query(expr)
            except prometheus.PrometheusError as error:
                pytest.fail(f"panel {title}: query errors: {error}", pytrace=False)
            if not result:
                empty.append(f"panel {title}: no data for {expr}")
        if not empty:
            break
        if time.monotonic() > deadline:
            pytest.fail(
                f"{len(empty)} of {len(queries)} panel queries returned nothing after "
                f"{PANELS_TIMEOUT:.0f}s:\n" + "\n".join(empty),
                pytrace=False,
            )
        time.sleep(SCRAPE_INTERVAL)

    # `modelfleet cost --prometheus`: the same history as a report, as a user runs it.
    html = tmp_path / "cost.html"
    history = modelfleet_cost(
        kubeconfig,
        "-n",
        namespace,
        "--prometheus",
        prom.url,
        "--since",
        "10m",
        "-o",
        "json",
        "--html",
        str(html),
    )
    rows = {row["name"]: row for row in history["deployments"]}
    assert rows.keys() == {LOADED, IDLE}, history
    assert rows[LOADED]["tokens"]["output"] > 0 and rows[IDLE]["tokens"]["output"] == 0, rows
    assert all(row["hourly"] > 0 and row["spend"] > 0 for row in rows.values()), rows
    assert html.stat().st_size > 0 and "plotly" in html.read_text()

    # The namespace variable's query lists the test's namespace.
    namespace_variable = next(v for v in board["templating"]["list"] if v["name"] == "namespace")
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", namespace_variable["definition"])
    assert match, namespace_variable["definition"]
    listed = prom.query(f"group by ({match.group(2)}) ({match.group(1)})")
    assert namespace in {s["metric"].get("namespace") for s in listed}, listed


def helm_template(*values: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(ensure_helm()), "template", "r", str(CHART), "--namespace", "ops", *values],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={"HOME": "/nonexistent", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_chart_carries_the_dashboard_for_the_grafana_sidecar_and_opt_in_opencost() -> None:
    def configmaps(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [o for o in objects if o["kind"] == "ConfigMap"]

    def args(objects: list[dict[str, Any]]) -> list[str]:
        [deployment] = [o for o in objects if o["kind"] == "Deployment"]
        found: list[str] = deployment["spec"]["template"]["spec"]["containers"][0].get("args", [])
        return found

    default = helm_template()
    [configmap] = configmaps(default)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "ops"
    assert json.loads(configmap["data"]["modelfleet-cost.json"]) == dashboard()
    assert "--opencost-metrics" not in args(default)

    custom = helm_template(
        "--set",
        "metrics.grafanaDashboard.labelValue=modelfleet",
        "--set",
        "metrics.grafanaDashboard.namespace=monitoring",
        "--set",
        "metrics.grafanaDashboard.annotations.grafana_folder=Cost",
        "--set",
        "metrics.opencost=true",
    )
    [configmap] = configmaps(custom)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "modelfleet"
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Cost"}
    assert args(custom) == ["--opencost-metrics"]

    assert not configmaps(helm_template("--set", "metrics.grafanaDashboard.enabled=false"))
