"""Bring the local cluster up, down, and report on it.

`up` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as detached
processes, waiting in order (etcd health, apiserver /readyz, default ServiceAccount, Nodes Ready).
state.json records what was started so `down` stops exactly those PIDs, and the cluster's own
pod IP range, chosen at `up` so that no two local clusters share one (`pod_range`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from pydantic import BaseModel, ValidationError

from modelfleet.dev.cluster import audit, credentials, flags, pod_range, processes
from modelfleet.dev.cluster.build import Binaries, ensure_binaries
from modelfleet.dev.cluster.nodes import NodeInventory, load_inventory, render_nodes
from modelfleet.dev.cluster.paths import DEFAULT_CLUSTER_NAME, cache_dir, state_dir
from modelfleet.dev.cluster.stages import DEFAULT_MODEL_LOAD_DELAY, render_stages

WAIT_TIMEOUT_SECONDS = 90.0
POLL_SECONDS = 0.25
# Component -> token user of its kubeconfig.
COMPONENT_USERS = {
    "kube-controller-manager": "system:kube-controller-manager",
    "kube-scheduler": "system:kube-scheduler",
    "kwok": "kwok",
}


class ClusterError(RuntimeError):
    """Starting or waiting for the cluster failed; the message includes the relevant log tail."""


class ProcessRecord(BaseModel):
    component: str
    pid: int
    started: int
    binary: str
    log: str
    ports: dict[str, int] = {}


class ClusterState(BaseModel):
    """Contents of state.json."""

    name: str
    state_dir: str
    kubeconfig: str
    server: str
    # A state.json from before per-cluster ranges has none: that cluster uses the legacy range.
    pod_cidr: str = pod_range.LEGACY_POD_CIDR
    node_count: int = 0
    processes: list[ProcessRecord] = []

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (read it with `audit.read_events`)."""
        return flags.StateLayout(Path(self.state_dir)).audit_log

    def all_running(self) -> bool:
        return bool(self.processes) and all(
            processes.is_running(record.pid, record.started) for record in self.processes
        )


def read_state(name: str = DEFAULT_CLUSTER_NAME) -> ClusterState | None:
    path = flags.StateLayout(state_dir(name)).state_file
    if not path.exists():
        return None
    return ClusterState.model_validate_json(path.read_text())


def all_states() -> list[ClusterState]:
    """The state of every local cluster that has a state dir (running or not), by name."""
    found = []
    for path in sorted((cache_dir() / "cluster").glob("*/state.json")):
        with contextlib.suppress(OSError, ValidationError):  # half-written or foreign: skip
            found.append(ClusterState.model_validate_json(path.read_text()))
    return found


def find_by_server(server: str) -> ClusterState | None:
    """The local cluster whose API server is `server` (e.g. from a kubeconfig), if any."""
    wanted = server.rstrip("/")
    return next((state for state in all_states() if state.server == wanted), None)


def up(
    name: str = DEFAULT_CLUSTER_NAME,
    kubeconfig: Path | None = None,
    nodes_file: Path | None = None,
    model_load_delay: timedelta = DEFAULT_MODEL_LOAD_DELAY,
    timeout_seconds: float = WAIT_TIMEOUT_SECONDS,
) -> ClusterState:
    """Start the cluster (a no-op if it already runs) and return its state."""
    existing = read_state(name)
    if existing is not None and existing.all_running():
        return existing
    inventory = load_inventory(nodes_file)  # validate before touching anything
    if existing is not None:
        _say(f"cluster {name!r} is partly down; restarting it")
    down(name)
    binaries = ensure_binaries()
    started = time.monotonic()
    layout = flags.StateLayout(state_dir(name))
    ports = flags.Ports(*(processes.free_port() for _ in range(5)))
    admin_kubeconfig = (kubeconfig or layout.admin_kubeconfig).absolute()
    with _clusters_lock():  # two `up`s at once must not pick the same pod range
        in_use = [other.pod_cidr for other in all_states() if other.name != name]
        state = ClusterState(
            name=name,
            state_dir=str(layout.root),
            kubeconfig=str(admin_kubeconfig),
            server=f"https://127.0.0.1:{ports.apiserver}",
            pod_cidr=pod_range.choose_pod_cidr(name, in_use),
        )
        layout.root.mkdir(parents=True)
        _write_state(layout, state)
    admin_token = _write_credentials(layout, state.server, admin_kubeconfig, name)
    layout.stages_file.write_text(render_stages(model_load_delay))
    layout.audit_policy_file.write_text(audit.policy_text())
    layout.audit_log.parent.mkdir()
    launcher = _Launcher(state, layout, timeout_seconds)
    try:
        _start_control_plane(launcher, binaries, ports, admin_token)
        state.node_count = _create_nodes(launcher, admin_kubeconfig, inventory)
    except BaseException:
        launcher.stop_all()
        raise
    launcher.save()
    _say(f"cluster {name!r} up in {time.monotonic() - started:.1f}s, pod IPs in {state.pod_cidr}")
    return state


