"""The weights cache on a real control plane (docs/cache.md).

What is real here: the API server, the scheduler, the Job and PersistentVolume controllers, the
operator. What is simulated: kwok plays the download pod (stages weights-download-complete and
weights-download-fail: Running, then Succeeded after 12 s, or Failed with exit 2 for the model
id simulated/download-fails) and a PerNode engine pod's init container (stages weights-init-*:
Pending with the pod's IP for 12 s, or exit 2 for that model id), the volumes are pre-made
PersistentVolumes of a no-provisioner StorageClass that the PV controller binds (nothing is
mounted: kwok runs no containers), and the progress endpoint of a download pod or init
container is served by this test on the pod's IP (the real one is the download script's,
tests/unit/test_download_script.py).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.integration.operator_fixtures import ModelDeployments, OperatorProcess, wait_until
from tests.integration.test_pod_hygiene import counter

pytestmark = pytest.mark.integration

GIB = 2**30
SPEC = {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": "NVIDIA-L4", "count": 1}}
WEIGHTS_OF = "modelfleet.dev/weights-of"


@pytest.fixture
def storage_class(api: Any) -> Iterator[str]:
    """A StorageClass without a provisioner: claims bind to the PersistentVolumes a test makes."""
    name = f"sim-rwx-{secrets.token_hex(3)}"
    storage: Any = client.StorageV1Api(api)
    storage.create_storage_class(
        {
            "metadata": {"name": name},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate",
        }
    )
    core: Any = client.CoreV1Api(api)
    yield name
    for volume in core.list_persistent_volume().items:
        if volume.spec.storage_class_name == name:
            core.delete_persistent_volume(volume.metadata.name)
    storage.delete_storage_class(name)


def make_volumes(api: Any, storage_class: str, count: int) -> None:
    core: Any = client.CoreV1Api(api)
    for _ in range(count):
        core.create_persistent_volume(
            {
                "metadata": {"name": f"{storage_class}-{secrets.token_hex(3)}"},
                "spec": {
                    "storageClassName": storage_class,
                    "capacity": {"storage": "100Gi"},
                    "accessModes": ["ReadWriteMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": "/simulated/weights"},
                },
            }
        )


def cache_of(mds: ModelDeployments, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = (mds.get(namespace, name).get("status") or {}).get("cache") or {}
    return found


def jobs(api: Any, namespace: str) -> list[Any]:
    return list(client.BatchV1Api(api).list_namespaced_job(namespace).items)


def pods(api: Any, namespace: str, selector: str) -> list[Any]:
    core: Any = client.CoreV1Api(api)
    return list(core.list_namespaced_pod(namespace, label_selector=selector).items)


def engine_pods(api: Any, namespace: str, name: str) -> list[Any]:
    return pods(api, namespace, f"modelfleet.dev/deployment={name}")


def claims_of(pod: Any) -> set[tuple[str, bool]]:
    """(claim, read-only) of each PVC volume, and every weights mount must be read-only."""
    mounts = [m for c in pod.spec.containers for m in c.volume_mounts or [] if m.name == "weights"]
    assert mounts and all(m.read_only for m in mounts)
    return {
        (v.persistent_volume_claim.claim_name, bool(v.persistent_volume_claim.read_only))
        for v in pod.spec.volumes or []
        if v.persistent_volume_claim is not None
    }


def ready(mds: ModelDeployments, namespace: str, name: str) -> bool:
    return mds.condition(namespace, name, "Ready").get("status") == "True"


@contextmanager
def progress_server(ip: str, payload: dict[str, Any]) -> Iterator[None]:
    """Stands in for the download script's /progress on the download pod's IP."""

    class Progress(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer((ip, 9090), Progress)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def running_download_ip(api: Any, namespace: str, name: str) -> str | None:
    for pod in pods(api, namespace, f"{WEIGHTS_OF}={name}"):
        if pod.status.phase == "Running" and pod.status.pod_ip:
            return str(pod.status.pod_ip)
    return None


def test_one_download_serves_every_replica_and_status_shows_its_progress(
    api: Any, namespace: str, mds: ModelDeployments, storage_class: str
) -> None:
    make_volumes(api, storage_class, 1)
    spec = {**SPEC, "replicas": 2, "cache": {"size": "20Gi", "storageClassName": storage_class}}
    mds.create(namespace, "cached", spec)

    # While the weights download: no engine pod, and status says why, with the numbers.
    ip = wait_until(lambda: running_download_ip(api, namespace, "cached"), 60, "download pod")
    with progress_server(ip, {"bytes": 5 * GIB, "totalBytes": 20 * GIB, "done": False}):
        downloading = wait_until(
            lambda: (c := cache_of(mds, namespace, "cached")).get("percent") == 25 and c,
            10,
            "status.cache showing 25%",
        )
        assert downloading["phase"] == "Downloading"
        assert (downloading["bytes"], downloading["totalBytes"]) == (5 * GIB, 20 * GIB)
        assert "5.0 GiB of 20.0 GiB" in downloading["message"]
        assert mds.condition(namespace, "cached", "Ready")["reason"] == "DownloadingWeights"
        assert engine_pods(api, namespace, "cached") == []

        # kwok ends the download pod (Succeeded); the operator then creates the replicas.
        cached = wait_until(
            lambda: (c := cache_of(mds, namespace, "cached")).get("phase") == "Cached" and c,
            60,
            "status.cache Cached",
        )
    assert (cached["bytes"], cached["totalBytes"], cached["percent"]) == (20 * GIB, 20 * GIB, 100)
    wait_until(lambda: ready(mds, namespace, "cached"), 90, "Ready with 2 replicas")
    volume = cached["volume"]
    assert all(claims_of(p) == {(volume, True)} for p in engine_pods(api, namespace, "cached"))

    # Later replicas mount the same volume; the download ran once.
    mds.patch_spec(namespace, "cached", {"replicas": 4})
    wait_until(
        lambda: len([p for p in engine_pods(api, namespace, "cached") if p.status.pod_ip]) == 4,
        90,
        "4 running replicas",
    )
    assert all(claims_of(p) == {(volume, True)} for p in engine_pods(api, namespace, "cached"))
    [job] = jobs(api, namespace)
    assert (job.metadata.name, job.status.succeeded) == (volume, 1)
    [download] = pods(api, namespace, f"{WEIGHTS_OF}=cached")  # one pod, for 4 replicas
    assert download.status.phase == "Succeeded"
    assert cache_of(mds, namespace, "cached")["phase"] == "Cached"


def test_a_new_revision_gets_a_new_cache_and_never_the_old_weights(
    api: Any, namespace: str, mds: ModelDeployments, storage_class: str
) -> None:
    make_volumes(api, storage_class, 2)
    cache = {"size": "20Gi", "storageClassName": storage_class}
    mds.create(namespace, "rev", {**SPEC, "modelRevision": "v1", "cache": cache})
    first = wait_until(
        lambda: (c := cache_of(mds, namespace, "rev")).get("phase") == "Cached" and c,
        90,
        "revision v1 cached",
    )
    wait_until(lambda: ready(mds, namespace, "rev"), 90, "Ready on v1")

    mds.patch_spec(namespace, "rev", {"modelRevision": "v2"})
    downloading = wait_until(
        lambda: (c := cache_of(mds, namespace, "rev")).get("revision") == "v2" and c,
        30,
        "status.cache on v2",
    )
    assert downloading["key"] != first["key"] and downloading["volume"] != first["volume"]
    assert downloading["phase"] in ("Pending", "Downloading")
    # Until v2 is cached, the replica keeps serving v1 from v1's volume: no pod mounts v2's
    # half-filled volume.
    for pod in engine_pods(api, namespace, "rev"):
        assert claims_of(pod) == {(first["volume"], True)}

    second = wait_until(
        lambda: (c := cache_of(mds, namespace, "rev")).get("phase") == "Cached" and c,
        90,
        "revision v2 cached",
    )

    def on_v2_only() -> bool:
        current = [
            p for p in engine_pods(api, namespace, "rev") if not p.metadata.deletion_timestamp
        ]
        return bool(current) and all(claims_of(p) == {(second["volume"], True)} for p in current)

    wait_until(on_v2_only, 90, "the replicas on v2's volume only")
    wait_until(lambda: ready(mds, namespace, "rev"), 90, "Ready on v2")

    # v1's cache is deleted: its Job at once, its volume once no pod mounts it any more.
    def claims() -> list[str]:
        core: Any = client.CoreV1Api(api)
        return [
            c.metadata.name for c in core.list_namespaced_persistent_volume_claim(namespace).items
        ]

    wait_until(lambda: claims() == [second["volume"]], 60, "v1's volume deleted")
    assert [j.metadata.name for j in jobs(api, namespace)] == [second["volume"]]


def test_a_failed_download_says_why_and_starts_no_replica(
    api: Any,
    namespace: str,
    mds: ModelDeployments,
    storage_class: str,
    operator_process: OperatorProcess,
) -> None:
    make_volumes(api, storage_class, 1)
    spec = {
        **SPEC,
        "model": "simulated/download-fails",
        "cache": {"size": "20Gi", "storageClassName": storage_class},
    }
    mds.create(namespace, "missing", spec)
    failed = wait_until(
        lambda: (c := cache_of(mds, namespace, "missing")).get("phase") == "Failed" and c,
        90,
        "status.cache Failed",
    )
    assert "Repository Not Found" in failed["message"]
    degraded = mds.condition(namespace, "missing", "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "DownloadFailed")
    assert "Repository Not Found" in degraded["message"]
    assert mds.condition(namespace, "missing", "Ready")["reason"] == "DownloadFailed"
    assert engine_pods(api, namespace, "missing") == []
    [job] = jobs(api, namespace)
    assert job.status.failed == 1  # exit 2: the podFailurePolicy failed it without retries

    # A failed status is written once, and the cache's children applied once, not on every
    # resync.
    def applies() -> float:
        return sum(
            counter(operator_process, "modelfleet_child_applies_total", {"kind": kind})
            for kind in ("PersistentVolumeClaim", "Job")
        )

    def timer_runs() -> float:
        labels = {"trigger": "timer", "result": "ok"}
        return counter(operator_process, "modelfleet_reconciles_total", labels)

    before = mds.get(namespace, "missing")["metadata"]["resourceVersion"]
    applied, seen = applies(), timer_runs()
    wait_until(lambda: timer_runs() >= seen + 3, 60, "three more periodic reconciles")
    assert applies() == applied, "a resync re-applied the volume or the Job"
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector="involvedObject.name=missing,reason=DownloadFailed"
    )
    assert len(events.items) == 1
    assert mds.get(namespace, "missing")["metadata"]["resourceVersion"] == before


def test_a_pvc_source_is_mounted_read_only_without_a_download(
    api: Any, namespace: str, mds: ModelDeployments, storage_class: str
) -> None:
    make_volumes(api, storage_class, 1)
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "models"},
            "spec": {
                "storageClassName": storage_class,
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "20Gi"}},
            },
        },
    )
    spec = {**SPEC, "replicas": 2, "source": {"pvc": {"claimName": "models", "path": "qwen/7b"}}}
    mds.create(namespace, "from-pvc", spec)
    wait_until(lambda: ready(mds, namespace, "from-pvc"), 90, "Ready from the claim")
    for pod in engine_pods(api, namespace, "from-pvc"):
        assert claims_of(pod) == {("models", True)}
        [mount] = [m for m in pod.spec.containers[0].volume_mounts if m.name == "weights"]
        assert (mount.mount_path, mount.sub_path) == ("/weights", "qwen/7b")
        assert "--model=/weights" in pod.spec.containers[0].args
    status = cache_of(mds, namespace, "from-pvc")
    assert (status["phase"], status["volume"]) == ("Mounted", "models")
    assert jobs(api, namespace) == []


def per_node_downloads(api: Any, namespace: str, name: str) -> dict[str, str] | None:
    """Node -> pod IP of each engine pod in its weights init container (Pending with an IP)."""
    found = {
        str(p.spec.node_name): str(p.status.pod_ip)
        for p in engine_pods(api, namespace, name)
        if p.status.phase == "Pending" and p.status.pod_ip
    }
    return found or None


def test_a_per_node_cache_shows_each_nodes_download_then_cached(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    """No Job, no claim: each engine pod's init container downloads into its node's directory
    for this revision (kwok keeps it running for 12 s with the pod's IP), status.cache shows
    the nodes and the slowest one's progress, then Cached; the engine mounts it read-only."""
    # 4 GPUs a replica: each replica fills a whole L4 node, so the 2 replicas are on 2 nodes
    gpu = {"product": "NVIDIA-L4", "count": 4}
    spec = {**SPEC, "gpu": gpu, "replicas": 2, "modelRevision": "v1", "cache": {"mode": "PerNode"}}
    mds.create(namespace, "per-node", spec)
    downloads = wait_until(
        lambda: (d := per_node_downloads(api, namespace, "per-node")) and len(d) == 2 and d,
        60,
        "2 engine pods in their weights init container on 2 nodes",
    )
    fast, slow = sorted(downloads)
    with (
        progress_server(downloads[fast], {"bytes": 10 * GIB, "totalBytes": 20 * GIB}),
        progress_server(downloads[slow], {"bytes": 5 * GIB, "totalBytes": 20 * GIB}),
    ):
        downloading = wait_until(
            lambda: (c := cache_of(mds, namespace, "per-node")).get("percent") == 25 and c,
            10,
            "status.cache showing the slowest node at 25%",
        )
        assert downloading["phase"] == "Downloading"
        assert downloading["nodes"] == {"cached": 0, "downloading": 2, "failed": 0}
        assert (downloading["bytes"], downloading["totalBytes"]) == (5 * GIB, 20 * GIB)
        assert (
            f"0 of 2 nodes cached; slowest node {slow}: downloaded 5.0 GiB of 20.0 GiB"
            == (downloading["message"])
        )
        progressing = mds.condition(namespace, "per-node", "Progressing")
        assert (progressing["status"], progressing["reason"]) == ("True", "DownloadingWeights")

        # kwok ends both init containers; the engines start on the filled nodes.
        cached = wait_until(
            lambda: (c := cache_of(mds, namespace, "per-node")).get("phase") == "Cached" and c,
            60,
            "status.cache Cached",
        )
    assert cached["nodes"] == {"cached": 2, "downloading": 0, "failed": 0}
    assert (cached["bytes"], cached["totalBytes"], cached["percent"]) == (20 * GIB, 20 * GIB, 100)
    assert cached["revision"] == "v1"
    wait_until(lambda: ready(mds, namespace, "per-node"), 90, "Ready")
    for pod in engine_pods(api, namespace, "per-node"):
        assert pod.metadata.labels["modelfleet.dev/cache-key"] == cached["key"]
        [init] = pod.spec.init_containers
        assert init.name == "weights" and init.command[-7:-5] == ["hf", "download"]
        [volume] = [v for v in pod.spec.volumes if v.name == "weights"]
        assert volume.host_path.path == f"/var/lib/modelfleet/weights/{cached['key']}"
        [mount] = [m for m in pod.spec.containers[0].volume_mounts if m.name == "weights"]
        assert mount.read_only
    assert jobs(api, namespace) == []
    core: Any = client.CoreV1Api(api)
    assert core.list_namespaced_persistent_volume_claim(namespace).items == []


def test_a_failed_per_node_download_says_why_once(
    api: Any, namespace: str, mds: ModelDeployments, operator_process: OperatorProcess
) -> None:
    """The init container exits 2 (kwok: the Hub's 404 for simulated/download-fails) and waits
    in CrashLoopBackOff: status.cache is Failed with its termination message, Degraded says
    DownloadFailed with one Event, and a resync writes nothing more."""
    spec = {**SPEC, "model": "simulated/download-fails", "cache": {"mode": "PerNode"}}
    mds.create(namespace, "per-node-missing", spec)
    failed = wait_until(
        lambda: (c := cache_of(mds, namespace, "per-node-missing")).get("phase") == "Failed" and c,
        90,
        "status.cache Failed",
    )
    assert failed["nodes"] == {"cached": 0, "downloading": 0, "failed": 1}
    [pod] = engine_pods(api, namespace, "per-node-missing")
    assert failed["message"].startswith(f"download failed on node {pod.spec.node_name}: hf exited")
    assert "Repository Not Found" in failed["message"]
    degraded = mds.condition(namespace, "per-node-missing", "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "DownloadFailed")
    assert "Repository Not Found" in degraded["message"]

    def timer_runs() -> float:
        labels = {"trigger": "timer", "result": "ok"}
        return counter(operator_process, "modelfleet_reconciles_total", labels)

    before = mds.get(namespace, "per-node-missing")["metadata"]["resourceVersion"]
    seen = timer_runs()
    wait_until(lambda: timer_runs() >= seen + 3, 60, "three more periodic reconciles")
    assert mds.get(namespace, "per-node-missing")["metadata"]["resourceVersion"] == before
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector="involvedObject.name=per-node-missing,reason=DownloadFailed"
    )
    assert len(events.items) == 1


def test_the_download_job_takes_the_token_by_reference_only(
    api: Any, namespace: str, mds: ModelDeployments, storage_class: str, operator: Path
) -> None:
    """The download Job, its pod and its claim hold the token only as a secretKeyRef: no object
    the operator wrote for the cache, and no line of its log, holds it, plain or base64."""
    token = f"hf_{secrets.token_hex(16)}"
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "hf"}, "stringData": {"token": token}}
    )
    make_volumes(api, storage_class, 1)
    spec = {
        **SPEC,
        "cache": {"size": "20Gi", "storageClassName": storage_class},
        "huggingFaceToken": {"secretKeyRef": {"name": "hf", "key": "token"}},
    }
    mds.create(namespace, "gated-cache", spec)
    wait_until(lambda: ready(mds, namespace, "gated-cache"), 120, "Ready after the download")

    [job] = jobs(api, namespace)
    env = {e.name: e for c in job.spec.template.spec.containers for e in c.env or []}
    assert env["HF_TOKEN"].value is None
    ref = env["HF_TOKEN"].value_from.secret_key_ref
    assert (ref.name, ref.key) == ("hf", "token")
    written = {
        "Job": job,
        "download pods": pods(api, namespace, f"{WEIGHTS_OF}=gated-cache"),
        "claims": core.list_namespaced_persistent_volume_claim(namespace),
        "engine pods": engine_pods(api, namespace, "gated-cache"),
        "ModelDeployment": mds.get(namespace, "gated-cache"),
        "Events": core.list_namespaced_event(namespace),
    }
    encoded = base64.b64encode(token.encode()).decode()
    for kind, obj in written.items():
        text = json.dumps(api.sanitize_for_serialization(obj))
        assert token not in text and encoded not in text, f"the token is in the {kind}"
    log = operator.read_text()
    assert token not in log and encoded not in log
