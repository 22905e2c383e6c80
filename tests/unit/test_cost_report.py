"""`modelfleet cost`: the report's arithmetic, totals, namespace grouping, JSON shape, durations,
history windows, the Prometheus reader against a local HTTP server, the HTML file, and one-line
errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest

from modelfleet.cli.cost_html import CHART_IDS, NO_HISTORY, render_html, write_html
from modelfleet.cli.cost_prometheus import (
    PrometheusError,
    fetch_history,
    promql,
    query_range,
    step_for,
)
from modelfleet.cli.cost_report import (
    DeploymentCost,
    History,
    Series,
    cluster_section,
    cumulative,
    deployment_from_status,
    deployments_from_history,
    format_duration,
    format_table,
    gpu_pods,
    history_report,
    increase,
    live_report,
    parse_duration,
)
from modelfleet.cost import GpuPod
from modelfleet.plan.prices import parse_price_overrides

SHEET = parse_price_overrides(
    {"NVIDIA-L4": 0.5, "NVIDIA-H100-80GB-HBM3": {"onDemand": 2.0, "spot": 1.0}}
)
AS_OF = "2026-12-01T12:00:00Z"


def md(
    namespace: str,
    name: str,
    cost: dict[str, Any] | None = None,
    replicas: int = 1,
    product: str = "NVIDIA-L4",
    gpus: int = 1,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "replicas": replicas,
        "placement": {"gpuProduct": product, "gpusPerReplica": gpus, "tensorParallel": gpus},
    }
    if cost is not None:
        status["cost"] = cost
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": "auto"}},
        "status": status,
    }


def cost(hourly: float, spend: float, tokens: tuple[int, int] = (0, 0), **extra: Any) -> Any:
    return {
        "hourly": hourly,
        "gpus": 1,
        "spend": spend,
        "tokens": {"input": tokens[0], "output": tokens[1]},
        **extra,
    }


def node(
    name: str, product: str | None, gpus: int, annotation: str | None = None, spot: bool = False
) -> dict[str, Any]:
    labels = {"nvidia.com/gpu.product": product} if product else {}
    if spot:
        labels["karpenter.sh/capacity-type"] = "spot"
    annotations = {"modelfleet.dev/gpu-hourly-usd": annotation} if annotation else {}
    resources = {"cpu": "16", "nvidia.com/gpu": str(gpus)} if gpus else {"cpu": "16"}
    return {
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(
    node_name: str | None,
    gpus: int,
    owner: str | None = None,
    namespace: str = "team-a",
    phase: str = "Running",
) -> dict[str, Any]:
    labels = (
        {"modelfleet.dev/deployment": owner, "app.kubernetes.io/managed-by": "modelfleet"}
        if owner
        else {}
    )
    spec: dict[str, Any] = {
        "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]
    }
    if node_name:
        spec["nodeName"] = node_name
    return {
        "metadata": {"namespace": namespace, "name": f"p-{owner}", "labels": labels},
        "spec": spec,
        "status": {"phase": phase},
    }


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("6h", 6 * 3600),
        ("7d", 7 * 86400),
        ("2w", 14 * 86400),
        ("1h30m", 5400),
        (" 1D ", 86400),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "want a duration like"),
        ("3x", "want a duration like"),
        ("10", "want a duration like"),
        ("-1h", "want a duration like"),
        ("1.5h", "want a duration like"),
        ("h", "want a duration like"),
        ("1h 30m", "want a duration like"),
        ("0m", "above zero"),
        ("300w", "at most 5 years"),
    ],
)
def test_bad_durations_say_what_is_wanted(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(5400, "1h30m"), (86400, "1d"), (45, "45s"), (694861, "1w1d1h1m1s")]
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


# --- live status -----------------------------------------------------------------------------


def test_a_full_status_cost_is_read_field_by_field() -> None:
    line = deployment_from_status(
        md(
            "team-a",
            "qwen",
            {
                "hourly": 1.4,
                "gpus": 2,
                "unpricedGpus": 1,
                "spend": 33.6,
                "spendSince": "2026-11-30T12:00:00Z",
                "accruedUntil": "2026-12-01T12:00:00Z",
                "tokens": {"input": 3_000_000, "output": 1_000_000},
                "perMillionTokens": {"output": 1.4, "total": 0.35},
                "apiEquivalent": {
                    "usd": 50.0,
                    "compareTo": "google/gemini-2.5-flash",
                    "asOf": "2026-06",
                },
                "idleGpuHours": 0.5,
            },
            replicas=2,
        )
    )
    assert line == DeploymentCost(
        namespace="team-a",
        name="qwen",
        model="Qwen/Qwen2.5-7B-Instruct",
        gpu_product="NVIDIA-L4",
        gpus_per_replica=1,
        gpus=2,
        replicas=2,
        hourly=1.4,
        spend=33.6,
        tokens_input=3_000_000,
        tokens_output=1_000_000,
        per_million_output=1.4,
        per_million_total=0.35,
        api_equivalent=50.0,
        compare_to="google/gemini-2.5-flash",
        api_as_of="2026-06",
        idle_gpu_hours=0.5,
        spend_since="2026-11-30T12:00:00Z",
        unpriced_gpus=1,
    )
    assert line.savings == pytest.approx(16.4)


@pytest.mark.parametrize(
    ("cost_status", "expected"),
    [
        pytest.param(None, (False, 0.0, 0.0, None, None), id="no-status-cost-yet"),
        pytest.param({}, (True, 0.0, 0.0, None, None), id="empty-cost-block"),
        pytest.param(
            {"hourly": "1.4", "spend": True, "tokens": {"input": -5}},
            (True, 0.0, 0.0, None, None),
            id="wrong-types-are-absent-not-errors",
        ),
        pytest.param(
            {"hourly": 0.7, "spend": 2.0, "apiEquivalent": {"usd": 1.5}},
            (True, 0.7, 2.0, 1.5, -0.5),
            id="api-cheaper-means-negative-savings",
        ),
        pytest.param(
            {"hourly": 0.7, "spend": 2.0, "someFutureField": {"x": 1}},
            (True, 0.7, 2.0, None, None),
            id="unknown-fields-of-a-newer-operator-ignored",
        ),
    ],
)
def test_status_cost_is_read_leniently(
    cost_status: dict[str, Any] | None,
    expected: tuple[bool, float, float, float | None, float | None],
) -> None:
    line = deployment_from_status(md("ns", "d", cost_status))
    assert (line.reported, line.hourly, line.spend, line.api_equivalent, line.savings) == (
        expected[0],
        expected[1],
        expected[2],
        expected[3],
        pytest.approx(expected[4]) if expected[4] is not None else None,
    )


def test_gpu_product_comes_from_the_placement_else_a_pinned_spec() -> None:
    pinned = {"metadata": {"namespace": "n", "name": "a"}, "spec": {"gpu": {"product": "X"}}}
    auto = {"metadata": {"namespace": "n", "name": "b"}, "spec": {"gpu": {"product": "auto"}}}
    assert deployment_from_status(pinned).gpu_product == "X"
    assert deployment_from_status(auto).gpu_product is None
    assert deployment_from_status(md("n", "c", product="NVIDIA-H200")).gpu_product == "NVIDIA-H200"


MDS = [
    md("team-b", "r1", cost(4.0, 40.0, (1_000, 2_000), apiEquivalent={"usd": 100.0})),
    md("team-a", "qwen", cost(0.5, 10.0, (3_000, 4_000), apiEquivalent={"usd": 4.0})),
    md("team-a", "llama", cost(1.0, 5.0)),
    md("team-a", "new"),  # no status.cost yet
]


def test_totals_are_sums_of_the_statuses_and_grouped_by_namespace() -> None:
    report = live_report(MDS, None, AS_OF, namespace=None)
    assert [line.key for line in report.deployments] == [
        ("team-a", "llama"),
        ("team-a", "new"),
        ("team-a", "qwen"),
        ("team-b", "r1"),
    ]
    totals = report.totals
    assert (totals.hourly, totals.spend) == (pytest.approx(5.5), pytest.approx(55.0))
    assert (totals.tokens_input, totals.tokens_output) == (4_000, 6_000)
    assert totals.api_equivalent == pytest.approx(104.0)
    assert totals.savings == pytest.approx((100.0 - 40.0) + (4.0 - 10.0))  # only compared ones
    namespaces = report.namespaces
    assert list(namespaces) == ["team-a", "team-b"]
    assert (namespaces["team-a"].hourly, namespaces["team-a"].spend) == (1.5, 15.0)
    assert namespaces["team-a"].deployments == 3
    assert (namespaces["team-b"].hourly, namespaces["team-b"].spend) == (4.0, 40.0)
    assert sum(t.hourly for t in namespaces.values()) == pytest.approx(totals.hourly)
    assert report.notes == ("1 deployment(s) without status.cost yet, counted as 0: team-a/new",)


def test_no_deployments_is_a_report_of_zeros() -> None:
    report = live_report([], None, AS_OF, namespace="empty")
    data = report.as_dict()
    assert data["deployments"] == [] and data["namespaces"] == {}
    assert data["totals"]["hourly"] == 0 and data["totals"]["apiEquivalent"] is None
    assert "0 deployment(s)" in format_table(report)


# --- cluster ---------------------------------------------------------------------------------

NODES = [
    node("l4-a", "NVIDIA-L4", 4),  # sheet: 0.5
    node("l4-b", "NVIDIA-L4", 4, annotation="0.3"),  # negotiated price wins
    node("h100-spot", "NVIDIA-H100-80GB-HBM3", 8, spot=True),  # sheet spot: 1.0
    node("h100-typo", "NVIDIA-H100-80GB-HBM3", 8, annotation="$2"),  # bad: sheet 2.0
    node("cpu", None, 0),
]
PODS = [
    pod("l4-a", 2, owner="qwen"),
    pod("l4-b", 1, owner="qwen"),
    pod("h100-spot", 4, owner="r1", namespace="team-b"),
    pod("l4-a", 1),  # someone else's GPU pod
    pod("h100-typo", 8, phase="Succeeded"),  # finished: holds nothing
    pod(None, 4, owner="pending"),  # not bound: holds nothing
    pod("cpu", 0),
]


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        pytest.param([pod("n", 2, owner="a")], [GpuPod("n", 2, ("team-a", "a"))], id="engine"),
        pytest.param([pod("n", 1)], [GpuPod("n", 1, None)], id="other-pod"),
        pytest.param([pod(None, 1, owner="a")], [], id="pending"),
        pytest.param([pod("n", 1, phase="Failed")], [], id="failed"),
        pytest.param([pod("n", 1, phase="Pending")], [GpuPod("n", 1, None)], id="bound-pending"),
        pytest.param([pod("n", 0)], [], id="no-gpus"),
        pytest.param(
            [
                {
                    **pod("n", 1),
                    "metadata": {"labels": {"modelfleet.dev/deployment": "x"}, "namespace": "n"},
                }
            ],
            [GpuPod("n", 1, None)],
            id="owner-label-without-managed-by-is-not-ours",
        ),
    ],
)
def test_gpu_pods(pods: list[dict[str, Any]], expected: list[GpuPod]) -> None:
    assert gpu_pods(pods) == expected


def test_cluster_section_is_every_gpu_node_at_its_price_split_by_holder() -> None:
    section = cluster_section(NODES, PODS, SHEET)
    inventory_price = 4 * 0.5 + 4 * 0.3 + 8 * 1.0 + 8 * 2.0
    data = section.as_dict()
    assert data["hourly"] == pytest.approx(inventory_price)
    modelfleet = 2 * 0.5 + 1 * 0.3 + 4 * 1.0
    other = 1 * 0.5
    assert data["modelfleetHourly"] == pytest.approx(modelfleet)
    assert data["otherHourly"] == pytest.approx(other)
    assert data["allocatedHourly"] == pytest.approx(modelfleet + other)
    assert data["idleHourly"] == pytest.approx(inventory_price - modelfleet - other)
    assert data["gpus"] == {"total": 24, "modelfleet": 7, "other": 1, "idle": 16}
    assert data["byNamespace"] == {
        "team-a": pytest.approx(1.3),
        "team-b": pytest.approx(4.0),
    }
    sources = {n["name"]: (n["usdPerGpuHour"], n["priceSource"]) for n in data["nodes"]}
    assert sources == {
        "l4-a": (0.5, "price sheet"),
        "l4-b": (0.3, "annotation"),
        "h100-spot": (1.0, "price sheet"),
        "h100-typo": (2.0, "price sheet"),
    }
    assert len(data["problems"]) == 1 and "h100-typo" in data["problems"][0]


def test_unpriced_nodes_count_at_zero_and_are_named() -> None:
    section = cluster_section([node("mystery", "ACME-X1", 2)], [], SHEET)
    assert section.cost.hourly == 0.0 and section.cost.unpriced == ("mystery",)
    report = live_report([], section, AS_OF)
    assert "no price for node(s) mystery" in format_table(report)


# --- JSON shape ------------------------------------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_json_has_the_issue_shape_with_usd_as_numbers() -> None:
    report = live_report(MDS, cluster_section(NODES, PODS, SHEET), AS_OF)
    data = json.loads(json.dumps(report.as_dict()))
    required = {
        "namespace",
        "name",
        "model",
        "gpuProduct",
        "gpus",
        "replicas",
        "hourly",
        "spend",
        "tokens",
        "perMillionTokens",
        "apiEquivalent",
    }
    for line in data["deployments"]:
        assert required <= set(line)
        assert all(_number(line[k]) for k in ("gpus", "replicas", "hourly", "spend"))
        assert set(line["tokens"]) >= {"input", "output"}
        assert line["apiEquivalent"] is None or _number(line["apiEquivalent"])
    assert all(_number(data["totals"][k]) for k in ("hourly", "spend"))
    assert all(_number(data["cluster"][k]) for k in ("hourly", "allocatedHourly", "idleHourly"))
    qwen = next(line for line in data["deployments"] if line["name"] == "qwen")
    assert (qwen["hourly"], qwen["spend"], qwen["apiEquivalent"], qwen["savings"]) == (
        0.5,
        10.0,
        4.0,
        -6.0,
    )
    assert data["source"] == "status" and data["asOf"] == AS_OF


def test_the_table_shows_every_deployment_namespace_totals_and_the_cluster() -> None:
    text = format_table(live_report(MDS, cluster_section(NODES, PODS, SHEET), AS_OF))
    for words in ("team-a total", "team-b total", "all", "r1", "100.00", "Cluster GPUs: 27.20"):
        assert words in text
    assert "idle 21.40 USD/h on 16 free GPUs" in text


# --- history ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([], 0.0, id="no-samples"),
        pytest.param([5.0], 0.0, id="one-sample-adds-nothing"),
        pytest.param([5.0, 6.0, 8.0], 3.0, id="growth"),
        pytest.param([5.0, 6.0, 1.0, 2.0], 1.0 + 1.0 + 1.0, id="reset-counts-from-zero"),
        pytest.param([5.0, 5.0, 5.0], 0.0, id="flat"),
    ],
)
def test_increase(values: list[float], expected: float) -> None:
    points = [(float(i * 60), v) for i, v in enumerate(values)]
    assert increase(points) == pytest.approx(expected)
    if points:
        assert cumulative(points)[-1] == (points[-1][0], pytest.approx(expected))


def grid(values: list[float], start: float = 0.0, step: float = 60.0) -> tuple[Any, ...]:
    return tuple((start + i * step, v) for i, v in enumerate(values))


def series(namespace: str, name: str, values: list[float], start: float = 0, **labels: str) -> Any:
    return Series({"namespace": namespace, "name": name, **labels}, grid(values, start))


HISTORY = History(
    start=0.0,
    end=240.0,
    step=60.0,
    hourly=[series("a", "qwen", [1, 1, 2, 2, 2]), series("a", "gone", [3, 3])],
    spend=[series("a", "qwen", [10, 11, 12, 14, 16]), series("a", "gone", [7, 8])],
    tokens=[
        series("a", "qwen", [0, 100_000, 200_000, 300_000, 400_000], direction="input"),
        series("a", "qwen", [0, 50_000, 50_000, 60_000, 100_000], direction="output"),
    ],
    api_equivalent=[
        series("a", "qwen", [1, 2], compare_to="google/gemini-2.5-flash"),
        series("a", "qwen", [0, 0, 5, 6], start=60, compare_to="openai/gpt-4o-mini"),
    ],
    replicas=[series("a", "qwen", [1, 1, 2, 2, 2])],
    gpus=[series("a", "qwen", [1, 1, 2, 2, 2])],
    cluster=[
        Series({"allocation": "idle"}, grid([5, 5, 4, 4, 4])),
        Series({"allocation": "modelfleet"}, grid([4, 4, 5, 5, 5])),
    ],
)


def test_history_is_what_the_window_added_and_the_latest_rate() -> None:
    live = {("a", "qwen"): deployment_from_status(md("a", "qwen", cost(9.0, 99.0)))}
    lines = {line.name: line for line in deployments_from_history(HISTORY, live)}
    qwen, gone = lines["qwen"], lines["gone"]
    assert (qwen.hourly, qwen.replicas, qwen.gpus, qwen.spend) == (2.0, 2, 2, 6.0)
    assert (qwen.tokens_input, qwen.tokens_output) == (400_000, 100_000)
    assert qwen.per_million_total == pytest.approx(6.0 / 500_000 * 1e6)
    assert qwen.per_million_output == pytest.approx(6.0 / 100_000 * 1e6)
    # compareTo changed mid-window: both series' increases count, the latest name is shown
    assert qwen.api_equivalent == pytest.approx(1.0 + 6.0)
    assert qwen.compare_to == "openai/gpt-4o-mini"
    assert (qwen.model, qwen.gpu_product) == ("Qwen/Qwen2.5-7B-Instruct", "NVIDIA-L4")
    # deleted mid-window: what it spent counts, it costs nothing now, and no live object names it
    assert (gone.hourly, gone.replicas, gone.spend, gone.model) == (0.0, 0, 1.0, None)
    assert gone.per_million_total is None and gone.api_equivalent is None


def test_history_report_totals_and_notes() -> None:
    live = [md("a", "qwen", cost(9.0, 99.0)), md("a", "never-scraped")]
    report = history_report(HISTORY, live, None, AS_OF, timedelta(minutes=4), "a")
    assert report.totals.spend == pytest.approx(7.0) and report.totals.hourly == 2.0
    assert report.notes == ("no series in Prometheus for 1 live deployment(s): a/never-scraped",)
    data = report.as_dict()
    assert (data["source"], data["since"], data["namespace"]) == ("prometheus", "4m", "a")
    assert "SPEND 4m" in format_table(report)


# --- Prometheus reader -----------------------------------------------------------------------


class FakePrometheus(BaseHTTPRequestHandler):
    """/api/v1/query_range answering from `answers` (by metric name found in the query)."""

    answers: ClassVar[dict[str, Any]] = {}
    queries: ClassVar[list[dict[str, list[str]]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        type(self).queries.append(form)
        query = form["query"][0]
        if "broken" in query:
            self._send(400, {"status": "error", "errorType": "bad_data", "error": "parse error"})
            return
        result = next((v for k, v in self.answers.items() if k in query), [])
        self._send(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    FakePrometheus.queries = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_history_queries_every_series_on_one_grid(prometheus: str) -> None:
    FakePrometheus.answers = {
        "modelfleet_deployment_spend_usd": [
            {
                "metric": {"namespace": "a", "name": "qwen"},
                "values": [[1000, "1.5"], [1060, "2.5"], [1120, "NaN"]],
            }
        ],
        "modelfleet_cluster_gpu_hourly_cost_usd": [
            {"metric": {"allocation": "idle"}, "values": [[1000, "3"]]}
        ],
    }
    end = datetime.fromtimestamp(1_000_000, UTC)
    history = fetch_history(prometheus + "/", timedelta(hours=1), end, namespace="a")
    assert history.step == 15.0 and history.end - history.start == 3600.0
    assert history.end <= end.timestamp() and history.end % history.step == 0
    assert history.spend == [Series({"namespace": "a", "name": "qwen"}, ((1000, 1.5), (1060, 2.5)))]
    assert history.cluster[0].labels == {"allocation": "idle"}
    queries = [q["query"][0] for q in FakePrometheus.queries]
    assert len(queries) == 8
    assert 'max by (namespace, name) (modelfleet_deployment_spend_usd{namespace="a"})' in queries
    assert "max by (allocation) (modelfleet_cluster_gpu_hourly_cost_usd" in queries[-1]
    assert {q["step"][0] for q in FakePrometheus.queries} == {"15.0"}


@pytest.mark.parametrize(
    ("since", "step"), [(timedelta(minutes=30), 15.0), (timedelta(days=7), 1210.0)]
)
def test_step_keeps_series_short(since: timedelta, step: float) -> None:
    assert step_for(since) == step
    assert since.total_seconds() / step <= 500


def test_a_refused_query_is_one_line(prometheus: str) -> None:
    with pytest.raises(PrometheusError, match=r"refused .*broken.*parse error"):
        query_range(prometheus, "broken(", 0, 60, 15)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:1", "cannot reach Prometheus at http://127.0.0.1:1"),
        ("not a url", "--prometheus: want an http"),
        ("localhost:9090", "--prometheus: want an http"),
    ],
)
def test_unreachable_prometheus_is_one_line(url: str, words: str) -> None:
    with pytest.raises(PrometheusError, match=words) as caught:
        fetch_history(url, timedelta(hours=1), datetime.now(UTC))
    assert "\n" not in str(caught.value)


def test_promql_quotes_the_namespace() -> None:
    assert promql("m", "namespace", 'x"y') == 'max by (namespace) (m{namespace="x\\"y"})'


# --- HTML ------------------------------------------------------------------------------------


def test_html_without_history_says_so_and_draws_what_the_status_gives(tmp_path: Path) -> None:
    report = live_report(MDS, cluster_section(NODES, PODS, SHEET), AS_OF)
    path = tmp_path / "cost.html"
    write_html(report, path)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    for chart in CHART_IDS:
        assert f'id="{chart}"' in text
    assert NO_HISTORY in text
    assert text.count("Plotly.newPlot") == 3
    # self-contained: plotly.js is inline, nothing is loaded from elsewhere
    assert "<script src=" not in text and len(text) > 1_000_000
    assert "Self-hosted vs hosted API, spend to date" in text
    assert "Cluster GPU allocation now: 27.20 USD per hour" in text
    assert "<td>r1</td>" in text and "team-b\\u002fr1" in text  # table row, chart label


def test_html_with_history_draws_time_series(tmp_path: Path) -> None:
    report = history_report(HISTORY, [], None, AS_OF, timedelta(minutes=4))
    text = render_html(report)
    assert NO_HISTORY not in text
    assert "Cost over time, per deployment (stacked)" in text
    assert "Self-hosted vs hosted API, cumulative over 4m" in text
    assert "Cluster GPU cost by allocation (stacked)" in text
    assert text.count("Plotly.newPlot") == 3


def test_html_escapes_names() -> None:
    evil = md("ns", "x", cost(1.0, 1.0))
    evil["spec"]["model"] = "<script>alert(1)</script>"
    text = render_html(live_report([evil], None, AS_OF))
    assert "<script>alert(1)</script>" not in text.split("<table>", 1)[1].split("</table>")[0]


# --- the command: bad input is one line, and `run` never loads it ----------------------------

UNREACHABLE = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: team-a}}]
current-context: x
"""