def down(name: str = DEFAULT_CLUSTER_NAME) -> bool:
    """Stop the processes `up` started, in reverse order, and remove the state dir.

    A kubeconfig written elsewhere with `up --kubeconfig` is left alone: it may be the user's file.
    """
    root = state_dir(name)
    if not root.exists():
        return False
    state = read_state(name)
    if state is not None:
        _stop_all(state)
    shutil.rmtree(root)
    return True


class ComponentStatus(BaseModel):
    component: str
    pid: int
    alive: bool
    ports: dict[str, int]
    log: str


class ClusterStatus(BaseModel):
    """What `cluster status` shows; `nodes` is None when the API server cannot be asked."""

    name: str
    server: str
    kubeconfig: str
    pod_cidr: str
    logs: str
    audit_log: str
    components: list[ComponentStatus]
    nodes: int | None

    @property
    def healthy(self) -> bool:
        return bool(self.components) and all(c.alive for c in self.components)


def status(name: str = DEFAULT_CLUSTER_NAME) -> ClusterStatus | None:
    """Each component's pid, liveness and ports, plus the kubeconfig and the Node count."""
    state = read_state(name)
    if state is None:
        return None
    components = [
        ComponentStatus(
            component=record.component,
            pid=record.pid,
            alive=processes.is_running(record.pid, record.started),
            ports=record.ports,
            log=record.log,
        )
        for record in state.processes
    ]
    return ClusterStatus(
        name=state.name,
        server=state.server,
        kubeconfig=state.kubeconfig,
        pod_cidr=state.pod_cidr,
        logs=str(flags.StateLayout(Path(state.state_dir)).logs_dir),
        audit_log=str(state.audit_log),
        components=components,
        nodes=_count_nodes(state.kubeconfig) if state.all_running() else None,
    )


def log_tails(name: str = DEFAULT_CLUSTER_NAME, lines: int = 30) -> str:
    """The last lines of every component log, also after a failed `up` stopped everything."""
    logs = sorted(flags.StateLayout(state_dir(name)).logs_dir.glob("*.log"))
    if not logs:
        return f"(no logs for cluster {name!r})"
    return "\n".join(f"--- {log} ---\n{processes.log_tail(log, lines)}" for log in logs)


def api_client(kubeconfig: Path) -> Any:
    """A `kubernetes.client.ApiClient` for a kubeconfig file."""
    return k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def _clusters_lock() -> Iterator[None]:
    """An exclusive lock over all local clusters' state dirs (held while choosing a pod range)."""
    root = cache_dir() / "cluster"
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_state(layout: flags.StateLayout, state: ClusterState) -> None:
    """Replace state.json at once: another `up` reads it for the pod ranges in use."""
    partial = layout.state_file.with_suffix(".json.partial")
    partial.write_text(state.model_dump_json(indent=2))
    partial.replace(layout.state_file)


def _write_credentials(
    layout: flags.StateLayout, server: str, admin_kubeconfig: Path, name: str
) -> str:
    """Write the PKI, the token file and every kubeconfig; returns the admin token."""
    pki = credentials.generate_pki(layout.pki.ca_cert.parent)
    tokens = credentials.new_tokens()
    layout.token_file.write_text(credentials.render_token_file(tokens))
    layout.token_file.chmod(0o600)
    ca_pem = pki.ca_cert.read_bytes()
    for component, user in COMPONENT_USERS.items():
        credentials.write_kubeconfig(
            layout.component_kubeconfig(component),
            credentials.render_kubeconfig(name, server, ca_pem, tokens[user]),
        )
    admin = credentials.render_kubeconfig(name, server, ca_pem, tokens["admin"])
    credentials.write_kubeconfig(admin_kubeconfig, admin)
    if admin_kubeconfig != layout.admin_kubeconfig:
        credentials.write_kubeconfig(layout.admin_kubeconfig, admin)
    return tokens["admin"]


