"""One table of ModelDeployments, each accepted or refused naming one field.

The CRD (schema limits and CEL rules) and the pydantic types (which restate them for the
operator and the offline commands) must give the same verdict for every row: the unit test runs
the table through pydantic, the integration test through the real API server. A refusal must
name `field` (as kubectl does: `spec.gpu.count`, `spec.extraArgs[0]`) with `words` in that
field's message on both sides, compared case-insensitively: the two phrase schema limits
differently, so `words` is what both say; CEL rule messages are the same text on both sides.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from modelfleet.api.errors import field_errors
from modelfleet.api.types import ModelDeployment
from tests.architectures import PHI_4

Problems = list[tuple[str, str]]  # (field, message) per problem; empty when accepted

NAME_WORDS = "DNS-1035 label"  # the CEL rule's message, restated by pydantic


@dataclass(frozen=True)
class Case:
    id: str
    spec: dict[str, Any]
    field: str | None = None  # None: accepted
    words: str = ""
    name: str = "md"

    def body(self) -> dict[str, Any]:
        return {
            "apiVersion": "modelfleet.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": self.name},
            "spec": self.spec,
        }


BASE: dict[str, Any] = {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": "NVIDIA-L4"}}


def _spec(**overrides: Any) -> dict[str, Any]:
    return {**BASE, **overrides}


def _arch(**overrides: Any) -> dict[str, Any]:
    return {**PHI_4, **overrides}


_SECRET_ENV: dict[str, Any] = {
    "name": "WANDB_API_KEY",
    "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "key"}},
}
_AFFINITY: dict[str, Any] = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["inference"]}]}
            ]
        }
    },
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 50,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"app": "x"}},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }
        ]
    },
}


def _named(id_: str, name: str, words: str | None = NAME_WORDS) -> Case:
    return Case(id_, BASE, None if words is None else "metadata.name", words or "", name=name)


CASES: list[Case] = [
    # metadata.name: a DNS-1035 label (it becomes the Service's name and the endpoint's host)
    _named("name-ok", "llama-31-8b", words=None),
    _named("name-one-letter", "a", words=None),
    _named("name-63", "a" * 63, words=None),
    _named("name-dots", "llama-3.1-8b"),
    _named("name-leading-digit", "3b-model"),
    _named("name-all-digits", "8"),
    _named("name-64", "a" * 64),
    # The API server's own object-name check (RFC 1123 subdomain) speaks first for these.
    _named("name-uppercase", "Llama", words="lowercase"),
    _named("name-trailing-dash", "model-", words="lowercase"),
    _named("name-underscore", "my_model", words="lowercase"),
    _named("name-254", "a" * 254, words="characters"),
    # schema limits
    Case("base-ok", BASE),
    Case("model-missing", {"gpu": {"product": "NVIDIA-L4"}}, "spec.model", "required"),
    Case("model-empty", _spec(model=""), "spec.model", "at least 1 char"),
    Case("model-257", _spec(model="m" * 257), "spec.model", "256"),
    Case("engine-unknown", _spec(engine="tgi"), "spec.engine", "llamacpp"),
    Case("engine-case", _spec(engine="VLLM"), "spec.engine", "llamacpp"),
    Case("gpu-count-9", _spec(gpu={"count": 9}), "spec.gpu.count", "less than or equal to 8"),
    Case("gpu-count-0", _spec(gpu={"count": 0}), "spec.gpu.count", "greater than or equal to 1"),
    Case("gpu-product-bad", _spec(gpu={"product": "bad label!"}), "spec.gpu.product", "match"),
    Case("gpu-product-empty", _spec(gpu={"product": ""}), "spec.gpu.product", "at least 1 char"),
    Case("gpu-product-64", _spec(gpu={"product": "L" * 64}), "spec.gpu.product", "63"),
    Case("gpu-product-63", _spec(gpu={"product": "L" * 63})),
    Case("gpu-auto", {"model": "Qwen/Qwen2.5-7B-Instruct"}),
    Case("context-255", _spec(maxContextLength=255), "spec.maxContextLength", "256"),
    Case("context-256", _spec(maxContextLength=256)),
    Case("quantization-int3", _spec(quantization="int3"), "spec.quantization", "gptq"),
    Case("kv-dtype-fp16", _spec(kvCacheDtype="fp16"), "spec.kvCacheDtype", "fp8"),
    Case("replicas-negative", _spec(replicas=-1), "spec.replicas", "greater than or equal to 0"),
    Case("replicas-1001", _spec(replicas=1001), "spec.replicas", "less than or equal to 1000"),
    Case("replicas-0", _spec(replicas=0)),
    Case("replicas-fraction", _spec(replicas=1.5), "spec.replicas", "integer"),
    Case("replicas-text", _spec(replicas="2"), "spec.replicas", "integer"),
    Case("replicas-bool", _spec(replicas=True), "spec.replicas", "integer"),
    Case("replicas-null", _spec(replicas=None)),  # the API server drops a null field
    Case("gpu-null", _spec(gpu=None)),
    Case("gpu-product-number", _spec(gpu={"product": 7}), "spec.gpu.product", "string"),
    Case("extra-arg-null", _spec(extraArgs=[None]), "spec.extraArgs[0]", "string"),
    Case("extra-arg-number", _spec(extraArgs=["--a", 1]), "spec.extraArgs[1]", "string"),
    Case("extra-arg-empty", _spec(extraArgs=[""])),
    Case("max-replicas-0", _spec(maxReplicas=0), "spec.maxReplicas", "greater than or equal to 1"),
    Case("unknown-field", _spec(gpus=2), "spec.gpus"),
    Case("unknown-nested-field", _spec(gpu={"product": "NVIDIA-L4", "type": "x"}), "spec.gpu.type"),
    Case("image-empty", _spec(image=""), "spec.image", "at least 1 char"),
    Case("extra-args-not-list", _spec(extraArgs="--x"), "spec.extraArgs"),
    Case("extra-args-65", _spec(extraArgs=["--x"] * 65), "spec.extraArgs", "64"),
    Case("extra-arg-1025", _spec(extraArgs=["x" * 1025]), "spec.extraArgs[0]", "1024"),
    Case(
        "kv-target-0",
        _spec(maxReplicas=2, autoscaling={"targetKVCacheUsage": 0}),
        "spec.autoscaling.targetKVCacheUsage",
        "greater than 0",
    ),
    Case(
        "kv-target-1.5",
        _spec(maxReplicas=2, autoscaling={"targetKVCacheUsage": 1.5}),
        "spec.autoscaling.targetKVCacheUsage",
        "less than or equal to 1",
    ),
    Case(
        "kv-target-text",
        _spec(maxReplicas=2, autoscaling={"targetKVCacheUsage": "0.5"}),
        "spec.autoscaling.targetKVCacheUsage",
        "number",
    ),
    Case("kv-target-1", _spec(maxReplicas=2, autoscaling={"targetKVCacheUsage": 1})),
    Case(
        "interval-0",
        _spec(maxReplicas=2, autoscaling={"intervalSeconds": 0}),
        "spec.autoscaling.intervalSeconds",
        "greater than or equal to 1",
    ),
    Case("slo-ok", _spec(slo={"ttftSeconds": 0.5, "tpotSeconds": 0.05, "objective": 0.95})),
    Case("slo-empty-ok", _spec(slo={})),
    Case("slo-ttft-0", _spec(slo={"ttftSeconds": 0}), "spec.slo.ttftSeconds", "greater than 0"),
    Case(
        "slo-objective-1.5",
        _spec(slo={"objective": 1.5}),
        "spec.slo.objective",
        "less than or equal to 1",
    ),
    Case("arch-ok", _spec(architecture=PHI_4, model="microsoft/phi-4")),
    Case(
        "arch-layers-0",
        _spec(architecture=_arch(layers=0)),
        "spec.architecture.layers",
        "greater than or equal to 1",
    ),
    Case(
        "arch-params-0",
        _spec(architecture=_arch(paramsB=0)),
        "spec.architecture.paramsB",
        "greater than 0",
    ),
    Case(
        "arch-no-max-context",
        _spec(architecture={k: v for k, v in PHI_4.items() if k != "maxContext"}),
        "spec.architecture.maxContext",
        "required",
    ),
    Case(
        "arch-max-context-null",
        _spec(architecture=_arch(maxContext=None)),
        "spec.architecture.maxContext",
        "required",
    ),
    Case(
        "arch-dtype-fp4",
        _spec(architecture=_arch(nativeDtype="fp4")),
        "spec.architecture.nativeDtype",
        "int4",
    ),
    Case(
        "mla-rank-0",
        _spec(architecture=_arch(mla={"kvLoraRank": 0, "qkRopeHeadDim": 64})),
        "spec.architecture.mla.kvLoraRank",
        "greater than or equal to 1",
    ),
    # CEL rules: the same message on both sides
    Case(
        "gpu-count-3-vllm",
        _spec(gpu={"count": 3}),
        "spec.gpu.count",
        "gpu.count must be 1, 2, 4 or 8",
    ),
    Case("gpu-count-3-llamacpp", _spec(engine="llamacpp", gpu={"count": 3})),
    Case("reserved-arg", _spec(extraArgs=["--port=9000"]), "spec.extraArgs", "must not set"),
    Case(
        "reserved-arg-split",
        _spec(extraArgs=["--tensor-parallel-size", "2"]),
        "spec.extraArgs",
        "must not set",
    ),
    Case("not-a-reserved-arg", _spec(extraArgs=["--portable", "--model-impl=vllm"])),
    Case(
        "kv-arg-with-kv-dtype",
        _spec(kvCacheDtype="fp8", extraArgs=["--kv-cache-dtype=fp8_e4m3"]),
        "spec.extraArgs",
        "when kvCacheDtype is set",
    ),
    Case("kv-arg-without-kv-dtype", _spec(extraArgs=["--kv-cache-dtype=fp8_e4m3"])),
    Case(
        "min-above-max",
        _spec(minReplicas=3, maxReplicas=2),
        "spec.minReplicas",
        "minReplicas must not exceed maxReplicas",
    ),
    Case("min-equals-max", _spec(minReplicas=2, maxReplicas=2)),
    Case("min-without-max", _spec(minReplicas=1), "spec.maxReplicas", "maxReplicas is set"),
    Case(
        "autoscaling-without-max",
        _spec(autoscaling={"intervalSeconds": 5}),
        "spec.maxReplicas",
        "maxReplicas is set",
    ),
    Case(
        "active-above-params",
        _spec(architecture=_arch(activeB=20)),
        "spec.architecture.activeB",
        "activeB must not exceed paramsB",
    ),
    Case(
        "kv-heads-above-heads",
        _spec(architecture=_arch(kvHeads=80)),
        "spec.architecture.kvHeads",
        "kvHeads must not exceed attentionHeads",
    ),
    Case(
        "kv-heads-not-dividing",
        _spec(architecture=_arch(kvHeads=3)),
        "spec.architecture.kvHeads",
        "attentionHeads must be a multiple of kvHeads",
    ),
    Case(
        "mla-ignores-kv-heads",
        _spec(architecture=_arch(kvHeads=3, mla={"kvLoraRank": 512, "qkRopeHeadDim": 64})),
    ),
    Case(
        "context-above-architecture",
        _spec(architecture=PHI_4, maxContextLength=32768),
        "spec.maxContextLength",
        "must not exceed architecture.maxContext",
    ),
    # gated models and secrets: env, envFrom, huggingFaceToken
    Case("env-ok", _spec(env=[{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}, _SECRET_ENV])),
    Case("env-empty-value", _spec(env=[{"name": "EMPTY", "value": ""}])),
    Case(
        "env-reserved",
        _spec(env=[{"name": "HF_TOKEN", "value": "hf_x"}]),
        "spec.env",
        "must not set HF_HOME",
    ),
    Case("env-hf-home", _spec(env=[{"name": "HF_HOME", "value": "/x"}]), "spec.env", "HF_HOME"),
    Case(
        "env-duplicate",
        _spec(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "spec.env",
        "env names must be unique",
    ),
    Case(
        "env-value-and-source",
        _spec(env=[{**_SECRET_ENV, "value": "x"}]),
        "spec.env[0].valueFrom",
        "value or valueFrom, not both",
    ),
    Case(
        "env-source-empty",
        _spec(env=[{"name": "X", "valueFrom": {}}]),
        "spec.env[0].valueFrom",
        "exactly one of secretKeyRef and configMapKeyRef",
    ),
    Case(
        "env-source-both",
        _spec(
            env=[
                {
                    "name": "X",
                    "valueFrom": {
                        "secretKeyRef": {"name": "s", "key": "k"},
                        "configMapKeyRef": {"name": "c", "key": "k"},
                    },
                }
            ]
        ),
        "spec.env[0].valueFrom",
        "exactly one of secretKeyRef and configMapKeyRef",
    ),
    Case("env-name-digit", _spec(env=[{"name": "1X", "value": "1"}]), "spec.env[0].name", "match"),
    Case(
        "env-secret-no-key",
        _spec(env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s"}}}]),
        "spec.env[0].valueFrom.secretKeyRef.key",
        "required",
    ),
    Case(
        "env-from-ok",
        _spec(
            envFrom=[{"secretRef": {"name": "s"}}, {"prefix": "X_", "configMapRef": {"name": "c"}}]
        ),
    ),
    Case(
        "env-from-empty",
        _spec(envFrom=[{"prefix": "A_"}]),
        "spec.envFrom[0]",
        "exactly one of secretRef and configMapRef",
    ),
    Case("hf-token-ok", _spec(huggingFaceToken={"secretKeyRef": {"name": "hf", "key": "token"}})),
    Case(
        "hf-token-no-key",
        _spec(huggingFaceToken={"secretKeyRef": {"name": "hf"}}),
        "spec.huggingFaceToken.secretKeyRef.key",
        "required",
    ),
    Case(
        "hf-token-bad-name",
        _spec(huggingFaceToken={"secretKeyRef": {"name": "HF_Token", "key": "token"}}),
        "spec.huggingFaceToken.secretKeyRef.name",
        "match",
    ),
    Case(
        "hf-token-plain",
        _spec(huggingFaceToken="hf_x"),
        "spec.huggingFaceToken",  # "must be of type object" / "a valid dictionary"
    ),
    # pod hygiene: resources, scheduling, identity
    Case("resources-ok", _spec(resources={"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}})),
    Case(
        "resources-memory-ok",
        _spec(resources={"requests": {"memory": "1Gi"}, "limits": {"memory": "1024Mi"}}),
    ),
    Case(
        "resources-gpu",
        _spec(resources={"limits": {"nvidia.com/gpu": "1"}}),
        "spec.resources.limits.nvidia.com/gpu",
    ),
    Case(
        "resources-bad-quantity",
        _spec(resources={"requests": {"cpu": "four"}}),
        "spec.resources.requests.cpu",
        "match",
    ),
    Case(
        "resources-int",
        _spec(resources={"requests": {"cpu": 4}}),
        "spec.resources.requests.cpu",
        "string",
    ),
    Case(
        "resources-memory-request-above-limit",
        _spec(resources={"requests": {"memory": "64Gi"}, "limits": {"memory": "32Gi"}}),
        "spec.resources.requests.memory",
        "requests.memory must not exceed limits.memory",
    ),
    Case(
        "resources-cpu-request-above-limit",
        _spec(resources={"requests": {"cpu": "1500m"}, "limits": {"cpu": "1"}}),
        "spec.resources.requests.cpu",
        "requests.cpu must not exceed limits.cpu",
    ),
    Case(
        "tolerations-ok",
        _spec(
            tolerations=[
                {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
                {"operator": "Exists"},
            ]
        ),
    ),
    Case(
        "toleration-exists-value",
        _spec(tolerations=[{"key": "a", "operator": "Exists", "value": "b"}]),
        "spec.tolerations[0].value",
        "operator Exists takes no value",
    ),
    Case(
        "toleration-effect",
        _spec(tolerations=[{"key": "a", "effect": "Never"}]),
        "spec.tolerations[0].effect",
        "NoExecute",
    ),
    Case("node-selector-ok", _spec(nodeSelector={"topology.kubernetes.io/zone": "us-east-1a"})),
    # (keys are the operator's check: tests/unit/test_types.py)
    Case("node-selector-bad-value", _spec(nodeSelector={"pool": "a b"}), "spec.nodeSelector.pool"),
    Case(
        "node-selector-long-value",
        _spec(nodeSelector={"pool": "a" * 64}),
        "spec.nodeSelector.pool",
        "63",
    ),
    Case("affinity-ok", _spec(affinity=_AFFINITY)),
    Case(
        "affinity-no-topology-key",
        _spec(
            affinity={
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {}}]
                }
            }
        ),
        "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
        ".topologyKey",
        "required",
    ),
    Case(
        "affinity-weight-0",
        _spec(
            affinity={
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 0, "preference": {}}
                    ]
                }
            }
        ),
        "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
        "greater than or equal to 1",
    ),
    Case(
        "affinity-operator",
        _spec(
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "a", "operator": "Is"}]}
                        ]
                    }
                }
            }
        ),
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0].operator",
        "DoesNotExist",
    ),
    Case(
        "identity-ok",
        _spec(
            priorityClassName="inference-high",
            serviceAccountName="engines",
            automountServiceAccountToken=True,
            imagePullSecrets=[{"name": "registry"}],
        ),
    ),
    Case(
        "priority-class-bad",
        _spec(priorityClassName="High"),
        "spec.priorityClassName",
        "match",
    ),
    Case(
        "automount-text",
        _spec(automountServiceAccountToken="false"),
        "spec.automountServiceAccountToken",
        "boolean",
    ),
    Case(
        "pull-secret-no-name",
        _spec(imagePullSecrets=[{}]),
        "spec.imagePullSecrets[0].name",
        "required",
    ),
    # The weights cache and model sources (api/cache.py, docs/cache.md).
    Case("cache-shared-ok", _spec(modelRevision="a1b2c3d", cache={"size": "40Gi"})),
    Case("cache-per-node-ok", _spec(cache={"mode": "PerNode", "nodePath": "/mnt/nvme/w"})),
    Case(
        "source-s3-ok",
        _spec(
            source={
                "s3": {
                    "url": "s3://models/qwen-7b",
                    "endpoint": "http://minio.storage:9000",
                    "credentialsSecret": {"name": "s3-keys"},
                }
            },
            cache={"size": "40Gi", "storageClassName": "nfs"},
        ),
    ),
    Case("source-pvc-ok", _spec(source={"pvc": {"claimName": "models", "path": "qwen/7b"}})),
    Case("revision-bad", _spec(modelRevision="-x y"), "spec.modelRevision", "match"),
    Case(
        "s3-without-cache",
        _spec(source={"s3": {"url": "s3://models/qwen"}}),
        "spec.source",
        "source.s3 needs cache",
    ),
    Case(
        "pvc-with-cache",
        _spec(source={"pvc": {"claimName": "models"}}, cache={"size": "40Gi"}),
        "spec.cache",
        "source.pvc is mounted as it is",
    ),
    Case(
        "llamacpp-cache",
        _spec(engine="llamacpp", cache={"size": "40Gi"}),
        "spec.engine",
        "need engine vllm or sglang",
    ),
    Case(
        "two-sources",
        _spec(source={"huggingFace": {}, "pvc": {"claimName": "models"}}),
        "spec.source",
        "at most one of",
    ),
    Case("shared-cache-no-size", _spec(cache={}), "spec.cache.size", "cache.size is required"),
    Case(
        "pvc-path-escapes",
        _spec(source={"pvc": {"claimName": "models", "path": "../etc"}}),
        "spec.source.pvc.path",
        "match",
    ),
    Case(
        "s3-url-bad",
        _spec(source={"s3": {"url": "https://bucket"}}, cache={"size": "1Gi"}),
        "spec.source.s3.url",
        "match",
    ),
]


def pydantic_problems(body: dict[str, Any]) -> Problems:
    """What the operator (ModelDeployment.from_body) says about `body`."""
    try:
        ModelDeployment.from_body(body)
    except ValidationError as error:
        return [(field, message) for field, _, message in map(_split, field_errors(error))]
    return []


def _split(line: str) -> tuple[str, str, str]:
    return line.partition(": ")


def api_problems(status_body: str) -> Problems:
    """What the API server said in a refusal (a Status), per field; `<nil>` causes dropped."""
    status = json.loads(status_body)
    causes = (status.get("details") or {}).get("causes") or []
    found = [
        (str(c.get("field", "")).lstrip("."), str(c.get("message", "")))
        for c in causes
        if c.get("field") not in (None, "", "<nil>")
    ]
    unknown = re.findall(r'unknown field "([^"]+)"', str(status.get("message", "")))
    return found + [(field, status["message"]) for field in unknown]


def mismatch(case: Case, problems: Problems) -> str | None:
    """Why `problems` is not the table's verdict for `case`; None when it is."""
    if case.field is None:
        return None if not problems else f"accepted in the table, refused with {problems}"
    messages = [message for field, message in problems if field == case.field]
    if not messages:
        return f"{case.field} not named in {problems}"
    if not any(case.words.lower() in message.lower() for message in messages):
        return f"{case.field} named without {case.words!r}: {messages}"
    return None
