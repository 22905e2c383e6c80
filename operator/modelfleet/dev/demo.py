"""`make demo`: a local control plane, the CRD, the operator, the engine emulator, a Prometheus
scraping the operator and the engines, and the samples.

Then a burst of load on the autoscaled sample shows replicas added and, once the load is gone
and the sample's scale-down window has passed, removed again. Everything is left running.
Run as `python -m modelfleet.dev.demo` (`--no-burst` to skip the burst, `--down` to stop all).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from modelfleet.api.types import GROUP, PLURAL, VERSION
from modelfleet.dev.cluster import control_plane, ensure_binaries, prometheus
from modelfleet.dev.cluster.paths import DEFAULT_CLUSTER_NAME, state_dir
from modelfleet.dev.cluster.processes import free_port, is_running, spawn, start_time, stop
from modelfleet.dev.engine.load import LoadConfig, deployment_model, kube_targets, run_load

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "manifests" / "samples"
CRDS = ROOT / "crds"
READY_TIMEOUT_SECONDS = 180
AUTOSCALED = "llama-3-1-8b-autoscaled"  # manifests/samples/llama-3.1-8b-autoscaled.yaml
# More than one emulated L4 serves (its KV cache fills and requests queue within 10 s), about
# what two or three do: the autoscaler adds replicas and new requests reach them (open loop, like
# real users). Requests still in flight 30 s after the burst are abandoned; the engines abort them.
BURST = LoadConfig(rate=4.0, duration=90, prompt_tokens=1000, output_tokens=100, drain_seconds=30)
SCALE_DOWN_TIMEOUT_SECONDS = 240
OPERATOR_METRICS_PORT = 8080  # `modelfleet run`'s default
PROMETHEUS_PORT = 9090  # Prometheus' usual port, or any free one when something holds it
# Spend and tokens in status every 30 s instead of every 5 minutes: a demo lasts minutes.
DEMO_ENV = {"MODELFLEET_COST_WRITE_SECONDS": "30"}
COST_WAIT_SECONDS = 60


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


# Background processes the demo leaves running: the operator and the engine emulator.
BACKGROUND = {"operator": ["run"], "emulator": ["emulate"]}


def _pid_file(name: str, role: str) -> Path:
    return state_dir(name) / f"{role}.pid"


def _start_background(name: str, role: str, kubeconfig: str, *extra_args: str) -> Path:
    """Start `modelfleet <command>` detached, so it keeps running after the demo command ends."""
    log = state_dir(name) / "logs" / f"{role}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file = _pid_file(name, role)
    if pid_file.exists():
        pid, started = (int(x) for x in pid_file.read_text().split())
        if is_running(pid, started):
            _say(f"{role} already running (pid {pid})")
            return log
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONUNBUFFERED": "1", **DEMO_ENV}
    argv = [sys.executable, "-m", "modelfleet.cli", *BACKGROUND[role], *extra_args]
    pid = spawn(argv, log, env)
    pid_file.write_text(f"{pid} {start_time(pid) or 0}")
    _say(f"{role} started (pid {pid}), log: {log}")
    return log


def _stop_background(name: str, role: str) -> None:
    pid_file = _pid_file(name, role)
    if pid_file.exists():
        pid, started = (int(x) for x in pid_file.read_text().split())
        stop(pid, started)
        pid_file.unlink()
        _say(f"{role} (pid {pid}) stopped")


def _prometheus_dir(name: str) -> Path:
    return state_dir(name) / "prometheus"


def _start_prometheus(name: str, kubeconfig: str) -> prometheus.Prometheus:
    """Prometheus scraping the demo's operator and, by Kubernetes service discovery, every
    modelfleet engine pod (the emulator answers on their IPs)."""
    port = PROMETHEUS_PORT
    try:
        with socket.create_server(("127.0.0.1", port)):
            pass
    except OSError:
        port = free_port()
    running = prometheus.start(
        _prometheus_dir(name),
        Path(kubeconfig),
        [f"127.0.0.1:{OPERATOR_METRICS_PORT}"],
        port=port,
    )
    _say(f"prometheus running (pid {running.pid}) at {running.url}, log: {running.log}")
    return running


def _stop_prometheus(name: str) -> None:
    running = prometheus.read(_prometheus_dir(name))
    if running is not None:
        prometheus.stop(running)
        _say(f"prometheus (pid {running.pid}) stopped")


def _prometheus_help(url: str) -> str:
    query = f"curl -sG {url}/api/v1/query --data-urlencode"
    return (
        f"Prometheus ({url}) scrapes the operator and every engine pod every 5 s. This build has "
        "no web UI: query its HTTP API, e.g.\n"
        f"  {query} 'query=up'\n"
        f"  {query} 'query=sum by (namespace, name) (modelfleet_deployment_hourly_cost_usd)'\n"
        f"  {query} 'query=sum by (deployment) (rate(vllm:generation_tokens_total[1m]))'\n"
        f"  curl -sG {url}/api/v1/query_range --data-urlencode "
        "'query=sum(modelfleet_deployment_spend_usd)' \\\n"
        "      --data-urlencode start=$(date -d -15min +%s) --data-urlencode end=$(date +%s) "
        "--data-urlencode step=30\n"
        "The Grafana dashboard for these series: charts/modelfleet/dashboards/modelfleet-cost.json"
    )


def _kubectl(kubectl: Path, kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", *args],
        check=True,
        text=True,
        capture_output=True,
    )


def _wait_ready(kubectl: Path, kubeconfig: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    started = time.monotonic()
    while True:
        columns = (
            "custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type=='Ready')].status"
        )
        out = _kubectl(kubectl, kubeconfig, "get", "md", "-A", "--no-headers", "-o", columns)
        rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
        ready = [r[0] for r in rows if len(r) > 1 and r[1] == "True"]
        _say(f"{len(ready)}/{len(rows)} ModelDeployments Ready ({time.monotonic() - started:.0f}s)")
        if rows and len(ready) == len(rows):
            return
        if time.monotonic() > deadline:
            print(log.read_text()[-4000:], file=sys.stderr)
            raise SystemExit(f"not all ModelDeployments became Ready in {READY_TIMEOUT_SECONDS}s")
        time.sleep(3)


def _burst(kubeconfig: Path) -> None:
    """Load the autoscaled sample, then let it idle; print replicas and the autoscaler's reasons."""
    namespace = "default"
    with control_plane.api_client(kubeconfig) as api:
        custom: Any = client.CustomObjectsApi(api)

        def status() -> dict[str, Any]:
            md = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, AUTOSCALED)
            found: dict[str, Any] = md.get("status") or {}
            return found

        def line(prefix: str, now: dict[str, Any]) -> str:
            return (
                f"{prefix} replicas desired {now.get('desiredReplicas')}, ready "
                f"{now.get('readyReplicas')}; last scale: {now.get('lastScaleReason') or '-'}"
            )

        def progress(report: dict[str, Any]) -> None:
            ttft = report.get("ttftP95Seconds")
            p95 = "-" if ttft is None else f"{ttft:.2f}s"
            _say(
                line(
                    f"[{report['elapsedSeconds']:5.0f}s] load: {report['inFlight']} in flight, "
                    f"{report['ok']} done, p95 TTFT {p95};",
                    status(),
                )
            )

        _say(
            f"burst: {BURST.rate:g} streaming requests/s ({BURST.prompt_tokens} prompt, "
            f"{BURST.output_tokens} output tokens) for {BURST.duration:.0f}s on {AUTOSCALED} "
            "(`modelfleet load` does the same from the command line)"
        )
        model = deployment_model(api, namespace, AUTOSCALED)
        report = asyncio.run(
            run_load(kube_targets(api, namespace, AUTOSCALED), model, BURST, on_progress=progress)
        )
        _say(f"burst over: {report['ok']} requests served, p95 TTFT {report['ttftP95Seconds']}s")
        _say("no load now: the autoscaler removes replicas after the sample's 60 s window")
        deadline = time.monotonic() + SCALE_DOWN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            now = status()
            _say(line("[idle]", now))
            if now.get("desiredReplicas") == 1 and now.get("readyReplicas") == 1:
                return
            time.sleep(10)
        _say(f"still above 1 replica after {SCALE_DOWN_TIMEOUT_SECONDS}s: see the operator log")


