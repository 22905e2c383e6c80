"""The Helm chart on a real control plane: lint, install, and the operator running on its RBAC.

The operator image cannot be built or pulled here, so the RBAC proof runs `modelfleet run`
out-of-cluster with a token of the chart's ServiceAccount: every API call the operator makes goes
through exactly the permissions the chart grants, and any missing one shows up as a 403. The local
API server runs the OwnerReferencesPermissionEnforcement admission plugin (as OpenShift does), so
the children's blockOwnerDeletion needs the chart's `modeldeployments/finalizers` rule too.

The operator is driven through every path that talks to the API, then the API server's audit log
says what it really called; that set is held against the rules `helm template` renders: every
call allowed, every grant used (or excused below, with the reason).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.api.types import GROUP, PLURAL
from modelfleet.dev.cluster import audit, rbac
from modelfleet.dev.cluster.audit import AuditEvent
from modelfleet.dev.cluster.build import ensure_helm
from modelfleet.dev.cluster.credentials import token_kubeconfig
from tests.integration.operator_fixtures import (
    ModelDeployments,
    OperatorProcess,
    run_operator,
    wait_until,
)

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "charts" / "modelfleet"
CRD_NAME = f"{PLURAL}.{GROUP}"
RELEASE = "modelfleet"
SERVICE_ACCOUNT = "modelfleet"  # the chart's fullname for a release named "modelfleet"
PRICES = ("--set-json", 'prices={"NVIDIA-L4": 0.55}')
SPEC = {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": "NVIDIA-L4", "count": 1}}
AUTOSCALED = "qwen-7b-autoscaled"
AUTOSCALED_SPEC = {
    **SPEC,
    "replicas": 2,
    "minReplicas": 1,
    "maxReplicas": 2,
    # Idle engines and no stabilisation window: the first decisions scale 2 -> 1.
    "autoscaling": {"intervalSeconds": 1, "scaleDownWindowSeconds": 0},
}
NOWHERE = "qwen-7b-nowhere"
NOWHERE_SPEC = {**SPEC, "gpu": {"product": "NVIDIA-A10G", "count": 1}}  # no such nodes here
# A shared weights cache whose download fails (kwok's stage for this model id): the volume and
# Job applied and watched, the failed pod listed for the reason (docs/cache.md).
NO_WEIGHTS = "no-weights"
FAILING = "simulated/download-fails"
# A shared cache that downloads (kwok: 12 s), then a new revision: the old cache is deleted.
CACHED = "cached-weights"
# Grants the operator needs that the audit log cannot show as a request of its own, each with
# the reason. The comparison fails if an entry gets used after all or is no longer granted.
EXCUSED: dict[rbac.Permission, str] = {
    ("modelfleet.dev", "modeldeployments/finalizers", "update"): (
        "children set blockOwnerDeletion; OwnerReferencesPermissionEnforcement authorizes it "
        "inside the child's create (an admission check, no request: the log never shows it)"
    ),
}
# Permission denials in the operator's log: RBAC ('... is forbidden: User "system:serviceaccount:
# ..." cannot ...') and OwnerReferencesPermissionEnforcement ('... is forbidden: cannot set
# blockOwnerDeletion ...'). Not every 403: another test's terminating namespace also answers one.
DENIALS = ("is forbidden: User", "is forbidden: cannot set")


def denials(log: str) -> list[str]:
    return [line for line in log.splitlines() if any(marker in line for marker in DENIALS)]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Run the pinned helm binary; its config, cache and data stay in a temp dir."""
    binary = ensure_helm()
    home = tmp_path_factory.mktemp("helm")
    env = {
        "HOME": str(home),  # kubeconfig discovery cache goes to $HOME/.kube/cache
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "PATH": "/usr/bin:/bin",
    }

    def run(*args: str, kubeconfig: Path | None = None) -> str:
        extra = {"KUBECONFIG": str(kubeconfig)} if kubeconfig else {}
        done = subprocess.run(
            [str(binary), *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    yield run


def test_chart_lints(helm: Any) -> None:
    helm("lint", "--strict", str(CHART))
    helm("lint", "--strict", str(CHART), "--set", "watchNamespaces={a,b}", "--set", "verbose=true")
    helm("lint", "--strict", str(CHART), "--set", "metrics.serviceMonitor.enabled=true")


def _rendered(helm: Any, *values: str) -> dict[str, dict[str, Any]]:
    """`helm template` of the chart: kind -> the one object of that kind."""
    text = helm("template", RELEASE, str(CHART), "--namespace", "ops", *values)
    return {doc["kind"]: doc for doc in yaml.safe_load_all(text) if doc}


@pytest.mark.parametrize("port", [8080, 9090])
def test_chart_renders_the_metrics_service_and_probes(helm: Any, port: int) -> None:
    """The metrics Service selects the operator pods on the container's metrics port; both
    probes ask /healthz (the election loop runs), so standbys are live and ready."""
    objects = _rendered(helm, "--set", f"metricsPort={port}")
    assert "ServiceMonitor" not in objects  # off by default: it needs prometheus-operator
    service, deployment = objects["Service"], objects["Deployment"]
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELFLEET_METRICS_PORT"] == str(port)
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe

    assert service["metadata"]["name"] == f"{RELEASE}-metrics"
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}
    ]
    selector = service["spec"]["selector"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert service["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }

    monitored = _rendered(
        helm,
        "--set",
        f"metricsPort={port}",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=prometheus",
        "--set",
        "metrics.service.prometheusAnnotations=false",
    )
    monitor, service = monitored["ServiceMonitor"], monitored["Service"]
    assert "annotations" not in service["metadata"]  # the ServiceMonitor scrapes it instead
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")


def service_account_kubeconfig(admin: Path, namespace: str, token: str, path: Path) -> Path:
    """A kubeconfig for the same server and CA as `admin`, authenticating with `token`."""
    return token_kubeconfig(admin, token, path, namespace)


def test_chart_installs_and_its_rbac_runs_the_operator(
    helm: Any,
    kubeconfig: Path,
    api: Any,
    namespace: str,
    emulator: Path,
    audit_log: Path | None,
    operator_process: OperatorProcess,
    tmp_path: Path,
) -> None:
    """Install, run the operator on the chart's RBAC through every API path, then hold what the
    API server saw it call against what the chart grants (cluster-wide, then with
    watchNamespaces).

    The session's operator is stopped meanwhile: the chart's must do all the work itself (create
    the children, scale, post the Events), or its grants for that would look unused.
    """
    core: Any = client.CoreV1Api(api)
    extensions: Any = client.ApiextensionsV1Api(api)
    release_namespace = f"modelfleet-{secrets.token_hex(4)}"
    try:
        crd_existed = bool(extensions.read_custom_resource_definition(CRD_NAME))
    except ApiException as error:
        assert error.status == 404
        crd_existed = False

    def release(command: str, *values: str) -> None:
        helm(
            command,
            RELEASE,
            str(CHART),
            "--namespace",
            release_namespace,
            *values,
            "--wait",
            "--timeout",
            "60s",
            kubeconfig=kubeconfig,
        )

    watch_one = ("--set", f"watchNamespaces={{{namespace}}}")
    cluster_wide_rules = _rendered_rules(helm, release_namespace)
    watching_rules = _rendered_rules(helm, release_namespace, *watch_one)
    operator_process.stop()
    try:
        release("install", "--create-namespace", *PRICES)
        _check_installed(helm, kubeconfig, api, release_namespace, crd_existed)
        operator = ChartOperator(api, kubeconfig, release_namespace, namespace, tmp_path)
        with _audited(audit_log, release_namespace, cluster_wide_rules) as cluster_wide:
            operator.exercise_cluster_wide()
        release("upgrade", *PRICES, *watch_one)
        with _audited(audit_log, release_namespace, watching_rules) as one_namespace:
            operator.exercise_one_namespace()
        if audit_log is None:
            pytest.skip("the cluster has no audit log (not started by `up`): RBAC not compared")
        _check_chart_grants_what_was_used(cluster_wide_rules, cluster_wide)
        _check_watch_namespaces_grants(cluster_wide_rules, watching_rules, one_namespace)
    finally:
        try:
            helm(
                "uninstall",
                RELEASE,
                "--namespace",
                release_namespace,
                "--wait",
                kubeconfig=kubeconfig,
            )
            core.delete_namespace(release_namespace)
        finally:
            operator_process.start()


def _check_installed(
    helm: Any, kubeconfig: Path, api: Any, release_namespace: str, crd_existed: bool
) -> None:
    status = helm("status", RELEASE, "--namespace", release_namespace, kubeconfig=kubeconfig)
    assert "STATUS: deployed" in status

    # The CRD comes from the chart's crds/ (Helm skips it when it already exists).
    assert CRD_NAME in helm("show", "crds", str(CHART))
    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(CRD_NAME)
    assert any(c.type == "Established" and c.status == "True" for c in crd.status.conditions)
    if not crd_existed:
        assert crd.metadata.managed_fields[0].manager == "helm"

    deployment = client.AppsV1Api(api).read_namespaced_deployment(RELEASE, release_namespace)
    assert deployment.status.ready_replicas == 1  # kwok runs the pod; --wait saw it Ready
    pod = deployment.spec.template.spec
    assert pod.service_account_name == SERVICE_ACCOUNT
    assert pod.security_context.run_as_non_root is True
    container = pod.containers[0]
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.capabilities.drop == ["ALL"]
    assert not container.args  # cluster-wide, no --namespace
    env = {e.name: e.value for e in container.env}
    assert env["MODELFLEET_PRICES_FILE"] == "/etc/modelfleet/prices.yaml"
    namespace_env = next(e for e in container.env if e.name == "MODELFLEET_NAMESPACE")
    assert namespace_env.value_from.field_ref.field_path == "metadata.namespace"
    prices = client.CoreV1Api(api).read_namespaced_config_map(
        f"{RELEASE}-prices", release_namespace
    )
    assert yaml.safe_load(prices.data["prices.yaml"]) == {"NVIDIA-L4": 0.55}
    _check_metrics_service(api, release_namespace)


def _check_metrics_service(api: Any, release_namespace: str) -> None:
    """The metrics Service exists, selects exactly the operator's pod, and its target port is
    the operator container's metrics port. (The local cluster's pod IPs are loopback addresses,
    which EndpointSlices refuse, so the endpoints themselves cannot be checked here.)"""
    core: Any = client.CoreV1Api(api)
    service = core.read_namespaced_service(f"{RELEASE}-metrics", release_namespace)
    assert service.spec.type == "ClusterIP"
    [port] = service.spec.ports
    assert (port.name, port.port, port.target_port, port.protocol) == (
        "metrics",
        8080,
        "metrics",
        "TCP",
    )
    selector = ",".join(f"{k}={v}" for k, v in service.spec.selector.items())
    [pod] = core.list_namespaced_pod(release_namespace, label_selector=selector).items
    [container] = pod.spec.containers
    assert container.name == "operator"
    assert [(p.name, p.container_port) for p in container.ports] == [("metrics", 8080)]
    assert container.readiness_probe.http_get.path == "/healthz"
    assert container.liveness_probe.http_get.path == "/healthz"


class ChartOperator:
    """`modelfleet run` out-of-cluster with a token of the chart's ServiceAccount, driven
    through every path that talks to the API server; any denial fails within seconds."""

    def __init__(
        self, api: Any, admin: Path, release_namespace: str, namespace: str, tmp_path: Path
    ) -> None:
        core: Any = client.CoreV1Api(api)
        token_request = core.create_namespaced_service_account_token(
            SERVICE_ACCOUNT, release_namespace, {"spec": {"expirationSeconds": 3600}}
        )
        self.kubeconfig = service_account_kubeconfig(
            admin, release_namespace, token_request.status.token, tmp_path / "sa-kubeconfig"
        )
        self.api, self.namespace = api, namespace
        self.env = {"MODELFLEET_NAMESPACE": release_namespace}  # the leader Lease's namespace
        self.log_path = tmp_path / "operator.log"
        self.mds = ModelDeployments(api)

    def exercise_cluster_wide(self) -> None:
        """Create (children applied, status, a Ready Event), autoscale (pods read, a Scaled
        Event), fit nowhere (a Degraded status and Event), change a spec (children re-applied),
        delete; the leader Lease throughout."""
        with self._running():
            self.mds.create(self.namespace, "qwen-7b", SPEC)
            self.mds.create(self.namespace, AUTOSCALED, AUTOSCALED_SPEC)
            self.mds.create(self.namespace, NOWHERE, NOWHERE_SPEC)
            self.mds.create(self.namespace, NO_WEIGHTS, self._download_spec(FAILING, 1))
            self.mds.create(self.namespace, CACHED, self._download_spec(SPEC["model"], 2))
            self._wait(lambda: self._ready("qwen-7b", generation=1), 90, "qwen-7b Ready")
            # The emulator answers for both replicas, idle: the autoscaler scales 2 -> 1.
            self._wait(lambda: self._scaled_to_one(), 90, f"{AUTOSCALED} scaled down to 1")
            self._wait(self._fits_nowhere, 30, f"{NOWHERE}: NoFeasiblePlacement")
            self._wait(self._download_failed, 90, f"{NO_WEIGHTS}: the download failed")
            self._wait(lambda: self._cached_jobs() == 1, 90, f"{CACHED}: cached")
            self.mds.patch_spec(self.namespace, CACHED, {"modelRevision": "v2"})
            self._wait(lambda: self._cached_jobs() == 2, 30, f"{CACHED}: the v2 Job")
            self._wait(lambda: self._cached_jobs() == 1, 90, f"{CACHED}: v1's cache deleted")
            self.mds.patch_spec(self.namespace, "qwen-7b", {"extraArgs": ["--enforce-eager"]})
            self._wait(lambda: self._ready("qwen-7b", generation=2), 90, "the edit reconciled")
            self._delete("qwen-7b", AUTOSCALED, NOWHERE, NO_WEIGHTS, CACHED)

    def exercise_one_namespace(self) -> None:
        """With watchNamespaces the operator watches only those namespaces (kopf lists and
        watches Namespaces to find them): one deployment created, Ready, deleted."""
        with self._running("--namespace", self.namespace):
            self.mds.create(self.namespace, "qwen-7b-watched", SPEC)
            self._wait(lambda: self._ready("qwen-7b-watched", generation=1), 90, "Ready")
            self._delete("qwen-7b-watched")

    @contextmanager
    def _running(self, *args: str) -> Iterator[None]:
        """The operator for one phase; stopped (SIGTERM: it releases the Lease) at the end, so
        every request it made is complete in the audit log."""
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with run_operator(self.kubeconfig, self.log_path, self.env, args) as process:
            try:
                yield
                log = self.log_path.read_text()[start:]
                assert process.poll() is None, "operator exited"
                assert "acquired the leader lease" in log
                assert "Handler 'on_change' succeeded" in log, "this operator never handled it"
            except BaseException:
                print("---- operator log (with the chart's ServiceAccount) ----")
                print(self.log_path.read_text())
                raise
        self._fail_on_denials()

    def _wait(self, check: Callable[[], object], timeout: float, what: str) -> None:
        """Wait for `check`, but stop at the first denial: a missing rule fails in seconds."""
        wait_until(
            lambda: check() or denials(self.log_path.read_text()),
            timeout,
            f"{what} (or a denial) with the chart's RBAC",
        )
        self._fail_on_denials()

    def _fail_on_denials(self) -> None:
        found = denials(self.log_path.read_text())
        if found:
            pytest.fail("the operator was denied:\n" + "\n".join(found), pytrace=False)

    def _ready(self, name: str, generation: int) -> bool:
        status = self.mds.get(self.namespace, name).get("status") or {}
        ready = self.mds.condition(self.namespace, name, "Ready").get("status") == "True"
        return ready and status.get("observedGeneration") == generation

    def _scaled_to_one(self) -> bool:
        status = self.mds.get(self.namespace, AUTOSCALED).get("status") or {}
        events = client.CoreV1Api(self.api).list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={AUTOSCALED},reason=Scaled"
        )
        return status.get("desiredReplicas") == 1 and bool(events.items)

    def _download_spec(self, model: str, volumes: int) -> dict[str, Any]:
        """Volumes for a cache (a no-provisioner class and PersistentVolumes, made with the
        admin's rights) and a cached spec of `model`."""
        storage_class = f"sim-rwx-{secrets.token_hex(3)}"
        client.StorageV1Api(self.api).create_storage_class(
            {
                "metadata": {"name": storage_class},
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "Immediate",
            }
        )
        for index in range(volumes):
            self._volume(storage_class, f"{storage_class}-{index}")
        cache = {"size": "10Gi", "storageClassName": storage_class}
        return {**SPEC, "model": model, "cache": cache}

    def _volume(self, storage_class: str, name: str) -> None:
        client.CoreV1Api(self.api).create_persistent_volume(
            {
                "metadata": {"name": name},
                "spec": {
                    "storageClassName": storage_class,
                    "capacity": {"storage": "10Gi"},
                    "accessModes": ["ReadWriteMany"],
                    "persistentVolumeReclaimPolicy": "Delete",
                    "hostPath": {"path": "/simulated/weights"},
                },
            }
        )

    def _cached_jobs(self) -> int:
        """Download Jobs of CACHED that are not being deleted, 0 until one succeeded."""
        batch: Any = client.BatchV1Api(self.api)
        found = batch.list_namespaced_job(
            self.namespace, label_selector=f"modelfleet.dev/deployment={CACHED}"
        ).items
        live = [j for j in found if not j.metadata.deletion_timestamp]
        return len(live) if any(j.status.succeeded for j in live) else 0

    def _download_failed(self) -> bool:
        status = self.mds.get(self.namespace, NO_WEIGHTS).get("status") or {}
        return (status.get("cache") or {}).get("phase") == "Failed"

    def _fits_nowhere(self) -> bool:
        ready = self.mds.condition(self.namespace, NOWHERE, "Ready")
        return ready.get("reason") == "NoFeasiblePlacement"

    def _delete(self, *names: str) -> None:
        """Delete while the operator runs: the garbage collector takes the children."""
        for name in names:
            self.mds.delete(self.namespace, name)

        def gone() -> bool:
            return not any(self._exists(name) for name in names)

        self._wait(gone, 60, f"{', '.join(names)} deleted")

    def _exists(self, name: str) -> bool:
        try:
            self.mds.get(self.namespace, name)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True


def operator_requests(audit_log: Path | None, release_namespace: str) -> list[AuditEvent]:
    """The chart ServiceAccount's requests in the audit log, oldest first (none without one)."""
    if audit_log is None:
        return []
    user = audit.service_account_user(release_namespace, SERVICE_ACCOUNT)
    return audit.requests(audit.read_events(audit_log, user))


@contextmanager
def _audited(
    audit_log: Path | None, release_namespace: str, rules: list[rbac.Rule]
) -> Iterator[list[AuditEvent]]:
    """Collect the ServiceAccount's requests made inside the block into the yielded list; if the
    block fails (a denial), print how they compare with `rules`: the missing grant, by name."""
    before = {event.audit_id for event in operator_requests(audit_log, release_namespace)}

    def since() -> list[AuditEvent]:
        found = operator_requests(audit_log, release_namespace)
        return [event for event in found if event.audit_id not in before]

    phase: list[AuditEvent] = []
    try:
        yield phase
    except BaseException:
        if audit_log is not None:
            print("---- the chart's RBAC and the calls the API server saw (the phase stopped")
            print("     early: grants it had not reached yet show as excess) ----")
            print(rbac.compare(rbac.calls(since()), rules, EXCUSED).report())
        raise
    phase += since()


def _rendered_rules(helm: Any, release_namespace: str, *values: str) -> list[rbac.Rule]:
    """The RBAC rules `helm template` binds to the chart's ServiceAccount, with these values."""
    text = helm("template", RELEASE, str(CHART), "--namespace", release_namespace, *values)
    return rbac.bound_rules(yaml.safe_load_all(text), release_namespace, SERVICE_ACCOUNT)


def _check_chart_grants_what_was_used(rules: list[rbac.Rule], events: list[AuditEvent]) -> None:
    """(a) every call the operator made is allowed; (b) every grant was used, or is excused."""
    comparison = rbac.compare(rbac.calls(events), rules, EXCUSED)
    print(comparison.report())
    if not comparison.ok:
        pytest.fail(f"the chart's RBAC and the operator's calls differ:\n{comparison.report()}")


# Namespaces are listed and watched either way (namespace budgets read their annotation);
# kopf's watchNamespaces mode finds the namespaces it serves through the same grant.
NAMESPACE_GRANTS: set[rbac.Permission] = {("", "namespaces", "list"), ("", "namespaces", "watch")}


def _check_watch_namespaces_grants(
    default: list[rbac.Rule], watching: list[rbac.Rule], events: list[AuditEvent]
) -> None:
    """watchNamespaces needs no grant beyond the cluster-wide ones; every call of the
    namespaced operator is allowed, and it used the Namespace grants."""
    comparison = rbac.compare(rbac.calls(events), watching, {})
    granted = {p for rule in watching for p in rule.permissions()}
    assert granted == {p for rule in default for p in rule.permissions()}
    assert granted >= NAMESPACE_GRANTS
    unused = sorted(rbac.show(p) for p in NAMESPACE_GRANTS - comparison.used)
    if comparison.denied or unused:
        pytest.fail(
            f"with watchNamespaces: unused Namespace grants {unused}; the calls against the "
            f"rules:\n{comparison.report()}"
        )
