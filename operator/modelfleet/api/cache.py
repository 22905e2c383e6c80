"""Where a model's weights come from (spec.source) and how they are cached (spec.cache).

docs/cache.md explains the design: a shared volume per model revision filled once by a download
Job, or a per-node directory filled by each replica's init container; an existing PVC is
mounted as it is. The status types say how far the download is.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from modelfleet.api.base import _cel, _Model
from modelfleet.api.pod import Quantity, SubdomainName

# A git revision (branch, tag or commit) as the Hugging Face Hub takes it.
REVISION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"
S3_URL_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?$"
# A relative path inside a volume: no leading '/', no '..' anywhere.
SUB_PATH_PATTERN = r"^([A-Za-z0-9_-]([A-Za-z0-9_/-]|\.[A-Za-z0-9_/-])*\.?)?$"
DEFAULT_NODE_PATH = "/var/lib/modelfleet/weights"

Revision = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=REVISION_PATTERN,
        description=(
            "Revision of the model: a Hugging Face branch, tag or commit (default main). It keys "
            "the weights cache: a new revision is downloaded into a new volume, so a replica "
            "never serves weights of another revision."
        ),
    ),
]


class S3CredentialsSecret(_Model):
    """A Secret holding the bucket's access key, as the AWS tools name it."""

    name: Annotated[SubdomainName, Field(description="Name of the Secret (this namespace).")]
    access_key_id_key: Annotated[
        str,
        Field(
            alias="accessKeyIdKey",
            min_length=1,
            max_length=253,
            description="Key of the access key id in the Secret.",
        ),
    ] = "AWS_ACCESS_KEY_ID"
    secret_access_key_key: Annotated[
        str,
        Field(
            alias="secretAccessKeyKey",
            min_length=1,
            max_length=253,
            description="Key of the secret access key in the Secret.",
        ),
    ] = "AWS_SECRET_ACCESS_KEY"


class S3Source(_Model):
    """Weights in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2, GCS interop)."""

    url: Annotated[
        str,
        Field(
            max_length=1024,
            pattern=S3_URL_PATTERN,
            description="s3://bucket/prefix of the model's files (config.json, safetensors).",
        ),
    ]
    endpoint: Annotated[
        str | None,
        Field(
            max_length=512,
            pattern=r"^https?://\S+$",
            description="Endpoint URL of an S3-compatible store; default: AWS S3.",
        ),
    ] = None
    region: Annotated[
        str | None,
        Field(max_length=64, pattern=r"^[a-z0-9-]+$", description="Bucket region."),
    ] = None
    credentials_secret: Annotated[
        S3CredentialsSecret | None,
        Field(
            alias="credentialsSecret",
            description=(
                "Secret with the access key; the download container gets it by reference "
                "(secretKeyRef), so the key is in no object modelfleet writes. Unset: the "
                "download pod's own identity (IRSA, workload identity) or a public bucket."
            ),
        ),
    ] = None


class PVCSource(_Model):
    """Weights already on a PersistentVolumeClaim: mounted read-only, nothing downloaded."""

    claim_name: Annotated[
        SubdomainName, Field(alias="claimName", description="The claim, in this namespace.")
    ]
    path: Annotated[
        str,
        Field(
            max_length=512,
            pattern=SUB_PATH_PATTERN,
            description="Directory of the model inside the volume (relative; default its root).",
        ),
    ] = ""


class HuggingFaceSource(_Model):
    """The Hugging Face Hub (the default): spec.model is the repository id."""


ONE_SOURCE_MESSAGE = "source takes at most one of huggingFace, s3 and pvc"


class ModelSource(_Model):
    """Where the weights come from; the default is the Hugging Face Hub."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "(has(self.huggingFace) ? 1 : 0) + (has(self.s3) ? 1 : 0) "
                    "+ (has(self.pvc) ? 1 : 0) <= 1",
                    ONE_SOURCE_MESSAGE,
                )
            ]
        }
    )

    hugging_face: Annotated[
        HuggingFaceSource | None,
        Field(alias="huggingFace", description="The Hugging Face Hub: spec.model is the repo id."),
    ] = None
    s3: Annotated[S3Source | None, Field(description="An S3-compatible bucket.")] = None
    pvc: Annotated[
        PVCSource | None, Field(description="An existing PersistentVolumeClaim, mounted read-only.")
    ] = None

    @model_validator(mode="after")
    def _one(self) -> ModelSource:
        if sum(x is not None for x in (self.hugging_face, self.s3, self.pvc)) > 1:
            raise ValueError(ONE_SOURCE_MESSAGE)
        return self

    @property
    def kind(self) -> Literal["huggingFace", "s3", "pvc"]:
        if self.s3 is not None:
            return "s3"
        if self.pvc is not None:
            return "pvc"
        return "huggingFace"


CacheMode = Literal["Shared", "PerNode"]
SHARED_SIZE_MESSAGE = "cache.size is required with mode Shared: it sizes the shared volume"


class CacheSpec(_Model):
    """A weights cache: downloaded once, mounted read-only by every replica."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("self.mode != 'Shared' || has(self.size)", SHARED_SIZE_MESSAGE, ".size")
            ]
        }
    )

    mode: Annotated[
        CacheMode,
        Field(
            description=(
                "Shared (default): one ReadWriteMany volume per model revision, filled once by a "
                "download Job, mounted read-only by every replica (needs a storage class with "
                "ReadWriteMany: NFS, EFS, Filestore, CephFS, Azure Files). PerNode: a directory "
                "on each node (nodePath) filled by the replica's init container the first time "
                "a replica runs there; later replicas on that node find it filled."
            ),
        ),
    ] = "Shared"
    size: Annotated[
        Quantity | None,
        Field(description='Shared: capacity of the volume, e.g. "200Gi" (weights plus ~10%).'),
    ] = None
    storage_class_name: Annotated[
        SubdomainName | None,
        Field(
            alias="storageClassName",
            description="Shared: StorageClass of the volume (default: the cluster's default).",
        ),
    ] = None
    node_path: Annotated[
        str,
        Field(
            alias="nodePath",
            max_length=256,
            pattern=r"^/[A-Za-z0-9._/-]*$",
            description=(
                "PerNode: the directory on each node that holds the caches (one subdirectory per "
                "model revision). It must be on a disk with room for the weights."
            ),
        ),
    ] = DEFAULT_NODE_PATH

    @model_validator(mode="after")
    def _shared_needs_size(self) -> CacheSpec:
        if self.mode == "Shared" and self.size is None:
            raise ValueError(SHARED_SIZE_MESSAGE)
        return self


