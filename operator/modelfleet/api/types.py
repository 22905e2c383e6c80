"""ModelDeployment types: the single source of the CRD schema, the operator's input and its status.

Field descriptions end up in the CRD (so `kubectl explain` shows them), and the same models
validate objects inside the operator, so an object that slipped past an older CRD still gets a
field-level error instead of a crash.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from modelfleet.api import cache as weights
from modelfleet.api.base import _cel, _Model
from modelfleet.api.pod import (
    NODE_SELECTOR_KEYS_MESSAGE,
    Affinity,
    EnvFromSource,
    EnvVar,
    HuggingFaceToken,
    LabelValue,
    LocalObjectReference,
    ResourceOverrides,
    SubdomainName,
    Toleration,
    valid_label_keys,
)

GROUP = "modelfleet.dev"
VERSION = "v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["md"]
API_VERSION = f"{GROUP}/{VERSION}"

MAX_GPUS_PER_REPLICA = 8


Quantization = Literal["bf16", "fp16", "fp8", "int8", "awq", "gptq", "auto"]
KVCacheDtype = Literal["auto", "fp8"]
NativeDtype = Literal["bf16", "fp16", "fp8", "int8", "int4"]


class Engine(StrEnum):
    """Inference engines modelfleet knows how to run."""

    VLLM = "vllm"
    SGLANG = "sglang"
    LLAMACPP = "llamacpp"


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


class CostSpec(_Model):
    """How the deployment's cost is reported."""

    compare_to: Annotated[
        str | None,
        Field(
            alias="compareTo",
            min_length=3,
            max_length=128,
            pattern=r"^[^/\s]+/\S+$",
            description=(
                "Hosted API model to compare with, as provider/model from the API price table "
                "(e.g. openai/gpt-4o). Default: one picked for the model's class, shown in "
                "status.cost.apiEquivalent.compareTo."
            ),
        ),
    ] = None


class BudgetSpec(_Model):
    """Money limits of the deployment."""

    max_hourly: Annotated[
        float | None,
        Field(
            alias="maxHourly",
            ge=0,
            le=1_000_000,
            allow_inf_nan=False,
            description=(
                "Most USD per hour for all replicas, a rollout's surge included. Neither the "
                "autoscaler nor spec.replicas goes above it (condition BudgetLimited says when "
                "it held a count back); under a tight budget a rollout replaces pods instead of "
                "surging."
            ),
        ),
    ] = None


class ExpectedLoad(_Model):
    """The traffic the placement is sized for: arrivals and the size of a typical request."""

    requests_per_second: Annotated[
        float,
        Field(
            alias="requestsPerSecond",
            gt=0,
            le=1_000_000,
            allow_inf_nan=False,
            description="Requests per second the deployment must serve.",
        ),
    ]
    prompt_tokens: Annotated[
        int,
        Field(
            alias="promptTokens",
            ge=1,
            le=10_000_000,
            description="Prompt tokens of a typical request.",
        ),
    ]
    output_tokens: Annotated[
        int,
        Field(
            alias="outputTokens",
            ge=1,
            le=10_000_000,
            description="Output tokens of a typical request.",
        ),
    ]


class SLOSpec(_Model):
    """Latency objectives the operator reports attainment of (status.slo, docs/autoscaling.md)."""

    ttft_seconds: Annotated[
        float,
        Field(
            alias="ttftSeconds",
            gt=0,
            le=3600,
            allow_inf_nan=False,
            description=(
                "Time to first token each request should get, in seconds. Measured from the "
                "engines' TTFT histograms at the largest bucket bound not above it "
                "(status.slo.ttft.measuredAtSeconds)."
            ),
        ),
    ] = 2.0
    tpot_seconds: Annotated[
        float | None,
        Field(
            alias="tpotSeconds",
            gt=0,
            le=600,
            allow_inf_nan=False,
            description=(
                "Time per output token (the gap between two tokens of a stream), in seconds. "
                "Unset: not reported."
            ),
        ),
    ] = None
    objective: Annotated[
        float,
        Field(
            gt=0,
            le=1,
            allow_inf_nan=False,
            description=(
                "Share of requests (TPOT: of output tokens) that must meet the target over the "
                "last hour; below it status.slo says missed and a Warning Event SLOMissed is "
                "posted."
            ),
        ),
    ] = 0.99


