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
                "(for example NVIDIA-L4, NVIDIA-H100-80GB-HBM3, NVIDIA-H200)."
            ),
        ),
    ]
    count: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_GPUS_PER_REPLICA,
            description=(
                "GPUs per replica, all on one node. The engine shards the model across them "
                "with tensor parallelism of this degree."
            ),
        ),
    ] = 1


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
_SPEC_RULES: list[JsonValue] = [
    _cel(
        "self.engine == 'llamacpp' || self.gpu.count in [1, 2, 4, 8]",
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
    gpu: Annotated[GPURequest, Field(description="GPUs for each replica.")]
    replicas: Annotated[
        int,
        Field(ge=0, le=1000, description="Number of engine replicas (pods). 0 stops serving."),
    ] = 1
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
        if self.engine != Engine.LLAMACPP and self.gpu.count not in (1, 2, 4, 8):
            raise ValueError(GPU_COUNT_RULE_MESSAGE)
        if any(reserved_arg(arg) for arg in self.extra_args):
            raise ValueError(EXTRA_ARGS_RULE_MESSAGE)
        return self


def reserved_arg(arg: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for flag in _RESERVED_ARGS)


ConditionType = Literal["Ready", "Progressing", "Degraded"]
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