CachePhase = Literal["Pending", "Downloading", "Cached", "Failed", "PerNode", "Mounted"]


class CacheNodes(_Model):
    """PerNode: how many of the nodes running this revision's replicas are in each state."""

    cached: Annotated[int, Field(ge=0, description="Nodes whose cache is complete.")] = 0
    downloading: Annotated[
        int, Field(ge=0, description="Nodes downloading (or about to, or retrying).")
    ] = 0
    failed: Annotated[
        int, Field(ge=0, description="Nodes whose download failed in a way no retry fixes.")
    ] = 0


class CacheStatus(_Model):
    """The weights the replicas load, and how far their download is."""

    key: Annotated[str, Field(description="Cache key: digest of source, model and revision.")] = ""
    revision: Annotated[str | None, Field(description="The model revision cached.")] = None
    phase: Annotated[
        CachePhase,
        Field(
            description=(
                "Pending (volume or Job not started; PerNode: no replica scheduled yet), "
                "Downloading, Cached (replicas may start; PerNode: every node running a replica "
                "is filled), Failed (see message), Mounted (an existing PVC, nothing to "
                "download). PerNode is no longer written (older operators: no progress)."
            )
        ),
    ] = "Pending"
    volume: Annotated[
        str | None, Field(description="The PersistentVolumeClaim holding the weights.")
    ] = None
    job: Annotated[str | None, Field(description="The download Job.")] = None
    bytes: Annotated[int | None, Field(ge=0, description="Bytes downloaded so far.")] = None
    total_bytes: Annotated[
        int | None, Field(alias="totalBytes", ge=0, description="Bytes of the whole model.")
    ] = None
    percent: Annotated[
        int | None, Field(ge=0, le=100, description="bytes / totalBytes, whole percent.")
    ] = None
    nodes: Annotated[
        CacheNodes | None,
        Field(
            description=(
                "PerNode: nodes running this revision's replicas, by state; bytes, totalBytes "
                "and percent are then the slowest downloading node's."
            )
        ),
    ] = None
    message: Annotated[str, Field(description="Why, in one line (failures: the reason).")] = ""


S3_NEEDS_CACHE_MESSAGE = (
    "source.s3 needs cache: the engines cannot read a bucket, the weights are downloaded into it"
)
PVC_NO_CACHE_MESSAGE = "source.pvc is mounted as it is: remove cache (there is nothing to download)"
LLAMACPP_MESSAGE = (
    "source, cache and modelRevision need engine vllm or sglang: llamacpp downloads one GGUF "
    "file itself (--hf-repo)"
)
SPEC_RULES = [
    _cel(
        "!has(self.source) || !has(self.source.s3) || has(self.cache)",
        S3_NEEDS_CACHE_MESSAGE,
        ".source",
    ),
    _cel(
        "!has(self.source) || !has(self.source.pvc) || !has(self.cache)",
        PVC_NO_CACHE_MESSAGE,
        ".cache",
    ),
    _cel(
        "self.engine != 'llamacpp' || (!has(self.source) && !has(self.cache) "
        "&& !has(self.modelRevision))",
        LLAMACPP_MESSAGE,
        ".engine",
    ),
]


def spec_problem(
    engine: str, source: ModelSource | None, cache: CacheSpec | None, revision: str | None
) -> str | None:
    """The SPEC_RULES above, again, for the operator and offline tools (None: fine)."""
    if source is not None and source.s3 is not None and cache is None:
        return S3_NEEDS_CACHE_MESSAGE
    if source is not None and source.pvc is not None and cache is not None:
        return PVC_NO_CACHE_MESSAGE
    if engine == "llamacpp" and (source is not None or cache is not None or revision is not None):
        return LLAMACPP_MESSAGE
    return None