class MLAArchitecture(_Model):
    """Multi-head latent attention ranks (DeepSeek V3/R1, Kimi K2): one compressed KV per layer."""

    kv_lora_rank: Annotated[
        int,
        Field(
            alias="kvLoraRank",
            ge=1,
            le=65_536,
            description="Rank of the compressed KV vector (config.json kv_lora_rank).",
        ),
    ]
    qk_rope_head_dim: Annotated[
        int,
        Field(
            alias="qkRopeHeadDim",
            ge=0,
            le=4096,
            description="Rotary part of each key kept beside it (config.json qk_rope_head_dim).",
        ),
    ]


ACTIVE_PARAMS_RULE_MESSAGE = "activeB must not exceed paramsB: a MoE activates part of its experts"
KV_HEADS_RULE_MESSAGE = "kvHeads must not exceed attentionHeads"
KV_HEADS_DIVIDE_RULE_MESSAGE = (
    "attentionHeads must be a multiple of kvHeads (grouped-query attention)"
)
_ARCHITECTURE_RULES: list[JsonValue] = [
    _cel(
        "!has(self.activeB) || self.activeB <= self.paramsB", ACTIVE_PARAMS_RULE_MESSAGE, ".activeB"
    ),
    _cel(
        "has(self.mla) || !has(self.kvHeads) || self.kvHeads <= self.attentionHeads",
        KV_HEADS_RULE_MESSAGE,
        ".kvHeads",
    ),
    _cel(
        "has(self.mla) || !has(self.kvHeads) || self.attentionHeads % self.kvHeads == 0",
        KV_HEADS_DIVIDE_RULE_MESSAGE,
        ".kvHeads",
    ),
]


