"""What a platform team installs: the chart's values schema, the optional NetworkPolicy,
manifests/install.yaml in sync with the chart, and the documented CRD upgrade (Helm never
upgrades crds/) applied over an older CRD on the local control plane with objects in it."""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.api.types import GROUP, PLURAL, VERSION
from modelfleet.dev import manifests
from modelfleet.dev.cluster.build import ensure_binaries, ensure_helm
from modelfleet.render.children import MANAGED_BY
from modelfleet.render.download import PROGRESS_PORT
from modelfleet.render.engines import ENGINE_PORT
from tests.integration.operator_fixtures import ModelDeployments, install_crd, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelfleet"
CRD_FILE = ROOT / "crds" / "modeldeployments.modelfleet.dev.yaml"
OLD_CRD = ROOT / "tests" / "fixtures" / "crds" / "modeldeployments-95b32ae.yaml"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory, kubeconfig: Path) -> Iterator[Any]:
    """`helm ARGS` -> CompletedProcess, against the test cluster; its config and cache stay in
    a temp dir."""
    binary = ensure_helm()
    home = tmp_path_factory.mktemp("helm")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "KUBECONFIG": str(kubeconfig)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), *args], env=env, capture_output=True, text=True, timeout=120
        )

    yield run


def template(helm: Any, *values: str) -> list[dict[str, Any]]:
    done = helm("template", "modelfleet", str(CHART), "--namespace", "ops", *values)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_the_default_values_pass_the_schema(helm: Any) -> None:
    assert {o["kind"] for o in template(helm)} >= {"Deployment", "ClusterRole", "ServiceAccount"}
    lint = helm("lint", "--strict", str(CHART))
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (["--set", "replicas=two"], "at '/replicas': got string, want integer"),
        (["--set", "replica=2"], "additional properties 'replica' not allowed"),
        (["--set", "metricsPort=70000"], "at '/metricsPort': maximum"),
        (["--set", "image.pullPolicy=Sometimes"], "at '/image/pullPolicy': value must be one of"),
        (["--set", "resyncSeconds=0"], "at '/resyncSeconds': minimum"),
        # --set makes strings: a price must be a number (values.yaml says: use --set-json).
        (["--set", "prices.NVIDIA-L4=0.55"], "at '/prices/NVIDIA-L4': got string, want number"),
        (["--set-json", 'prices={"NVIDIA-L4": {"ondemand": 1}}'], "'ondemand' not allowed"),
        (["--set", "watchNamespaces={Team_A}"], "at '/watchNamespaces/0'"),
        (["--set", "metrics.serviceMonitor.interval=30"], "/metrics/serviceMonitor/interval"),
        (["--set", "networkPolicy.enable=true"], "'enable' not allowed"),
    ],
)
def test_bad_values_are_refused_naming_the_field(helm: Any, values: list[str], words: str) -> None:
    for command in ("template", "install"):
        # A real `helm install` on the test cluster: refused before it creates anything.
        done = helm(command, "modelfleet", str(CHART), "--namespace", "default", *values)
        assert done.returncode != 0, f"helm {command} accepted {values}"
        assert words in done.stderr, done.stderr


def test_the_network_policy_is_off_by_default_and_opens_the_engine_port(helm: Any) -> None:
    assert not [o for o in template(helm) if o["kind"] == "NetworkPolicy"]
    refused = helm("template", "m", str(CHART), "--set", "networkPolicy.enabled=true")
    assert refused.returncode != 0
    assert "networkPolicy.enabled needs networkPolicy.engineNamespaces" in refused.stderr

    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    objects = template(
        helm,
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "watchNamespaces={team-a,team-b}",
        "--set-json",
        f"networkPolicy.prometheus={json.dumps([peer])}",
    )
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    engines = {
        p["metadata"]["namespace"]: p
        for p in policies
        if p["metadata"]["name"].endswith("-engines")
    }
    assert set(engines) == {"team-a", "team-b"}
    operator_pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]
    for policy in engines.values():
        spec = policy["spec"]
        # Selects exactly what the operator renders on engine pods.
        assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": MANAGED_BY}}
        [rule] = spec["ingress"]
        assert rule["ports"] == [
            {"port": ENGINE_PORT, "protocol": "TCP"},
            {"port": PROGRESS_PORT, "protocol": "TCP"},  # weights download progress
        ]
        operator_peer, prometheus, same_namespace = rule["from"]
        assert operator_peer["namespaceSelector"] == {
            "matchLabels": {"kubernetes.io/metadata.name": "ops"}
        }
        selects = operator_peer["podSelector"]["matchLabels"]
        assert selects.items() <= operator_pod["metadata"]["labels"].items()
        assert prometheus == peer
        assert same_namespace == {"podSelector": {}}
    [metrics] = [p for p in policies if p["metadata"]["name"].endswith("-metrics")]
    assert metrics["metadata"]["namespace"] == "ops"
    assert metrics["spec"]["ingress"] == [
        {"from": [peer], "ports": [{"port": 8080, "protocol": "TCP"}]}
    ]