def cost_command(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelfleet.cli", "cost", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("args", "files", "code", "words"),
    [
        (["--since", "3x"], {}, 2, "modelfleet cost: --since: want a duration like 30m"),
        (["--since", "0h"], {}, 2, "modelfleet cost: --since: want a duration above zero"),
        (["--prices", "missing.yaml"], {}, 2, "modelfleet cost: missing.yaml: No such file"),
        (
            ["--prices", "p.yaml"],
            {"p.yaml": "NVIDIA-L4: cheap\n"},
            2,
            "modelfleet cost: p.yaml.NVIDIA-L4: must be a number of USD per GPU-hour",
        ),
        (
            ["--kubeconfig", "k.yaml"],
            {"k.yaml": UNREACHABLE},
            1,
            "modelfleet cost: cannot reach the API server at https://127.0.0.1:1",
        ),
        (
            ["--kubeconfig", "nothing.yaml"],
            {},
            1,
            "modelfleet cost: no cluster to read",
        ),
        (["--prometheus", "localhost:9090"], {}, 2, "modelfleet cost: --prometheus: want an"),
        (["-o", "yaml"], {}, 2, "invalid choice: 'yaml'"),
        (["-n", "a", "-A"], {}, 2, "not allowed with argument -n/--namespace"),
    ],
)
def test_bad_input_is_one_clear_line(
    tmp_path: Path, args: list[str], files: dict[str, str], code: int, words: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    done = cost_command(*args, cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert words in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if not line.startswith(("usage", " "))]
    assert len(lines) == 1, done.stderr


def test_help_has_an_example_for_every_option() -> None:
    done = cost_command("--help")
    assert done.returncode == 0
    text = done.stdout
    for option in (
        "--namespace",
        "--all-namespaces",
        "--since",
        "--prometheus",
        "--output",
        "--html",
        "--prices",
        "--kubeconfig",
    ):
        assert option in text
    for example in ("-n team-a", "-A -o json", "--since 7d", "--html cost.html", "--prices"):
        assert example in text


PROBE = """
import sys
from modelfleet.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
print(sorted(m for m in sys.modules if m.startswith(("plotly", "modelfleet.cli.cost"))))
"""


@pytest.mark.parametrize(
    ("argv", "loaded"),
    [
        (["run", "--help"], []),
        (["cost", "--help"], ["modelfleet.cli.cost", "modelfleet.cli.cost_report"]),
    ],
)
def test_plotly_and_the_cost_command_load_only_when_needed(
    argv: list[str], loaded: list[str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == repr(loaded)
