"""The weights cache and model sources as Kubernetes objects: pure builders.

- Shared cache: a ReadWriteMany PersistentVolumeClaim per model revision (the name carries the
  cache key, a digest of source, model and revision) and a download Job that fills it; engine
  pods mount it read-only at /weights once the Job has succeeded.
- PerNode cache: a hostPath directory per cache key under cache.nodePath, filled by an init
  container of the engine pod (the same download program); a warm node skips the download.
- PVC source: the user's claim, mounted read-only at /weights (optionally a sub-path).
- No cache, Hugging Face source: the engine downloads the model itself, as before.
Credentials (HF token, S3 keys) reach the download container as secretKeyRef env only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelfleet.api.cache import ModelSource
from modelfleet.api.pod import canonical_quantity
from modelfleet.api.types import API_VERSION, KIND, ModelDeployment
from modelfleet.render.download import DOWNLOAD_SCRIPT, PROGRESS_PORT
from modelfleet.render.engines import DOWNLOADER_IMAGE, DOWNLOADER_TOOLS

WEIGHTS_DIR = "/weights"
WEIGHTS_VOLUME = "weights"
OWNER_LABEL = "modelfleet.dev/deployment"  # as render.children (which imports this module)
MANAGED_BY = "modelfleet"
# Download pods carry these, never OWNER_LABEL: they are not engine replicas.
WEIGHTS_OF_LABEL = "modelfleet.dev/weights-of"
CACHE_KEY_LABEL = "modelfleet.dev/cache-key"
COMPONENT = "weights-download"
# PerNode: the engine pod's init container that fills the node's directory.
PER_NODE_CONTAINER = "weights"
DEFAULT_REVISION = "main"
# Retries of the download pod (each resumes); then status.cache says Failed with the reason.
DOWNLOAD_BACKOFF_LIMIT = 4
PERMANENT_EXIT_CODE = 2
DOWNLOAD_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"memory": "4Gi"},
}


def source_of(md: ModelDeployment) -> ModelSource:
    return md.spec.source or ModelSource()


def revision(md: ModelDeployment) -> str:
    return md.spec.model_revision or DEFAULT_REVISION


def cache_key(md: ModelDeployment) -> str:
    """Digest of what the weights are: where from, which model, which revision (10 hex)."""
    source = source_of(md)
    what: dict[str, Any] = {"source": source.kind, "revision": revision(md)}
    if source.s3 is not None:
        what |= {"url": source.s3.url, "endpoint": source.s3.endpoint}
    elif source.pvc is not None:
        what |= {"claim": source.pvc.claim_name, "path": source.pvc.path}
    else:
        what |= {"model": md.spec.model}
    text = json.dumps(what, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def weights_name(md: ModelDeployment) -> str:
    """Name of the volume and the Job of this revision: at most 63 characters (a Job's name is a
    label value of its pods)."""
    return f"{md.metadata.name[:42].rstrip('-')}-weights-{cache_key(md)}"


def shared(md: ModelDeployment) -> bool:
    """A shared volume filled by a download Job."""
    return md.spec.cache is not None and md.spec.cache.mode == "Shared"


def per_node(md: ModelDeployment) -> bool:
    return md.spec.cache is not None and md.spec.cache.mode == "PerNode"


def model_path(md: ModelDeployment) -> str | None:
    """Where the engine loads the weights from: /weights, or None (the engine downloads)."""
    if md.spec.cache is not None or source_of(md).pvc is not None:
        return WEIGHTS_DIR
    return None


def _owner(md: ModelDeployment) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": md.metadata.name,
            "uid": md.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def _labels(md: ModelDeployment) -> dict[str, str]:
    return {
        OWNER_LABEL: md.metadata.name,
        "app.kubernetes.io/name": md.metadata.name,
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        CACHE_KEY_LABEL: cache_key(md),
    }


def cache_children(md: ModelDeployment) -> list[dict[str, Any]]:
    """The shared cache's volume and download Job, in apply order ([] without a shared cache)."""
    if not shared(md):
        return []
    return [volume_claim(md), download_job(md)]


def volume_claim(md: ModelDeployment) -> dict[str, Any]:
    cache = md.spec.cache
    assert cache is not None and cache.size is not None
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": canonical_quantity(cache.size)}},
    }
    if cache.storage_class_name:
        spec["storageClassName"] = cache.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": weights_name(md),
            "namespace": md.metadata.namespace,
            "labels": _labels(md),
            "ownerReferences": _owner(md),
        },
        "spec": spec,
    }


def download_job(md: ModelDeployment) -> dict[str, Any]:
    """Fills the shared volume once; its pods are labelled weights-of, not as engine replicas."""
    name = weights_name(md)
    pod_labels = {
        WEIGHTS_OF_LABEL: md.metadata.name,
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        CACHE_KEY_LABEL: cache_key(md),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": md.metadata.namespace,
            "labels": _labels(md),
            "ownerReferences": _owner(md),
        },
        "spec": {
            "backoffLimit": DOWNLOAD_BACKOFF_LIMIT,
            # Exit 2 is the download script's "no retry can fix this" (missing repository,
            # refused credentials): fail now, with its reason, instead of backing off 5 times.
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "download",
                            "operator": "In",
                            "values": [PERMANENT_EXIT_CODE],
                        },
                    }
                ]
            },
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [download_container(md, "download")],
                    "volumes": [
                        {
                            "name": WEIGHTS_VOLUME,
                            "persistentVolumeClaim": {"claimName": name},
                        }
                    ],
                },
            },
        },
    }