class ModelArchitecture(_Model):
    """Architecture of a model the catalog does not know, from its config.json.

    The same numbers as the catalog (catalog/models.yaml, in camelCase); the planner uses them
    instead of the catalog's entry, so a private or new model is right-sized like a known one.
    """

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _ARCHITECTURE_RULES})

    params_b: Annotated[
        float,
        Field(
            alias="paramsB",
            gt=0,
            le=100_000,
            description="Total parameters in billions (every expert of a MoE): sizes the weights.",
        ),
    ]
    active_b: Annotated[
        float | None,
        Field(
            alias="activeB",
            gt=0,
            le=100_000,
            description=(
                "MoE only: parameters active per token, in billions (decode speed estimate). "
                "Default: paramsB (a dense model)."
            ),
        ),
    ] = None
    layers: Annotated[
        int,
        Field(ge=1, le=1024, description="Transformer layers (config.json num_hidden_layers)."),
    ]
    hidden: Annotated[
        int,
        Field(ge=1, le=1_048_576, description="Hidden size (config.json hidden_size)."),
    ]
    attention_heads: Annotated[
        int,
        Field(
            alias="attentionHeads",
            ge=1,
            le=1024,
            description=(
                "Attention heads (config.json num_attention_heads); tensor parallelism must "
                "divide them."
            ),
        ),
    ]
    kv_heads: Annotated[
        int | None,
        Field(
            alias="kvHeads",
            ge=1,
            le=1024,
            description=(
                "Key/value heads (config.json num_key_value_heads): size the KV cache with "
                "headDim. Default: attentionHeads (multi-head attention)."
            ),
        ),
    ] = None
    head_dim: Annotated[
        int | None,
        Field(
            alias="headDim",
            ge=1,
            le=4096,
            description=(
                "Dimension of one head (config.json head_dim). Default: hidden / attentionHeads."
            ),
        ),
    ] = None
    mla: Annotated[
        MLAArchitecture | None,
        Field(
            description=(
                "Multi-head latent attention (DeepSeek V3/R1, Kimi K2) instead of kvHeads: the "
                "KV cache holds kvLoraRank + qkRopeHeadDim values per layer and token."
            ),
        ),
    ] = None
    max_context: Annotated[
        int,
        Field(
            alias="maxContext",
            ge=256,
            le=10_000_000,
            description=(
                "Longest context the model supports (config.json max_position_embeddings); "
                "the default maxContextLength."
            ),
        ),
    ]
    native_dtype: Annotated[
        NativeDtype,
        Field(
            alias="nativeDtype",
            description=(
                "Dtype of the published weights: bf16 (default), fp16, fp8, int8 or int4 "
                "(config.json torch_dtype, or the quantization of the checkpoint)."
            ),
        ),
    ] = "bf16"

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ModelArchitecture:
        """The CEL rules above, again, for the operator and offline tools."""
        if self.active_b is not None and self.active_b > self.params_b:
            raise ValueError(ACTIVE_PARAMS_RULE_MESSAGE)
        if self.mla is None and self.kv_heads is not None:
            if self.kv_heads > self.attention_heads:
                raise ValueError(KV_HEADS_RULE_MESSAGE)
            if self.attention_heads % self.kv_heads:
                raise ValueError(KV_HEADS_DIVIDE_RULE_MESSAGE)
        return self


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
# The KV cache dtype flags of every engine: with spec.kvCacheDtype set, modelfleet passes them.
_KV_CACHE_ARGS = ("--kv-cache-dtype", "--cache-type-k", "--cache-type-v", "-ctk", "-ctv")
KV_CACHE_ARGS_RULE_MESSAGE = (
    "extraArgs must not set "
    + ", ".join(_KV_CACHE_ARGS)
    + " when kvCacheDtype is set: modelfleet passes the engine's KV cache flags from it "
    "(remove one of the two)"
)
CONTEXT_RULE_MESSAGE = "maxContextLength must not exceed architecture.maxContext"
# Environment variables modelfleet sets in the engine container (render/children.py and the
# engines' token names in render/engines.py): spec.env must not override them.
RESERVED_ENV = ("HF_HOME", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
RESERVED_ENV_RULE_MESSAGE = (
    "env must not set "
    + ", ".join(RESERVED_ENV)
    + ": modelfleet sets them (give a Hugging Face token as huggingFaceToken)"
)
UNIQUE_ENV_RULE_MESSAGE = "env names must be unique"
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
    _cel(
        "!has(self.kvCacheDtype) || !has(self.extraArgs) || self.extraArgs.all(a, "
        + " && ".join(f"a != '{flag}' && !a.startsWith('{flag}=')" for flag in _KV_CACHE_ARGS)
        + ")",
        KV_CACHE_ARGS_RULE_MESSAGE,
        ".extraArgs",
    ),
    _cel(
        "!has(self.architecture) || !has(self.maxContextLength) "
        "|| self.maxContextLength <= self.architecture.maxContext",
        CONTEXT_RULE_MESSAGE,
        ".maxContextLength",
    ),
    _cel(
        "!has(self.env) || self.env.all(e, "
        + " && ".join(f"e.name != '{name}'" for name in RESERVED_ENV)
        + ")",
        RESERVED_ENV_RULE_MESSAGE,
        ".env",
    ),
    _cel(
        "!has(self.env) || self.env.all(e, self.env.exists_one(f, f.name == e.name))",
        UNIQUE_ENV_RULE_MESSAGE,
        ".env",
    ),
    *weights.SPEC_RULES,
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
                "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B, passed to the engine as is. Right-sizing "
                "looks it up in the catalog (also by short alias) unless architecture is given."
            ),
        ),
    ]
    model_revision: Annotated[weights.Revision | None, Field(alias="modelRevision")] = None
    source: Annotated[
        weights.ModelSource | None,
        Field(
            description=(
                "Where the weights come from: the Hugging Face Hub (default), an S3-compatible "
                "bucket (needs cache) or an existing PersistentVolumeClaim (docs/cache.md)."
            ),
        ),
    ] = None
    cache: Annotated[
        weights.CacheSpec | None,
        Field(
            description=(
                "Cache the weights: downloaded once per model revision by a Job (or per node), "
                "mounted read-only by the replicas; status.cache shows the download "
                "(docs/cache.md). Unset: each engine downloads from the Hub at start-up."
            ),
        ),
    ] = None
    architecture: Annotated[
        ModelArchitecture | None,
        Field(
            description=(
                "Architecture numbers of a model the catalog does not know (from its "
                "config.json); when given, the planner uses them instead of the catalog."
            ),
        ),
    ] = None
    engine: Annotated[
        Engine,
        # Not strict: a strict enum wants an Engine, the API server's JSON has its value.
        Field(strict=False, description="Inference engine: vllm (default), sglang or llamacpp."),
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
    expected_load: Annotated[
        ExpectedLoad | None,
        Field(
            alias="expectedLoad",
            description=(
                "Traffic to size the placement for. When set, the GPU type and count per "
                "replica are the ones whose fleet serves this load within the TTFT target "
                "(spec.slo.ttftSeconds, default 2 s) for the least money, chosen when the "
                "deployment is created or its spec changes; when unset, the cheapest replica "
                "that fits. It does not set the replica count (spec.replicas or the "
                "autoscaler do); status.placement.message gives the fleet it assumed."
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
    kv_cache_dtype: Annotated[
        KVCacheDtype | None,
        Field(
            alias="kvCacheDtype",
            description=(
                "KV cache format: auto (the default: the model's activation dtype, 16 bit) or "
                "fp8, which halves the KV cache so a long context fits fewer or smaller GPUs, "
                "at a small accuracy cost. Passed as vLLM --kv-cache-dtype fp8, SGLang "
                "--kv-cache-dtype fp8_e5m2, llama.cpp --cache-type-k q8_0 --cache-type-v q8_0. "
                "Do not also set those flags in extraArgs."
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
    cost: Annotated[
        CostSpec | None,
        Field(description="How cost is reported: which hosted API to compare with."),
    ] = None
    budget: Annotated[
        BudgetSpec | None,
        Field(description="Money limits: USD per hour for all replicas."),
    ] = None
    slo: Annotated[
        SLOSpec | None,
        Field(
            description=(
                "Latency objectives (time to first token, time per output token) whose "
                "attainment status.slo reports; defaults when unset (TTFT 2 s, 99%)."
            ),
        ),
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
    hugging_face_token: Annotated[
        HuggingFaceToken | None,
        Field(
            alias="huggingFaceToken",
            description=(
                "Hugging Face access token for gated or private models: a key of a Secret in "
                "this namespace. Passed to the engine as HF_TOKEN (and HUGGING_FACE_HUB_TOKEN "
                "for vllm and sglang) by reference; it never appears in the Deployment, status, "
                "Events or logs."
            ),
        ),
    ] = None
    env: Annotated[
        list[EnvVar],
        Field(
            max_length=64,
            description=(
                "Environment variables of the engine container, after modelfleet's own ("
                + ", ".join(RESERVED_ENV)
                + " are modelfleet's and refused here). Secrets by valueFrom.secretKeyRef."
            ),
        ),
    ] = Field(default_factory=list)
    env_from: Annotated[
        list[EnvFromSource],
        Field(
            alias="envFrom",
            max_length=16,
            description=(
                "Secrets and ConfigMaps whose keys become environment variables; a name also "
                "set by env (or by modelfleet) keeps that value."
            ),
        ),
    ] = Field(default_factory=list)
    resources: Annotated[
        ResourceOverrides | None,
        Field(
            description=(
                "CPU and memory of the engine container. Default: derived from the model and "
                "engine (docs/pods.md): memory request = limit = weights + /dev/shm + engine "
                "overhead; CPU request per GPU, no CPU limit. GPUs come from the placement."
            ),
        ),
    ] = None
    tolerations: Annotated[
        list[Toleration],
        Field(
            max_length=32,
            description="Taints the engine pods tolerate, besides the GPU taint (always).",
        ),
    ] = Field(default_factory=list)
    affinity: Annotated[
        Affinity | None,
        Field(description="Node and pod (anti-)affinity of the engine pods."),
    ] = None
    node_selector: Annotated[
        dict[str, LabelValue],
        Field(
            alias="nodeSelector",
            max_length=32,
            description=(
                "Node labels the engine pods require, merged with the placement's GPU label "
                "(nvidia.com/gpu.product): on the same key the placement's value wins."
            ),
        ),
    ] = Field(default_factory=dict)
    priority_class_name: Annotated[
        SubdomainName | None,
        Field(alias="priorityClassName", description="PriorityClass of the engine pods."),
    ] = None
    image_pull_secrets: Annotated[
        list[LocalObjectReference],
        Field(
            alias="imagePullSecrets",
            max_length=16,
            description="Secrets to pull the engine image with (a private registry or mirror).",
        ),
    ] = Field(default_factory=list)
    service_account_name: Annotated[
        SubdomainName | None,
        Field(
            alias="serviceAccountName",
            description="ServiceAccount of the engine pods (default: the namespace's default).",
        ),
    ] = None
    automount_service_account_token: Annotated[
        bool,
        Field(
            alias="automountServiceAccountToken",
            description=(
                "Mount the ServiceAccount's API token in the engine pods. Default false: "
                "engines never call the Kubernetes API."
            ),
        ),
    ] = False

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ModelDeploymentSpec:
        """The CRD's CEL rules, again, so offline tools and the operator give the same errors."""
        count = self.gpu.count
        if count is not None and self.engine != Engine.LLAMACPP and count not in (1, 2, 4, 8):
            raise ValueError(GPU_COUNT_RULE_MESSAGE)
        if any(reserved_arg(arg) for arg in self.extra_args):
            raise ValueError(EXTRA_ARGS_RULE_MESSAGE)
        if self.kv_cache_dtype is not None and any(kv_cache_arg(a) for a in self.extra_args):
            raise ValueError(KV_CACHE_ARGS_RULE_MESSAGE)
        if (
            self.architecture is not None
            and self.max_context_length is not None
            and self.max_context_length > self.architecture.max_context
        ):
            raise ValueError(CONTEXT_RULE_MESSAGE)
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
        names = [variable.name for variable in self.env]
        if any(name in RESERVED_ENV for name in names):
            raise ValueError(RESERVED_ENV_RULE_MESSAGE)
        if len(set(names)) != len(names):
            raise ValueError(UNIQUE_ENV_RULE_MESSAGE)
        problem = weights.spec_problem(
            str(self.engine), self.source, self.cache, self.model_revision
        )
        if problem:
            raise ValueError(problem)
        return self

    @field_validator("node_selector")
    @classmethod
    def _label_keys(cls, selector: dict[str, str]) -> dict[str, str]:
        if not valid_label_keys(selector):
            raise ValueError(NODE_SELECTOR_KEYS_MESSAGE)
        return selector

    @property
    def autoscaled(self) -> bool:
        return self.max_replicas is not None

    @property
    def autoscaling_or_default(self) -> AutoscalingSpec:
        return self.autoscaling or AutoscalingSpec()

    @property
    def slo_or_default(self) -> SLOSpec:
        return self.slo or SLOSpec()

    @property
    def min_replicas_or_default(self) -> int:
        return 1 if self.min_replicas is None else self.min_replicas


def reserved_arg(arg: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for flag in _RESERVED_ARGS)


def kv_cache_arg(arg: str) -> bool:
    """An engine flag that sets the KV cache dtype (conflicts with spec.kvCacheDtype)."""
    return any(arg == flag or arg.startswith(flag + "=") for flag in _KV_CACHE_ARGS)


ConditionType = Literal["Ready", "Progressing", "Degraded", "BudgetLimited", "MetricsUnavailable"]


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
    kv_cache_dtype: Annotated[
        str | None,
        Field(
            alias="kvCacheDtype",
            description="KV cache format the estimate and the engine use: auto or fp8.",
        ),
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
    spec_hash: Annotated[
        str | None,
        Field(
            alias="specHash",
            description="Digest of the spec fields this placement was planned for; a spec "
            "with other values is planned afresh.",
        ),
    ] = None


class TokenCounts(_Model):
    """Tokens served, from the engines' counters."""

    input: Annotated[int, Field(ge=0, description="Prompt tokens.")] = 0
    output: Annotated[int, Field(ge=0, description="Generated tokens.")] = 0


class PerMillionTokens(_Model):
    """USD per 1M tokens over the last hour: GPU cost in the window over tokens in it."""

    output: Annotated[
        float | None, Field(description="USD per 1M output tokens; absent when none.")
    ] = None
    total: Annotated[float, Field(description="USD per 1M tokens, input and output.")]


class ApiEquivalentStatus(_Model):
    """What the same tokens would have cost on a hosted API."""

    usd: Annotated[float, Field(description="USD for status.cost.tokens at that API's prices.")]
    compare_to: Annotated[
        str, Field(alias="compareTo", description="The hosted model, provider/model.")
    ]
    as_of: Annotated[str, Field(alias="asOf", description="Date of that price.")]


class CostStatus(_Model):
    """What the deployment costs: now, to date, per token, and against a hosted API.

    hourly and gpus follow the pods at once; the time-based fields (spend, tokens and what
    derives from them) are written at most every 5 minutes in steady state (docs/cost.md).
    """

    hourly: Annotated[
        float,
        Field(description="USD per hour now: every pod holding GPUs (loading, surge included)."),
    ] = 0.0
    gpus: Annotated[int, Field(description="GPUs held now.")] = 0
    unpriced_gpus: Annotated[
        int | None,
        Field(alias="unpricedGpus", description="GPUs on nodes without a price (not in hourly)."),
    ] = None
    spend: Annotated[float, Field(description="USD accrued from GPU time, since spendSince.")] = 0.0
    spend_since: Annotated[
        str | None, Field(alias="spendSince", description="When accrual started (RFC 3339).")
    ] = None
    accrued_until: Annotated[
        str | None,
        Field(
            alias="accruedUntil",
            description="Watermark: spend and tokens count everything before this time.",
        ),
    ] = None
    tokens: Annotated[TokenCounts | None, Field(description="Tokens served to date.")] = None
    per_million_tokens: Annotated[
        PerMillionTokens | None,
        Field(alias="perMillionTokens", description="USD per 1M tokens, last hour."),
    ] = None
    api_equivalent: Annotated[
        ApiEquivalentStatus | None,
        Field(alias="apiEquivalent", description="The same tokens on a hosted API."),
    ] = None
    idle_gpu_hours: Annotated[
        float | None,
        Field(
            alias="idleGpuHours",
            description="GPU-hours, last hour, of replicas that served no token.",
        ),
    ] = None


class LatencySLOStatus(_Model):
    """Attainment of one latency target over the window, from the engines' histograms."""

    target: Annotated[float, Field(description="The target from spec.slo, in seconds.")]
    measured_at_seconds: Annotated[
        float | None,
        Field(
            alias="measuredAtSeconds",
            description=(
                "The histogram bucket bound attainment is measured at: the largest the engine "
                "exports that is not above the target (vLLM's TTFT buckets go 1.0, 2.5: a 2 s "
                "target is measured at 1.0, so attainment is a lower bound)."
            ),
        ),
    ] = None
    attainment: Annotated[
        float | None,
        Field(
            description=(
                "Share of the window's requests (TPOT: output tokens) within measuredAtSeconds; "
                "absent when unknown or when nothing was served."
            ),
        ),
    ] = None
    count: Annotated[
        int,
        Field(
            ge=0,
            description="Requests (TPOT: output token gaps) the engines timed in the window.",
        ),
    ] = 0
    met: Annotated[
        bool | None,
        Field(
            description=(
                "attainment >= spec.slo.objective; absent when unknown or nothing was served."
            ),
        ),
    ] = None
    unknown_reason: Annotated[
        str | None,
        Field(
            alias="unknownReason",
            description=(
                "Why attainment is unknown: the engine exports no such histogram (llama.cpp), "
                "or no bucket bound is at or below the target."
            ),
        ),
    ] = None


class SLOStatus(_Model):
    """Observed attainment of spec.slo over the last hour (written at most every 5 minutes in
    steady state, like the time-based cost fields)."""

    since: Annotated[
        str,
        Field(
            description=(
                "Start of the window (RFC 3339): an hour before `until`, or later when the "
                "operator started leading less than an hour ago."
            ),
        ),
    ]
    until: Annotated[str, Field(description="End of the window (RFC 3339).")]
    ttft: Annotated[LatencySLOStatus, Field(description="Time to first token.")]
    tpot: Annotated[
        LatencySLOStatus | None,
        Field(description="Time per output token (only with spec.slo.tpotSeconds)."),
    ] = None


class AutoscalingStatus(_Model):
    """The autoscaler's current recommendation and what held the count away from it; written
    when one of them changes, not every interval."""

    recommendation: Annotated[
        int,
        Field(
            ge=0,
            description=(
                "Replicas the load asks for now, before windows, steps, bounds and budgets."
            ),
        ),
    ]
    replicas: Annotated[int, Field(ge=0, description="The count the autoscaler runs.")]
    held_by: Annotated[
        str | None,
        Field(
            alias="heldBy",
            description=(
                "The rule that kept the count from the recommendation: MissingData, "
                "LoadingReplicas, QueueAboveTarget, SLOBelowSetpoint, ScaleUpWindow, "
                "ScaleDownWindow, ObservingSinceStart, MaxScaleUpStep, MaxScaleDownStep, "
                "MaxReplicas, MinReplicas, Budget (docs/autoscaling.md); absent when the count "
                "is the recommendation."
            ),
        ),
    ] = None
    message: Annotated[
        str,
        Field(description="The decision in one line, with its numbers, as of `since`."),
    ] = ""
    since: Annotated[
        str | None,
        Field(description="When the recommendation or heldBy last changed (RFC 3339)."),
    ] = None


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(_Model):
    """A standard Kubernetes condition (metav1.Condition shape)."""

    type: Annotated[
        ConditionType,
        Field(description="Ready, Progressing, Degraded, BudgetLimited or MetricsUnavailable."),
    ]
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
    cost: Annotated[
        CostStatus | None,
        Field(description="USD per hour, spend, tokens, $/1M and the hosted-API comparison."),
    ] = None
    slo: Annotated[
        SLOStatus | None,
        Field(description="Attainment of spec.slo over the last hour, from engine histograms."),
    ] = None
    autoscaling: Annotated[
        AutoscalingStatus | None,
        Field(description="The autoscaler's recommendation and the rule holding the count."),
    ] = None
    cache: Annotated[
        weights.CacheStatus | None,
        Field(description="The weights cache: cached, downloading (bytes, percent) or failed."),
    ] = None
    conditions: Annotated[
        list[Condition],
        Field(
            description=(
                "Ready, Progressing, Degraded, BudgetLimited and MetricsUnavailable, with reasons."
            ),
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        ),
    ] = Field(default_factory=list)

    def condition(self, type_: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


# The name becomes the Service's name (a DNS-1035 label) and the endpoint's host: the API
# server accepts longer names and dots for the ModelDeployment itself, then refuses the Service.
NAME_MAX_LENGTH = 63
NAME_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_RULE_MESSAGE = (
    "metadata.name must be a DNS-1035 label: lowercase letters, digits and '-', starting with a "
    f"letter, ending with a letter or digit, at most {NAME_MAX_LENGTH} characters (it becomes "
    "the Service's name and the endpoint's host)"
)
ROOT_RULES: list[JsonValue] = [
    {
        **_cel(
            f"oldSelf.hasValue() || (size(self.metadata.name) <= {NAME_MAX_LENGTH} "
            f"&& self.metadata.name.matches('{NAME_PATTERN}'))",
            NAME_RULE_MESSAGE,
            ".metadata.name",
        ),
        # At creation only (names are immutable): an object created before this rule existed
        # can still take status and edits, so the operator can report it InvalidSpec.
        "optionalOldSelf": True,
    }
]


def valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX_LENGTH and re.fullmatch(NAME_PATTERN, name) is not None


class ObjectMeta(BaseModel):
    """The few metadata fields the operator reads."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    # RFC 3339; a namespace budget serves older deployments' minimums first
    creation_timestamp: str | None = Field(default=None, alias="creationTimestamp")

    @field_validator("name")
    @classmethod
    def _dns_1035_label(cls, name: str) -> str:
        """The CRD's root CEL rule, again, so an object from an older CRD is InvalidSpec."""
        if not valid_name(name):
            raise ValueError(NAME_RULE_MESSAGE)
        return name


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