class _Launcher:
    """Starts components of one cluster and waits on them, saving every PID at once.

    state.json is rewritten after each start so `down` finds the processes even if `up` is killed.
    """

    def __init__(self, state: ClusterState, layout: flags.StateLayout, timeout: float) -> None:
        self.state = state
        self.layout = layout
        self.timeout = timeout

    def start(
        self,
        component: str,
        argv: list[str],
        ports: dict[str, int] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        log = self.layout.log(component)
        pid = processes.spawn(argv, log, env or dict(os.environ))
        started = processes.start_time(pid)
        if started is None:
            raise ClusterError(
                f"{component} exited at once; tail of {log}:\n{processes.log_tail(log)}"
            )
        record = ProcessRecord(
            component=component,
            pid=pid,
            started=started,
            binary=argv[0],
            log=str(log),
            ports=ports or {},
        )
        self.state.processes.append(record)
        self.save()

    def wait(self, what: str, condition: Callable[[], bool]) -> None:
        """Poll `condition`; fail early, with its log tail, if a started process died."""
        deadline = time.monotonic() + self.timeout
        while True:
            for record in self.state.processes:
                if not processes.is_running(record.pid, record.started):
                    raise _failure(record, f"{record.component} exited while waiting for {what}")
            if condition():
                return
            if time.monotonic() > deadline:
                last = self.state.processes[-1]
                raise _failure(last, f"timed out after {self.timeout:g}s waiting for {what}")
            time.sleep(POLL_SECONDS)

    def stop_all(self) -> None:
        _stop_all(self.state)
        self.save()

    def save(self) -> None:
        if self.layout.root.exists():
            _write_state(self.layout, self.state)


def _start_control_plane(
    launcher: _Launcher, binaries: Binaries, ports: flags.Ports, admin_token: str
) -> None:
    layout = launcher.layout
    etcd_ports = {"client": ports.etcd_client, "peer": ports.etcd_peer}
    launcher.start("etcd", flags.etcd_args(binaries, layout, ports), etcd_ports)
    launcher.wait("etcd health", lambda: _etcd_healthy(ports.etcd_client))
    apiserver_argv = flags.apiserver_args(binaries, layout, ports)
    launcher.start("kube-apiserver", apiserver_argv, {"secure": ports.apiserver})
    server, ca = launcher.state.server, layout.pki.ca_cert
    launcher.wait("apiserver /readyz", lambda: _apiserver_ready(server, ca, admin_token))
    launcher.start(
        "kube-controller-manager",
        flags.controller_manager_args(binaries, layout, ports),
        {"secure": ports.controller_manager},
    )
    scheduler_argv = flags.scheduler_args(binaries, layout, ports)
    launcher.start("kube-scheduler", scheduler_argv, {"secure": ports.scheduler})
    layout.kwok_home.mkdir(exist_ok=True)  # a scratch HOME, so a stray ~/.kwok is ignored
    kwok_env = {**os.environ, "HOME": str(layout.kwok_home)}
    kwok_argv = flags.kwok_args(binaries, layout, launcher.state.pod_cidr)
    launcher.start("kwok", kwok_argv, env=kwok_env)


def _create_nodes(launcher: _Launcher, kubeconfig: Path, inventory: NodeInventory) -> int:
    """Wait for the default ServiceAccount, create the Nodes, wait until all are Ready."""
    with api_client(kubeconfig) as api:
        core = k8s.CoreV1Api(api)
        launcher.wait("default ServiceAccount", lambda: _default_service_account_exists(core))
        nodes = render_nodes(inventory)
        for node in nodes:
            _create_node(core, node)
        names = {node["metadata"]["name"] for node in nodes}
        launcher.wait(f"{len(names)} nodes Ready", lambda: _nodes_ready(core, names))
    return len(names)


def _failure(record: ProcessRecord, message: str) -> ClusterError:
    tail = processes.log_tail(Path(record.log))
    return ClusterError(f"{message}; tail of {record.log}:\n{tail}")


def _stop_all(state: ClusterState) -> None:
    for record in reversed(state.processes):
        processes.stop(record.pid, record.started)
    state.processes = []


def _etcd_healthy(client_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{client_port}/health", timeout=2) as reply:
            return bool(json.load(reply).get("health") == "true")
    except (OSError, ValueError):
        return False


def _apiserver_ready(server: str, ca: Path, token: str) -> bool:
    request = urllib.request.Request(
        f"{server}/readyz", headers={"Authorization": f"Bearer {token}"}
    )
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as reply:
            return bool(reply.status == 200)
    except OSError:  # includes HTTPError (e.g. 500 while not ready) and TLS errors
        return False


def _default_service_account_exists(core: Any) -> bool:
    try:
        core.read_namespaced_service_account("default", "default")
    except k8s.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _create_node(core: Any, node: dict[str, Any]) -> None:
    try:
        core.create_node(node)
    except k8s.ApiException as error:
        if error.status != 409:
            raise


def _nodes_ready(core: Any, names: set[str]) -> bool:
    ready = {
        node.metadata.name
        for node in core.list_node(label_selector="type=kwok").items
        if any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    }
    return names <= ready


def _count_nodes(kubeconfig: str) -> int | None:
    try:
        with api_client(Path(kubeconfig)) as api:
            return len(k8s.CoreV1Api(api).list_node(_request_timeout=5).items)
    except Exception:  # status is best-effort: report "unknown", never fail
        return None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
