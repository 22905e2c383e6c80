"""A real Prometheus next to the local cluster: the operator's /metrics and every engine pod.

`scrape_config` is the pure builder of prometheus.yml; `start` writes it into a directory of its
own (config, TSDB data, log, pid file), starts the cached binary (`build.ensure_prometheus`) as a
detached process on 127.0.0.1 and waits for /-/ready; `stop` ends exactly that process. Engine
pods are found the way a user's Prometheus finds them: Kubernetes service discovery (role pod)
with the cluster's kubeconfig, keeping modelfleet's pods and scraping each one's pod IP on the
engine's port and metrics path (the engine emulator answers there for kwok's pods).

A plain Go build serves no web UI (its assets are not embedded); query the HTTP API, e.g.
`curl 'http://127.0.0.1:PORT/api/v1/query?query=up'`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelfleet.api.types import Engine
from modelfleet.dev.cluster import processes
from modelfleet.dev.cluster.build import ensure_prometheus
from modelfleet.render.children import ENGINE_LABEL, MANAGED_BY, OWNER_LABEL, PORT_NAME
from modelfleet.render.engines import ENGINE_PORT, profile

DEFAULT_SCRAPE_INTERVAL_SECONDS = 5.0
READY_TIMEOUT_SECONDS = 60.0
OPERATOR_JOB = "modelfleet-operator"
ENGINES_JOB = "modelfleet-engines"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


class PrometheusError(RuntimeError):
    """Prometheus did not start, or a query failed; the message says why."""


def meta_label(pod_label: str) -> str:
    """The service-discovery meta label of a pod label (`a.b/c-d` -> `..._pod_label_a_b_c_d`)."""
    sanitized = "".join(char if char.isalnum() else "_" for char in pod_label)
    return f"__meta_kubernetes_pod_label_{sanitized}"


def scrape_config(
    kubeconfig: Path,
    operator_targets: Sequence[str],
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL_SECONDS,
) -> dict[str, Any]:
    """prometheus.yml: job modelfleet-operator (the given host:port targets) and job
    modelfleet-engines (every Running modelfleet engine pod, labelled namespace, pod,
    deployment, engine)."""
    interval = f"{scrape_interval:g}s"
    paths: dict[str, list[str]] = {}
    for engine in Engine:
        paths.setdefault(profile(engine).metrics_path, []).append(str(engine))
    # Each engine's metrics path (today /metrics for all of them).
    engine_paths = [
        {
            "source_labels": [meta_label(ENGINE_LABEL)],
            "regex": "|".join(engines),
            "target_label": "__metrics_path__",
            "replacement": path,
        }
        for path, engines in paths.items()
    ]
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": OPERATOR_JOB,
                "static_configs": [{"targets": list(operator_targets)}],
            },
            {
                "job_name": ENGINES_JOB,
                "scrape_timeout": f"{min(scrape_interval, 2.0):g}s",
                "kubernetes_sd_configs": [
                    {
                        "role": "pod",
                        "kubeconfig_file": str(kubeconfig),
                        # Server-side: the watch carries modelfleet's pods only.
                        "selectors": [{"role": "pod", "label": f"{MANAGED_BY_LABEL}={MANAGED_BY}"}],
                    }
                ],
                "relabel_configs": [
                    # What a user's job keeps without the selector above too.
                    {
                        "source_labels": [meta_label(MANAGED_BY_LABEL)],
                        "regex": MANAGED_BY,
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_phase"],
                        "regex": "Running",
                        "action": "keep",
                    },
                    # One target per pod: the engine container's port, not every declared one.
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                        "regex": PORT_NAME,
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_ip"],
                        "target_label": "__address__",
                        "replacement": f"${{1}}:{ENGINE_PORT}",
                    },
                    *engine_paths,
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                    {"source_labels": [meta_label(OWNER_LABEL)], "target_label": "deployment"},
                    {"source_labels": [meta_label(ENGINE_LABEL)], "target_label": "engine"},
                ],
            },
        ],
    }


@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus started by `start`: its API URL, process and directory."""

    url: str
    pid: int
    started: int
    directory: Path

    @property
    def log(self) -> Path:
        return self.directory / "prometheus.log"

    def running(self) -> bool:
        return processes.is_running(self.pid, self.started)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result of an instant query (/api/v1/query); PrometheusError when it fails."""
        return query(self.url, expr)


def _pid_file(directory: Path) -> Path:
    return directory / "prometheus.pid"


def read(directory: Path) -> Prometheus | None:
    """The Prometheus that `start` left running in `directory`, if it still runs."""
    try:
        pid, started, port = (int(x) for x in _pid_file(directory).read_text().split())
    except (FileNotFoundError, ValueError):
        return None
    found = Prometheus(f"http://127.0.0.1:{port}", pid, started, directory)
    return found if found.running() else None


def start(
    directory: Path,
    kubeconfig: Path,
    operator_targets: Sequence[str],
    *,
    port: int | None = None,
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL_SECONDS,
    retention: str = "2d",
    timeout: float = READY_TIMEOUT_SECONDS,
) -> Prometheus:
    """Write the config into `directory` and start Prometheus there (reusing one that `start`
    left running in it); waits for /-/ready. Builds the binary on first use."""
    running = read(directory)
    if running is not None:
        return running
    binary = ensure_prometheus()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            scrape_config(kubeconfig, operator_targets, scrape_interval), sort_keys=False
        )
    )
    port = port or processes.free_port()
    argv = [
        str(binary),
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    log = directory / "prometheus.log"
    pid = processes.spawn(argv, log)
    started = processes.start_time(pid) or 0
    _pid_file(directory).write_text(f"{pid} {started} {port}")
    prometheus = Prometheus(f"http://127.0.0.1:{port}", pid, started, directory)
    deadline = time.monotonic() + timeout
    while not _ready(prometheus.url):
        if not prometheus.running():
            raise PrometheusError(f"prometheus exited at start; {log}:\n{processes.log_tail(log)}")
        if time.monotonic() > deadline:
            stop(prometheus)
            raise PrometheusError(
                f"prometheus not ready after {timeout:.0f}s; {log}:\n{processes.log_tail(log)}"
            )
        time.sleep(0.25)
    return prometheus


def stop(prometheus: Prometheus) -> None:
    """SIGTERM (Prometheus flushes its head block), SIGKILL after the grace period."""
    processes.stop(prometheus.pid, prometheus.started, grace_seconds=30.0)
    _pid_file(prometheus.directory).unlink(missing_ok=True)


def _ready(url: str) -> bool:
    try:
        with _LOCAL.open(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def query(url: str, expr: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """GET /api/v1/query?query=EXPR: the result vector (or [matrix, scalar or string] as given);
    PrometheusError with Prometheus' own error message on a bad query."""
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with _LOCAL.open(address, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            body = json.loads(error.read())
        except ValueError:
            raise PrometheusError(f"{expr}: HTTP {error.code}") from error
    except OSError as error:
        raise PrometheusError(f"{expr}: {error}") from error
    if body.get("status") != "success":
        raise PrometheusError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
    data = body["data"]
    result = data["result"]
    if data["resultType"] in ("scalar", "string"):
        return [{"metric": {}, "value": result}]
    found: list[dict[str, Any]] = result
    return found