def test_install_yaml_is_the_chart_rendered() -> None:
    expected = manifests.render(ensure_helm())
    actual = (ROOT / "manifests" / "install.yaml").read_text()
    assert actual == expected, "manifests/install.yaml is stale: run `make manifests`"
    docs = [d for d in yaml.safe_load_all(actual) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds[:2] == ["Namespace", "CustomResourceDefinition"]
    crd = next(d for d in docs if d["kind"] == "CustomResourceDefinition")
    assert crd == yaml.safe_load(CRD_FILE.read_text())
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == manifests.NAMESPACE, doc["metadata"]


CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}


def kubectl(kubeconfig: Path, *args: str) -> str:
    done = subprocess.run(
        [str(ensure_binaries().kubectl), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def established(api: Any, generation_after: int) -> bool:
    crd: Any = client.ApiextensionsV1Api(api).read_custom_resource_definition(f"{PLURAL}.{GROUP}")
    conditions = {c.type: c.status for c in crd.status.conditions or []}
    return crd.metadata.generation > generation_after and conditions.get("Established") == "True"


def test_the_documented_crd_upgrade_keeps_existing_objects_valid(
    api: Any, kubeconfig: Path, namespace: str, mds: ModelDeployments
) -> None:
    """docs/operations.md, Upgrading: `kubectl apply --server-side --force-conflicts -f crds/`
    over an older CRD (as Helm installed it, another field manager) with objects in it."""
    extensions: Any = client.ApiextensionsV1Api(api)
    name = f"{PLURAL}.{GROUP}"
    try:
        old = yaml.safe_load(OLD_CRD.read_text())
        current = extensions.read_custom_resource_definition(name)
        old["metadata"]["resourceVersion"] = current.metadata.resource_version
        extensions.replace_custom_resource_definition(name, old)
        before = extensions.read_custom_resource_definition(name).metadata.generation
        time.sleep(1)  # the API server serves the old schema once it has re-read the CRD
        plain = {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": "NVIDIA-L4", "count": 1}}
        scaled = {**plain, "replicas": 1, "minReplicas": 1, "maxReplicas": 2}
        # Objects made under the old CRD. The running (new) operator cannot write their status
        # meanwhile: server-side apply refuses status fields the old schema lacks (status.cost),
        # which is why the CRD goes first on upgrade (docs/operations.md).
        mds.create(namespace, "plain", plain)
        mds.create(namespace, "scaled", scaled)

        kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
        wait_until(lambda: established(api, before), 30, "the new CRD established")
        served = extensions.read_custom_resource_definition(name)
        assert (
            "budget"
            in served.spec.versions[0].schema.open_apiv3_schema.properties["spec"].properties
        )

        for md in ("plain", "scaled"):
            # Valid under the new schema and its CEL rules: a full update of the unchanged
            # object is accepted (retried when the operator wrote in between), and so is an
            # edit using a field the old CRD lacked.
            def updated(md: str = md) -> bool:
                unchanged = copy.deepcopy(mds.get(namespace, md))
                try:
                    mds.custom.replace_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, md, unchanged
                    )
                except ApiException as error:
                    if error.status == 409:
                        return False
                    raise
                return True

            wait_until(updated, 30, f"an unchanged update of {md} accepted")
            mds.patch_spec(namespace, md, {"budget": {"maxHourly": 10.0}})

            def ready(md: str = md) -> bool:
                obj = mds.get(namespace, md)
                status = obj.get("status") or {}
                conditions = {c["type"]: c for c in status.get("conditions") or []}
                return (
                    status.get("observedGeneration") == obj["metadata"]["generation"]
                    and conditions.get("Ready", {}).get("status") == "True"
                    and "BudgetLimited" in conditions
                )

            wait_until(ready, 60, f"{md} Ready on the new CRD with its budget")
    finally:
        install_crd(api)
