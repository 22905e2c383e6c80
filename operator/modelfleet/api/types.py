"""ModelDeployment types: the single source of the CRD schema, the operator's input and its status.

Field descriptions end up in the CRD (so `kubectl explain` shows them), and the same models
validate objects inside the operator, so an object that slipped past an older CRD still gets a
field-level error instead of a crash.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

GROUP = "modelfleet.dev"
VERSION = "v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["md"]
API_VERSION = f"{GROUP}/{VERSION}"

MAX_GPUS_PER_REPLICA = 8


Quantization = Literal["bf16", "fp16", "fp8", "int8", "awq", "gptq", "auto"]


class Engine(StrEnum):
    """Inference engines modelfleet knows how to run."""

    VLLM = "vllm"
    SGLANG = "sglang"
    LLAMACPP = "llamacpp"


def _cel(rule: str, message: str, field_path: str | None = None) -> dict[str, JsonValue]:
    validation: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path:
        validation["fieldPath"] = field_path
    return validation


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_enum_values=True)


class GPURequest(_Model):
    """Which GPUs one replica runs on."""

    product: Annotated[
        str,
        Field(
            min_length=1,
            max_length=63,
            pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$",
            description=(
                "GPU product to run on, as the node label nvidia.com/gpu.product spells it "
                "(for example NVIDIA-L4, NVIDIA-H100-80GB-HBM3, NVIDIA-H200), or auto (the "
                "default): the cheapest GPU in the cluster that fits the model."
            ),
        ),
    ] = "auto"
    count: Annotated[
        int | None,
        Field(
            ge=1,
            le=MAX_GPUS_PER_REPLICA,
            description=(
                "GPUs per replica, all on one node. The engine shards the model across them "
                "with tensor parallelism of this degree. Unset: the fewest that fit."
            ),
        ),
    ] = None


class AutoscalingSpec(_Model):
    """How the autoscaler reads engine load; used only when maxReplicas is set.

    Defaults are explained in docs/autoscaling.md; every one is overridable here.
    """

    target_kv_cache_usage: Annotated[
        float,
        Field(
            alias="targetKVCacheUsage",
            gt=0,
            le=1,
            description=(
                "KV cache use per replica (0-1) to aim for. Above it the engine soon queues "
                "requests; below it for the scale-down window, replicas are removed."
            ),
        ),
    ] = 0.7
    target_queue_depth: Annotated[
        float,
        Field(
            alias="targetQueueDepth",
            ge=0,
            le=10_000,
            description="Waiting (queued) requests per replica tolerated before adding replicas.",
        ),
    ] = 2.0
    target_running_requests: Annotated[
        int | None,
        Field(
            alias="targetRunningRequests",
            ge=1,
            le=10_000,
            description=(
                "Running requests per replica to aim for. Unset: only KV cache use and queue "
                "depth count, which already track the engine's batch capacity."
            ),
        ),
    ] = None
    interval_seconds: Annotated[
        int,
        Field(
            alias="intervalSeconds",
            ge=1,
            le=300,
            description="Seconds between metric scrapes and scaling decisions.",
        ),
    ] = 10
    scale_up_window_seconds: Annotated[
        int,
        Field(
            alias="scaleUpWindowSeconds",
            ge=0,
            le=3600,
            description=(
                "Short window that reacts to bursts: scale up to the lowest recommendation "
                "seen in it (0: act on the latest sample)."
            ),
        ),
    ] = 0
    scale_down_window_seconds: Annotated[
        int,
        Field(
            alias="scaleDownWindowSeconds",
            ge=0,
            le=86_400,
            description=(
                "Stabilisation: scale down only to the highest recommendation seen in this "
                "window, so a lull shorter than it removes nothing."
            ),
        ),
    ] = 300
    max_scale_up_step: Annotated[
        int,
        Field(
            alias="maxScaleUpStep",
            ge=1,
            le=1000,
            description="Most replicas added by one decision.",
        ),
    ] = 4
    max_scale_down_step: Annotated[
        int,
        Field(
            alias="maxScaleDownStep",
            ge=1,
            le=1000,
            description="Most replicas removed by one decision.",
        ),
    ] = 1
    scale_to_zero_after_seconds: Annotated[
        int,
        Field(
            alias="scaleToZeroAfterSeconds",
            ge=0,
            le=604_800,
            description=(
                "With minReplicas 0: seconds without any request before the last replica is "
                "removed. Waking from zero needs a request gateway (not built yet)."
            ),
        ),
    ] = 900


_RESERVED_ARGS = (
    "--model",
    "--model-path",
    "--host",
    "--port",
    "--tensor-parallel-size",
    "--tp",
    "--tp-size",
)

GPU_COUNT_RULE_MESSAGE = (
    "gpu.count must be 1, 2, 4 or 8 with vllm and sglang: tensor parallelism splits "
    "attention heads evenly (llamacpp accepts any count)"
)
EXTRA_ARGS_RULE_MESSAGE = (
    "extraArgs must not set " + ", ".join(_RESERVED_ARGS) + ": modelfleet sets them"
)
MIN_MAX_RULE_MESSAGE = "minReplicas must not exceed maxReplicas"
NEEDS_MAX_RULE_MESSAGE = (
    "minReplicas and autoscaling need maxReplicas: autoscaling is on when maxReplicas is set"
)
_SPEC_RULES: list[JsonValue] = [
    _cel(
        "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
        MIN_MAX_RULE_MESSAGE,
        ".minReplicas",
    ),
    _cel(
        "has(self.maxReplicas) || (!has(self.minReplicas) && !has(self.autoscaling))",
        NEEDS_MAX_RULE_MESSAGE,
        ".maxReplicas",
    ),
    _cel(
        "!has(self.gpu.count) || self.engine == 'llamacpp' || self.gpu.count in [1, 2, 4, 8]",
        GPU_COUNT_RULE_MESSAGE,
        ".gpu.count",
    ),
    _cel(
        "!has(self.extraArgs) || self.extraArgs.all(a, "
        + " && ".join(f"a != '{flag}' && !a.startsWith('{flag}=')" for flag in _RESERVED_ARGS)
        + ")",
        EXTRA_ARGS_RULE_MESSAGE,
        ".extraArgs",
    ),
]


class ModelDeploymentSpec(_Model):
    """Desired state: which model to serve, with which engine, on which GPUs, how many times."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _SPEC_RULES})

    model: Annotated[
        str,
        Field(
            min_length=1,
            max_length=256,
            description=(
                "Model to serve: a Hugging Face repository id such as "
                "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B, passed to the engine as is."
            ),
        ),
    ]
    engine: Annotated[
        Engine,
        Field(description="Inference engine: vllm (default), sglang or llamacpp."),
    ] = Engine.VLLM
    gpu: Annotated[
        GPURequest,
        Field(
            description="GPUs for each replica; by default the cheapest that fit.",
            json_schema_extra={"default": {}},
        ),
    ] = Field(default_factory=GPURequest)
    max_context_length: Annotated[
        int | None,
        Field(
            alias="maxContextLength",
            ge=256,
            le=10_000_000,
            description=(
                "Longest sequence (prompt + output) in tokens a replica must hold; sizes the KV "
                "cache. Default: the model's maximum."
            ),
        ),
    ] = None
    quantization: Annotated[
        Quantization | None,
        Field(
            description=(
                "Weight format: bf16, fp16, fp8, int8, awq or gptq pins it; auto also considers "
                "fp8 for 16-bit models when that is cheaper. Default: the published weights."
            ),
        ),
    ] = None
    replicas: Annotated[
        int,
        Field(
            ge=0,
            le=1000,
            description=(
                "Number of engine replicas (pods); 0 stops serving. With autoscaling "
                "(maxReplicas set) it is the starting count, and a change to it (kubectl scale) "
                "sets the count once, within minReplicas..maxReplicas, before the autoscaler "
                "takes over again."
            ),
        ),
    ] = 1
    min_replicas: Annotated[
        int | None,
        Field(
            alias="minReplicas",
            ge=0,
            le=1000,
            description=(
                "Fewest replicas the autoscaler keeps (default 1). 0 allows scale-to-zero after "
                "autoscaling.scaleToZeroAfterSeconds without requests."
            ),
        ),
    ] = None
    max_replicas: Annotated[
        int | None,
        Field(
            alias="maxReplicas",
            ge=1,
            le=1000,
            description=(
                "Most replicas the autoscaler may run. Setting it turns autoscaling on: the "
                "replica count then follows the engines' queue and KV cache use."
            ),
        ),
    ] = None
    autoscaling: Annotated[
        AutoscalingSpec | None,
        Field(description="Autoscaler targets and windows; defaults when unset."),
    ] = None
    image: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=512,
            description="Container image override; by default the engine's pinned image.",
        ),
    ] = None
    extra_args: Annotated[
        list[Annotated[str, Field(max_length=1024)]],
        Field(
            alias="extraArgs",
            max_length=64,
            description="Additional engine command-line arguments, appended after ours.",
        ),
    ] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ModelDeploymentSpec:
        """The CRD's CEL rules, again, so offline tools and the operator give the same errors."""
        count = self.gpu.count
        if count is not None and self.engine != Engine.LLAMACPP and count not in (1, 2, 4, 8):
            raise ValueError(GPU_COUNT_RULE_MESSAGE)
        if any(reserved_arg(arg) for arg in self.extra_args):
            raise ValueError(EXTRA_ARGS_RULE_MESSAGE)
        if self.max_replicas is None and (
            self.min_replicas is not None or self.autoscaling is not None
        ):
            raise ValueError(NEEDS_MAX_RULE_MESSAGE)
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise ValueError(MIN_MAX_RULE_MESSAGE)
        return self

    @property
    def autoscaled(self) -> bool:
        return self.max_replicas is not None

    @property
    def autoscaling_or_default(self) -> AutoscalingSpec:
        return self.autoscaling or AutoscalingSpec()

    @property
    def min_replicas_or_default(self) -> int:
        return 1 if self.min_replicas is None else self.min_replicas