def superseded(
    md: ModelDeployment, live: list[dict[str, Any]], weights_ready: bool
) -> list[dict[str, Any]]:
    """The cache objects (Jobs, volumes) of other revisions or sources, to delete: once this
    revision's weights are ready, or at once when no shared cache is used any more.

    Safe while old replicas still run: a volume in use stays (Terminating) until its last pod
    is gone (the API server's PVC protection). Objects already being deleted are left alone.
    """
    if shared(md) and not weights_ready:
        return []
    key = cache_key(md) if shared(md) else None
    return [
        obj
        for obj in live
        if ((obj.get("metadata") or {}).get("labels") or {}).get(CACHE_KEY_LABEL) != key
        and not (obj.get("metadata") or {}).get("deletionTimestamp")
    ]


def download_command(md: ModelDeployment) -> list[str]:
    """The real download command, resumable: `hf download` keeps partial files under the local
    dir and continues them; `aws s3 sync` skips the files already complete."""
    source = source_of(md)
    if source.s3 is not None:
        command = ["aws", "s3", "sync", source.s3.url, WEIGHTS_DIR, "--no-progress"]
        if source.s3.endpoint:
            command += ["--endpoint-url", source.s3.endpoint]
        return command
    return [
        "hf",
        "download",
        md.spec.model,
        "--revision",
        revision(md),
        "--local-dir",
        WEIGHTS_DIR,
    ]


def download_container(md: ModelDeployment, name: str) -> dict[str, Any]:
    """The downloader: install the pinned tool, then run DOWNLOAD_SCRIPT around the command."""
    source = source_of(md)
    tool = DOWNLOADER_TOOLS["s3" if source.s3 is not None else "huggingFace"]
    env: list[dict[str, Any]] = [
        {"name": "MODELFLEET_DEST", "value": WEIGHTS_DIR},
        {"name": "MODELFLEET_SOURCE", "value": source.kind},
        {"name": "MODELFLEET_MODEL", "value": md.spec.model},
        {"name": "MODELFLEET_REVISION", "value": revision(md)},
        {"name": "MODELFLEET_PROGRESS_PORT", "value": str(PROGRESS_PORT)},
        # hf keeps its own cache under the local dir; nothing is written to $HOME
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]
    if source.s3 is not None:
        env.append({"name": "MODELFLEET_S3_URL", "value": source.s3.url})
        if source.s3.endpoint:
            env.append({"name": "MODELFLEET_S3_ENDPOINT", "value": source.s3.endpoint})
        if source.s3.region:
            env.append({"name": "AWS_DEFAULT_REGION", "value": source.s3.region})
        secret = source.s3.credentials_secret
        if secret is not None:
            env += [
                {
                    "name": variable,
                    "valueFrom": {"secretKeyRef": {"name": secret.name, "key": key}},
                }
                for variable, key in (
                    ("AWS_ACCESS_KEY_ID", secret.access_key_id_key),
                    ("AWS_SECRET_ACCESS_KEY", secret.secret_access_key_key),
                )
            ]
    elif md.spec.hugging_face_token is not None:
        ref = md.spec.hugging_face_token.secret_key_ref.model_dump(by_alias=True, exclude_none=True)
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    return {
        "name": name,
        "image": DOWNLOADER_IMAGE,
        "command": [
            "sh",
            "-c",
            'pip install --quiet --no-cache-dir --disable-pip-version-check "$1" '
            '&& shift && exec python -c "$MODELFLEET_SCRIPT" "$@"',
            "sh",
            tool,
            *download_command(md),
        ],
        "env": [*env, {"name": "MODELFLEET_SCRIPT", "value": DOWNLOAD_SCRIPT}],
        "ports": [{"name": "progress", "containerPort": PROGRESS_PORT, "protocol": "TCP"}],
        "resources": DOWNLOAD_RESOURCES,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        # The script writes the reason of a failure here; status.cache shows it.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": WEIGHTS_VOLUME, "mountPath": WEIGHTS_DIR}],
    }


def pod_volumes(md: ModelDeployment) -> list[dict[str, Any]]:
    """The engine pod's weights volume ([] when the engine downloads by itself)."""
    source = source_of(md)
    if source.pvc is not None:
        claim = {"claimName": source.pvc.claim_name, "readOnly": True}
        return [{"name": WEIGHTS_VOLUME, "persistentVolumeClaim": claim}]
    if shared(md):
        claim = {"claimName": weights_name(md), "readOnly": True}
        return [{"name": WEIGHTS_VOLUME, "persistentVolumeClaim": claim}]
    if per_node(md):
        assert md.spec.cache is not None
        path = f"{md.spec.cache.node_path.rstrip('/')}/{cache_key(md)}"
        return [{"name": WEIGHTS_VOLUME, "hostPath": {"path": path, "type": "DirectoryOrCreate"}}]
    return []


def engine_mounts(md: ModelDeployment) -> list[dict[str, Any]]:
    """Read-only, always: an engine never writes the weights it serves."""
    if not pod_volumes(md):
        return []
    mount: dict[str, Any] = {"name": WEIGHTS_VOLUME, "mountPath": WEIGHTS_DIR, "readOnly": True}
    pvc = source_of(md).pvc
    if pvc is not None and pvc.path:
        mount["subPath"] = pvc.path
    return [mount]


def init_containers(md: ModelDeployment) -> list[dict[str, Any]]:
    """PerNode: fill this node's cache before the engine starts (at once when it is warm)."""
    return [download_container(md, PER_NODE_CONTAINER)] if per_node(md) else []


def engine_pod_labels(md: ModelDeployment) -> dict[str, str]:
    """PerNode: the cache key on each engine pod, so status counts only the nodes filling this
    revision's directory (during a rollout the old revision's pods run on too)."""
    return {CACHE_KEY_LABEL: cache_key(md)} if per_node(md) else {}
