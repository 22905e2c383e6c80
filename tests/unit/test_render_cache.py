"""Rendering the weights cache and model sources: the volume, the download Job, the engine pod's
mounts and arguments, for every source and cache mode."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelfleet.render import cache
from modelfleet.render.children import children, deployment
from modelfleet.render.engines import DOWNLOADER_IMAGE, DOWNLOADER_TOOLS
from tests.unit.factories import model_deployment, placement

SHARED = {"size": "40Gi", "storageClassName": "nfs"}
S3 = {
    "url": "s3://models/qwen-7b",
    "endpoint": "http://minio.storage:9000",
    "region": "eu-west-1",
    "credentialsSecret": {"name": "s3-keys"},
}
TOKEN = {"secretKeyRef": {"name": "hf", "key": "token"}}


def pod_of(**spec: Any) -> dict[str, Any]:
    rendered = deployment(model_deployment(**spec), placement())
    pod: dict[str, Any] = rendered["spec"]["template"]["spec"]
    return pod


def engine_of(**spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = pod_of(**spec)["containers"][0]
    return container


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [o["kind"] for o in objects]


@pytest.mark.parametrize(
    ("spec", "ready", "expected"),
    [
        ({}, True, ["Deployment", "Service", "PodDisruptionBudget"]),
        (
            {"cache": SHARED},
            True,
            ["PersistentVolumeClaim", "Job", "Deployment", "Service", "PodDisruptionBudget"],
        ),
        (
            {"cache": SHARED},
            False,
            ["PersistentVolumeClaim", "Job", "Service", "PodDisruptionBudget"],
        ),
        ({"cache": {"mode": "PerNode"}}, True, ["Deployment", "Service", "PodDisruptionBudget"]),
        (
            {"source": {"pvc": {"claimName": "m"}}},
            True,
            ["Deployment", "Service", "PodDisruptionBudget"],
        ),
        (
            {"source": {"s3": S3}, "cache": SHARED},
            False,
            ["PersistentVolumeClaim", "Job", "Service", "PodDisruptionBudget"],
        ),
    ],
)
def test_children_per_cache_mode(spec: dict[str, Any], ready: bool, expected: list[str]) -> None:
    """A shared cache adds its volume and Job; the Deployment waits for the download."""
    assert kinds(children(model_deployment(**spec), placement(), weights_ready=ready)) == expected


@pytest.mark.parametrize(
    ("spec", "engine", "model_arg", "volume", "mount"),
    [
        ({}, "vllm", "--model=Qwen/Qwen2.5-7B-Instruct", None, None),
        (
            {"cache": SHARED},
            "vllm",
            "--model=/weights",
            {"persistentVolumeClaim": {"readOnly": True}},
            {"mountPath": "/weights", "readOnly": True},
        ),
        (
            {"cache": SHARED},
            "sglang",
            "--model-path=/weights",
            {"persistentVolumeClaim": {"readOnly": True}},
            {"mountPath": "/weights", "readOnly": True},
        ),
        (
            {"cache": {"mode": "PerNode", "nodePath": "/mnt/nvme/"}},
            "vllm",
            "--model=/weights",
            {"hostPath": {"type": "DirectoryOrCreate"}},
            {"mountPath": "/weights", "readOnly": True},
        ),
        (
            {"source": {"pvc": {"claimName": "models", "path": "qwen/7b"}}},
            "vllm",
            "--model=/weights",
            {"persistentVolumeClaim": {"claimName": "models", "readOnly": True}},
            {"mountPath": "/weights", "readOnly": True, "subPath": "qwen/7b"},
        ),
        (
            {"source": {"s3": S3}, "cache": SHARED},
            "vllm",
            "--model=/weights",
            {"persistentVolumeClaim": {"readOnly": True}},
            {"mountPath": "/weights", "readOnly": True},
        ),
    ],
)
def test_the_engine_loads_from_the_read_only_weights(
    spec: dict[str, Any],
    engine: str,
    model_arg: str,
    volume: dict[str, Any] | None,
    mount: dict[str, Any] | None,
) -> None:
    md = model_deployment(engine=engine, **spec)
    pod = pod_of(engine=engine, **spec)
    container = pod["containers"][0]
    assert model_arg in container["args"]
    assert "--served-model-name=Qwen/Qwen2.5-7B-Instruct" in container["args"]
    weights = [v for v in pod["volumes"] if v["name"] == "weights"]
    mounts = [m for m in container["volumeMounts"] if m["name"] == "weights"]
    if volume is None:
        assert weights == [] and mounts == []
        return
    [found] = weights
    for key, value in volume.items():
        assert value.items() <= found[key].items()
    if "persistentVolumeClaim" in volume and "claimName" not in volume["persistentVolumeClaim"]:
        assert found["persistentVolumeClaim"]["claimName"] == cache.weights_name(md)
    if "hostPath" in volume:
        assert found["hostPath"]["path"] == f"/mnt/nvme/{cache.cache_key(md)}"
    assert mounts == [{"name": "weights", **mount}]


@pytest.mark.parametrize(
    ("spec", "revision_arg"),
    [
        ({"modelRevision": "v1.2"}, "--revision=v1.2"),
        ({"modelRevision": "0a1b2c3", "engine": "sglang"}, "--revision=0a1b2c3"),
        ({"modelRevision": "v1.2", "cache": SHARED}, None),  # the Job fetched that revision
        ({}, None),
    ],
)
def test_a_revision_reaches_the_engine_only_when_it_downloads_itself(
    spec: dict[str, Any], revision_arg: str | None
) -> None:
    revisions = [a for a in engine_of(**spec)["args"] if a.startswith("--revision")]
    assert revisions == ([revision_arg] if revision_arg else [])


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ({"modelRevision": "a"}, {"modelRevision": "b"}, False),
        ({}, {"modelRevision": "main"}, True),
        ({"model": "x/one"}, {"model": "x/two"}, False),
        ({"source": {"s3": S3}}, {"source": {"s3": {**S3, "url": "s3://models/other"}}}, False),
        ({"cache": SHARED}, {"cache": {"size": "80Gi"}}, True),  # where, not how big
        ({"replicas": 1}, {"replicas": 5}, True),
    ],
)
def test_the_cache_key_follows_source_model_and_revision(
    first: dict[str, Any], second: dict[str, Any], same: bool
) -> None:
    a = model_deployment(**{"cache": SHARED, **first})
    b = model_deployment(**{"cache": SHARED, **second})
    assert (cache.cache_key(a) == cache.cache_key(b)) is same
    assert (cache.weights_name(a) == cache.weights_name(b)) is same


def test_names_fit_a_label_value_for_the_longest_deployment_name() -> None:
    md = model_deployment(cache=SHARED).model_copy(deep=True)
    md.metadata.name = "a" * 63
    name = cache.weights_name(md)
    assert len(name) <= 63 and name.endswith(cache.cache_key(md))


def test_the_volume_is_read_write_many_of_the_given_size_and_class() -> None:
    md = model_deployment(cache={"size": "0.5Ti", "storageClassName": "nfs"})
    claim = cache.volume_claim(md)
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "512Gi"}},
        "storageClassName": "nfs",
    }
    assert claim["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    no_class = cache.volume_claim(model_deployment(cache={"size": "40Gi"}))
    assert "storageClassName" not in no_class["spec"]


def job_container(**spec: Any) -> dict[str, Any]:
    job = cache.download_job(model_deployment(**spec))
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize(
    ("spec", "tool", "command"),
    [
        (
            {"cache": SHARED, "modelRevision": "v2"},
            DOWNLOADER_TOOLS["huggingFace"],
            [
                "hf",
                "download",
                "Qwen/Qwen2.5-7B-Instruct",
                "--revision",
                "v2",
                "--local-dir",
                "/weights",
            ],
        ),
        (
            {"cache": SHARED},
            DOWNLOADER_TOOLS["huggingFace"],
            [
                "hf",
                "download",
                "Qwen/Qwen2.5-7B-Instruct",
                "--revision",
                "main",
                "--local-dir",
                "/weights",
            ],
        ),
        (
            {"cache": SHARED, "source": {"s3": S3}},
            DOWNLOADER_TOOLS["s3"],
            [
                "aws",
                "s3",
                "sync",
                "s3://models/qwen-7b",
                "/weights",
                "--no-progress",
                "--endpoint-url",
                "http://minio.storage:9000",
            ],
        ),
        (
            {"cache": SHARED, "source": {"s3": {"url": "s3://bkt/p"}}},
            DOWNLOADER_TOOLS["s3"],
            ["aws", "s3", "sync", "s3://bkt/p", "/weights", "--no-progress"],
        ),
    ],
)
def test_the_job_runs_a_real_resumable_download_with_a_pinned_tool(
    spec: dict[str, Any], tool: str, command: list[str]
) -> None:
    container = job_container(**spec)
    assert container["image"] == DOWNLOADER_IMAGE
    assert "@" not in DOWNLOADER_IMAGE and DOWNLOADER_IMAGE.count(".") >= 2  # a pinned release
    assert "==" in tool
    sh, dash_c, script, zero, installed, *argv = container["command"]
    assert (sh, dash_c, zero, installed) == ("sh", "-c", "sh", tool)
    assert "pip install" in script and 'python -c "$MODELFLEET_SCRIPT"' in script
    assert argv == command
    assert container["volumeMounts"] == [{"name": "weights", "mountPath": "/weights"}]
    assert container["ports"][0]["containerPort"] == 9090


@pytest.mark.parametrize(
    ("spec", "secret_env"),
    [
        ({"cache": SHARED}, {}),
        (
            {"cache": SHARED, "huggingFaceToken": TOKEN},
            {"HF_TOKEN": {"name": "hf", "key": "token"}},
        ),
        (
            {"cache": SHARED, "source": {"s3": S3}},
            {
                "AWS_ACCESS_KEY_ID": {"name": "s3-keys", "key": "AWS_ACCESS_KEY_ID"},
                "AWS_SECRET_ACCESS_KEY": {"name": "s3-keys", "key": "AWS_SECRET_ACCESS_KEY"},
            },
        ),
        (
            {
                "cache": SHARED,
                "source": {
                    "s3": {
                        **S3,
                        "credentialsSecret": {
                            "name": "k",
                            "accessKeyIdKey": "id",
                            "secretAccessKeyKey": "secret",
                        },
                    }
                },
            },
            {
                "AWS_ACCESS_KEY_ID": {"name": "k", "key": "id"},
                "AWS_SECRET_ACCESS_KEY": {"name": "k", "key": "secret"},
            },
        ),
    ],
)
def test_credentials_reach_the_download_only_by_reference(
    spec: dict[str, Any], secret_env: dict[str, Any]
) -> None:
    env = job_container(**spec)["env"]
    by_reference = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert by_reference == secret_env
    plain = json.dumps([e for e in env if "valueFrom" not in e])
    assert "token" not in plain.lower().replace("hf_hub", "")
    assert "AWS_SECRET" not in plain and "AWS_ACCESS" not in plain


def test_the_download_pods_are_not_engine_replicas() -> None:
    """The engine pod index selects modelfleet.dev/deployment: the Job's pods never carry it."""
    md = model_deployment(cache=SHARED)
    job = cache.download_job(md)
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert cache.OWNER_LABEL not in pod_labels
    assert pod_labels[cache.WEIGHTS_OF_LABEL] == "qwen"
    assert pod_labels[cache.CACHE_KEY_LABEL] == cache.cache_key(md)
    assert job["metadata"]["labels"][cache.OWNER_LABEL] == "qwen"  # the Job's events refresh it
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2]