def reserved_arg(arg: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for flag in _RESERVED_ARGS)


ConditionType = Literal["Ready", "Progressing", "Degraded"]


class PlacementStatus(_Model):
    """Where and how one replica runs: the planner's choice, shown with its numbers."""

    gpu_product: Annotated[
        str, Field(alias="gpuProduct", description="GPU product (node label value).")
    ]
    gpu_label: Annotated[
        str, Field(alias="gpuLabel", description="Node label that names the product.")
    ] = "nvidia.com/gpu.product"
    gpus_per_replica: Annotated[int, Field(alias="gpusPerReplica", description="GPUs per pod.")]
    tensor_parallel: Annotated[
        int, Field(alias="tensorParallel", description="Tensor parallel degree.")
    ]
    quantization: Annotated[str | None, Field(description="Weight format the engine serves.")] = (
        None
    )
    quantized: Annotated[
        bool, Field(description="True when the engine quantizes the published weights.")
    ] = False
    max_context_length: Annotated[
        int | None, Field(alias="maxContextLength", description="KV cache sized for this.")
    ] = None
    estimated_memory_gib: Annotated[
        float | None,
        Field(alias="estimatedMemoryGiB", description="Estimated GPU memory per replica."),
    ] = None
    hourly_cost_per_replica: Annotated[
        float | None,
        Field(alias="hourlyCostPerReplica", description="USD per replica-hour."),
    ] = None
    message: Annotated[str, Field(description="Why this placement, in one line.")] = ""


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(_Model):
    """A standard Kubernetes condition (metav1.Condition shape)."""

    type: Annotated[ConditionType, Field(description="Ready, Progressing or Degraded.")]
    status: Annotated[ConditionStatus, Field(description="True, False or Unknown.")]
    reason: Annotated[str, Field(description="One CamelCase word saying why.")]
    message: Annotated[str, Field(description="What happened, in plain words.")] = ""
    last_transition_time: Annotated[
        str,
        Field(
            alias="lastTransitionTime",
            description="When status last changed (RFC 3339).",
        ),
    ]
    observed_generation: Annotated[
        int | None,
        Field(alias="observedGeneration", description="The spec generation it describes."),
    ] = None