def _cost_report(kubeconfig: str, prometheus_url: str, name: str) -> Path:
    """Print `modelfleet cost -A` once every deployment's status has spend, and write the HTML
    report with the history Prometheus holds; returns the HTML file."""
    with control_plane.api_client(Path(kubeconfig)) as api_client:
        api: Any = client.CustomObjectsApi(api_client)

        def spending() -> tuple[int, int]:
            items = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
            costs = [(md.get("status") or {}).get("cost") or {} for md in items]
            return sum(1 for cost in costs if cost.get("spend")), len(items)

        deadline = time.monotonic() + COST_WAIT_SECONDS
        while (counts := spending())[0] < counts[1] and time.monotonic() < deadline:
            _say(f"waiting for spend in status: {counts[0]}/{counts[1]} ModelDeployments")
            time.sleep(5)
    _say("the cost report (modelfleet cost -A):")
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    command = [sys.executable, "-m", "modelfleet.cli", "cost", "-A"]
    subprocess.run(command, env=env, check=False)
    html = state_dir(name) / "cost-report.html"
    subprocess.run(
        [*command, "--prometheus", prometheus_url, "--since", "1h", "--html", str(html)],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
    )
    return html


def demo(name: str, burst: bool = True) -> int:
    binaries = ensure_binaries()
    _say("starting the local control plane (etcd, apiserver, controller-manager, scheduler, kwok)")
    state = control_plane.up(name=name)
    kubeconfig = state.kubeconfig
    _say("installing the ModelDeployment CRD")
    _kubectl(binaries.kubectl, kubeconfig, "apply", "-f", str(CRDS))
    _kubectl(
        binaries.kubectl,
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "crd/modeldeployments.modelfleet.dev",
        "--timeout=60s",
    )
    log = _start_background(
        name, "operator", kubeconfig, "--metrics-port", str(OPERATOR_METRICS_PORT)
    )
    # Only this cluster's pod range: a test cluster running next to the demo has its own.
    _start_background(name, "emulator", kubeconfig, "--pod-cidr", state.pod_cidr)
    prometheus_url = _start_prometheus(name, kubeconfig).url
    _say(f"applying the samples in {SAMPLES.relative_to(ROOT)}/")
    print(_kubectl(binaries.kubectl, kubeconfig, "apply", "-f", str(SAMPLES)).stdout, end="")
    _wait_ready(binaries.kubectl, kubeconfig, log)
    print()
    print(_kubectl(binaries.kubectl, kubeconfig, "get", "md", "-o", "wide").stdout)
    print(_kubectl(binaries.kubectl, kubeconfig, "get", "pods", "-o", "wide").stdout)
    if burst:
        _burst(Path(kubeconfig))
        print(_kubectl(binaries.kubectl, kubeconfig, "get", "md", AUTOSCALED).stdout)
        events = _kubectl(
            binaries.kubectl,
            kubeconfig,
            "get",
            "events",
            "--field-selector",
            f"involvedObject.name={AUTOSCALED},reason=Scaled",
            "--sort-by=.lastTimestamp",
            "-o",
            "custom-columns=TIME:.lastTimestamp,REASON:.reason,MESSAGE:.message",
        )
        print(events.stdout)
    html = _cost_report(kubeconfig, prometheus_url, name)
    print(_prometheus_help(prometheus_url))
    print()
    print(
        f"The cost report as a page: {html}\n"
        f"The cluster, the operator and Prometheus keep running. Try:\n"
        f"  export KUBECONFIG={kubeconfig}\n"
        f"  alias kubectl={binaries.kubectl}\n"
        f"  kubectl get md\n"
        f"  kubectl describe md qwen2-5-72b-instruct\n"
        f"Stop everything with: make demo-down"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelfleet.dev.demo",
        description=(
            "Start the local cluster, the operator, the engine emulator, Prometheus and the "
            "samples, show "
            "a burst of load scaling the autoscaled sample up and back down; leave them running."
        ),
    )
    parser.add_argument("--name", default=DEFAULT_CLUSTER_NAME, help="local cluster name")
    parser.add_argument(
        "--down",
        action="store_true",
        help="stop Prometheus, the operator, the emulator and the cluster",
    )
    parser.add_argument(
        "--no-burst", action="store_true", help="skip the autoscaling burst at the end"
    )
    args = parser.parse_args()
    if args.down:
        _stop_prometheus(args.name)
        for role in BACKGROUND:
            _stop_background(args.name, role)
        control_plane.down(args.name)
        _say(f"cluster {args.name!r} stopped")
        return 0
    return demo(args.name, burst=not args.no_burst)


if __name__ == "__main__":
    sys.exit(main())
