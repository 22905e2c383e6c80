"""The Helm chart on a real control plane: lint, install, and the operator running on its RBAC.

The operator image cannot be built or pulled here, so the RBAC proof runs `modelfleet run`
out-of-cluster with a token of the chart's ServiceAccount: every API call the operator makes goes
through exactly the permissions the chart grants, and any missing one shows up as a 403. The local
API server runs the OwnerReferencesPermissionEnforcement admission plugin (as OpenShift does), so
the children's blockOwnerDeletion needs the chart's `modeldeployments/finalizers` rule too.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.api.types import GROUP, PLURAL
from modelfleet.sim.cluster.build import ensure_helm
from tests.integration.operator_fixtures import ModelDeployments, run_operator, wait_until

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "charts" / "modelfleet"
CRD_NAME = f"{PLURAL}.{GROUP}"
RELEASE = "modelfleet"
SERVICE_ACCOUNT = "modelfleet"  # the chart's fullname for a release named "modelfleet"
SPEC = {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": "NVIDIA-L4", "count": 1}}
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


def service_account_kubeconfig(admin: Path, namespace: str, token: str, path: Path) -> Path:
    """A kubeconfig for the same server and CA as `admin`, authenticating with `token`."""
    config = yaml.safe_load(admin.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": cluster["cluster"]}],
                "users": [{"name": "modelfleet", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "modelfleet",
                        "context": {
                            "cluster": "local",
                            "user": "modelfleet",
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": "modelfleet",
            }
        )
    )
    return path


def test_chart_installs_and_its_rbac_runs_the_operator(
    helm: Any, kubeconfig: Path, api: Any, namespace: str, tmp_path: Path
) -> None:
    core: Any = client.CoreV1Api(api)
    extensions: Any = client.ApiextensionsV1Api(api)
    release_namespace = f"modelfleet-{secrets.token_hex(4)}"
    try:
        crd_existed = bool(extensions.read_custom_resource_definition(CRD_NAME))
    except ApiException as error:
        assert error.status == 404
        crd_existed = False

    try:
        helm(
            "install",
            RELEASE,
            str(CHART),
            "--namespace",
            release_namespace,
            "--create-namespace",
            "--set-json",
            'prices={"NVIDIA-L4": 0.55}',
            "--wait",
            "--timeout",
            "60s",
            kubeconfig=kubeconfig,
        )
        _check_installed(helm, kubeconfig, api, release_namespace, crd_existed)
        _check_operator_runs_on_chart_rbac(api, kubeconfig, release_namespace, namespace, tmp_path)
    finally:
        helm(
            "uninstall", RELEASE, "--namespace", release_namespace, "--wait", kubeconfig=kubeconfig
        )
        core.delete_namespace(release_namespace)


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


def _check_operator_runs_on_chart_rbac(
    api: Any, admin: Path, release_namespace: str, namespace: str, tmp_path: Path
) -> None:
    token_request = client.CoreV1Api(api).create_namespaced_service_account_token(
        SERVICE_ACCOUNT, release_namespace, {"spec": {"expirationSeconds": 3600}}
    )
    kubeconfig = service_account_kubeconfig(
        admin, release_namespace, token_request.status.token, tmp_path / "sa-kubeconfig"
    )
    log_path = tmp_path / "operator.log"
    mds = ModelDeployments(api)
    lease_env = {"MODELFLEET_NAMESPACE": release_namespace}
    with run_operator(kubeconfig, log_path, lease_env) as process:
        try:
            mds.create(namespace, "qwen-7b", SPEC)

            def ready_or_denied() -> bool:
                """Stop at the first denial: a missing rule fails in seconds, naming the call."""
                ready = mds.condition(namespace, "qwen-7b", "Ready").get("status") == "True"
                return ready or bool(denials(log_path.read_text()))

            wait_until(ready_or_denied, 90, "Ready=True (or a denial) with the chart's RBAC")
            log = log_path.read_text()
            assert not denials(log), denials(log)
            assert process.poll() is None, "operator exited"
            # This operator (not another one in the session) did the work.
            assert "Handler 'on_change' succeeded" in log, "the operator never handled it"
            assert "acquired the leader lease" in log
        except BaseException:
            print("---- operator log (with the chart's ServiceAccount) ----")
            print(log_path.read_text())
            raise