class ModelDeploymentStatus(_Model):
    """Observed state, written by the operator only when it changes."""

    observed_generation: Annotated[
        int | None,
        Field(alias="observedGeneration", description="Last spec generation reconciled."),
    ] = None
    replicas: Annotated[int, Field(description="Replica pods that exist.")] = 0
    ready_replicas: Annotated[
        int, Field(alias="readyReplicas", description="Replica pods ready to serve.")
    ] = 0
    selector: Annotated[
        str | None,
        Field(description="Label selector of the replica pods (for the scale subresource)."),
    ] = None
    endpoint: Annotated[
        str | None,
        Field(description="In-cluster URL of the OpenAI-compatible API."),
    ] = None
    placement: Annotated[
        PlacementStatus | None,
        Field(description="The GPU placement the replicas run with."),
    ] = None
    desired_replicas: Annotated[
        int | None,
        Field(
            alias="desiredReplicas",
            description=(
                "Replica count the operator runs: spec.replicas, or the autoscaler's decision "
                "when maxReplicas is set."
            ),
        ),
    ] = None
    last_scale_time: Annotated[
        str | None,
        Field(alias="lastScaleTime", description="When the autoscaler last changed the count."),
    ] = None
    last_scale_reason: Annotated[
        str | None,
        Field(alias="lastScaleReason", description="Why, in one line, with the numbers."),
    ] = None
    seen_spec_replicas: Annotated[
        int | None,
        Field(
            alias="seenSpecReplicas",
            description=(
                "spec.replicas as the autoscaler last took it: a change (kubectl scale) is "
                "applied once as a manual scale."
            ),
        ),
    ] = None
    conditions: Annotated[
        list[Condition],
        Field(
            description="Ready, Progressing and Degraded, with reasons.",
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        ),
    ] = Field(default_factory=list)

    def condition(self, type_: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


class ObjectMeta(BaseModel):
    """The few metadata fields the operator reads."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0


class ModelDeployment(BaseModel):
    """A model served by a fleet of engine pods."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    metadata: ObjectMeta
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)

    @classmethod
    def from_body(cls, body: Any) -> ModelDeployment:
        """Validate a raw object (dict or kopf body); raises pydantic.ValidationError."""
        return cls.model_validate(
            {
                "metadata": dict(body.get("metadata") or {}),
                "spec": dict(body.get("spec") or {}),
                "status": own_status(body.get("status")),
            }
        )


def own_status(raw: Any) -> dict[str, Any]:
    """Our status fields only: kopf may keep its own bookkeeping beside them."""
    known = {f.alias or name for name, f in ModelDeploymentStatus.model_fields.items()}
    return {k: v for k, v in dict(raw or {}).items() if k in known}