def test_per_node_fills_the_node_cache_in_an_init_container() -> None:
    pod = pod_of(cache={"mode": "PerNode"}, huggingFaceToken=TOKEN)
    [init] = pod["initContainers"]
    assert init["name"] == "weights" and init["image"] == DOWNLOADER_IMAGE
    assert init["volumeMounts"] == [{"name": "weights", "mountPath": "/weights"}]  # writable
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": TOKEN["secretKeyRef"]}} in init["env"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "weights"]
    assert volume["hostPath"]["path"].startswith("/var/lib/modelfleet/weights/")


@pytest.mark.parametrize(
    "spec",
    [{}, {"cache": SHARED}, {"source": {"pvc": {"claimName": "m"}}}],
)
def test_no_init_container_unless_per_node(spec: dict[str, Any]) -> None:
    assert "initContainers" not in pod_of(**spec)


def cached_object(kind: str, key: str, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"{kind}-{key}", "labels": {cache.CACHE_KEY_LABEL: key}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"kind": kind, "metadata": meta}


@pytest.mark.parametrize(
    ("spec", "ready", "expected"),
    [
        # the current revision is downloading: keep the old one (its replicas serve)
        ({"cache": SHARED, "modelRevision": "v2"}, False, []),
        # cached: the other revision's Job and volume go; the current stays
        ({"cache": SHARED, "modelRevision": "v2"}, True, ["Job-old", "PersistentVolumeClaim-old"]),
        # no shared cache any more: every cache object goes at once
        ({}, True, ["Job-old", "PersistentVolumeClaim-old", "Job-current"]),
        (
            {"cache": {"mode": "PerNode"}},
            True,
            ["Job-old", "PersistentVolumeClaim-old", "Job-current"],
        ),
    ],
)
def test_superseded_caches_are_deleted_once_the_new_one_is_ready(
    spec: dict[str, Any], ready: bool, expected: list[str]
) -> None:
    md = model_deployment(**spec)
    current = cache.cache_key(model_deployment(cache=SHARED, modelRevision="v2"))
    live = [
        cached_object("Job", "old"),
        cached_object("PersistentVolumeClaim", "old"),
        cached_object("Job", current),
        cached_object("PersistentVolumeClaim", "gone", deleting=True),
    ]
    found = [o["metadata"]["name"] for o in cache.superseded(md, live, ready)]
    assert found == [name.replace("current", current) for name in expected]
