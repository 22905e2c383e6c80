"""Integration fixtures: one real local control plane per pytest session, a namespace per test.

Set MODELFLEET_TEST_KUBECONFIG to reuse a running cluster (nothing is started or stopped), or
MODELFLEET_SKIP_INTEGRATION=1 to skip these tests. Otherwise a cluster that cannot start is a
failure, never a skip.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from kubernetes import client

from modelfleet.dev.cluster import control_plane
from tests.integration.engine_fixtures import log_tail, run_emulator
from tests.integration.operator_fixtures import (
    FAST_WRITE_SECONDS,
    ModelDeployments,
    OperatorProcess,
    install_crd,
    wait_until,
)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MODELFLEET_SKIP_INTEGRATION") != "1":
        return
    skip = pytest.mark.skip(reason="MODELFLEET_SKIP_INTEGRATION=1: no local cluster wanted")
    for item in items:
        if item.get_closest_marker("integration"):
            item.add_marker(skip)


def _server(kubeconfig: Path) -> str:
    config = yaml.safe_load(kubeconfig.read_text())
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster_name = current["context"]["cluster"]
    cluster = next(c for c in config["clusters"] if c["name"] == cluster_name)
    server: str = cluster["cluster"]["server"]
    return server


def _require_local(kubeconfig: Path) -> None:
    """Never run tests against a remote cluster by accident."""
    server = _server(kubeconfig)
    if urlparse(server).hostname not in LOCAL_HOSTS:
        pytest.exit(f"refusing to run integration tests against non-local server {server}", 2)


@pytest.fixture(scope="session")
def kubeconfig(request: pytest.FixtureRequest) -> Iterator[Path]:
    explicit = os.environ.get("MODELFLEET_TEST_KUBECONFIG")
    if explicit:
        yield Path(explicit)
        return
    name = f"modelfleet-test-{os.getpid()}"
    try:
        state = control_plane.up(name=name)
    except Exception as error:
        logs = control_plane.log_tails(name)
        control_plane.down(name)
        pytest.fail(f"local cluster {name} did not start: {error}\n{logs}", pytrace=False)
    path = Path(state.kubeconfig)
    _require_local(path)
    yield path
    if request.session.testsfailed:
        reporter: Any = request.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_sep("-", f"control-plane logs of {name}")
        reporter.write_line(control_plane.log_tails(name, lines=40))
    control_plane.down(name)


@pytest.fixture(scope="session")
def audit_log(kubeconfig: Path) -> Path | None:
    """The test cluster's API server audit log; None for a cluster `up` did not start (or an
    older `up` started without one)."""
    state = control_plane.find_by_server(_server(kubeconfig))
    return state.audit_log if state is not None and state.audit_log.exists() else None


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> Iterator[Any]:
    """A kubernetes.client.ApiClient for the test cluster."""
    with control_plane.api_client(kubeconfig) as api_client:
        yield api_client


@pytest.fixture
def namespace(api: Any) -> Iterator[str]:
    """A fresh namespace per test, with the default ServiceAccount pods need; deleted afterwards.

    Teardown waits until its pods are gone: their GPUs are free again for the next test, whose
    automatic placement would otherwise land elsewhere.
    """
    name = f"test-{secrets.token_hex(4)}"
    core: Any = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    deadline = time.monotonic() + 30
    while not core.list_namespaced_service_account(
        name, field_selector="metadata.name=default"
    ).items:
        assert time.monotonic() < deadline, f"no default ServiceAccount in {name} after 30s"
        time.sleep(0.1)
    yield name
    core.delete_namespace(name)
    deadline = time.monotonic() + 90
    while core.list_namespaced_pod(name).items:
        assert time.monotonic() < deadline, f"pods of namespace {name} still there after 90s"
        time.sleep(0.25)


@pytest.fixture(scope="session")
def operator_process(
    kubeconfig: Path,
    api: Any,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorProcess]:
    """The CRD installed and `modelfleet run` running for the whole session (restartable)."""
    install_crd(api)
    process = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    process.start()
    try:
        yield process
        if process.exited or request.session.testsfailed:
            reporter: Any = request.config.pluginmanager.get_plugin("terminalreporter")
            reporter.write_sep("-", "operator log (last 80 lines)")
            reporter.write_line("\n".join(process.log_path.read_text().splitlines()[-80:]))
    finally:
        process.stop()


@pytest.fixture
def fast_writes(operator_process: OperatorProcess) -> Iterator[OperatorProcess]:
    """The operator writing time-based status (cost, SLO) every FAST_WRITE_SECONDS instead of 5
    minutes, leading before the test's objects exist; restarted with its defaults after."""
    operator_process.restart(MODELFLEET_COST_WRITE_SECONDS=FAST_WRITE_SECONDS)
    wait_until(lambda: "modelfleet_leader 1.0" in operator_process.metrics(), 60, "leading")
    try:
        yield operator_process
    finally:
        operator_process.restart()


@pytest.fixture(scope="session")
def operator(operator_process: OperatorProcess) -> Path:
    """The session's operator; its log file."""
    return operator_process.log_path


@pytest.fixture
def mds(api: Any, operator: Path) -> ModelDeployments:
    return ModelDeployments(api)


@pytest.fixture(scope="session")
def emulator(
    kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """`modelfleet emulate` for the whole session: every Ready modelfleet engine pod answers on
    http://<podIP>:8000 (see engine_fixtures.wait_for_engines). Yields its log; prints the tail
    when a test failed or the emulator died."""
    log_path = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with run_emulator(kubeconfig, log_path) as process:
        yield log_path
        if process.poll() is not None or request.session.testsfailed:
            reporter: Any = request.config.pluginmanager.get_plugin("terminalreporter")
            reporter.write_sep("-", "emulator log (last 80 lines)")
            reporter.write_line(log_tail(log_path))
