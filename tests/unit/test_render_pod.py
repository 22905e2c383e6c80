"""Rendering the pod-level fields: env and the Hugging Face token, resources, scheduling,
identity, security, and the PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modelfleet.api.errors import describe
from modelfleet.api.pod import canonical_quantity
from modelfleet.api.types import RESERVED_ENV, ModelDeployment
from modelfleet.render.children import children, deployment, disruption_budget, selector_labels
from modelfleet.render.engines import PROFILES
from modelfleet.render.resources import derived, weights_gib
from tests.unit.factories import model_deployment, placement

TOKEN = {"secretKeyRef": {"name": "hf", "key": "token"}}


def pod_of(where: Any = None, **spec: Any) -> dict[str, Any]:
    rendered = deployment(model_deployment(**spec), where or placement())
    pod: dict[str, Any] = rendered["spec"]["template"]["spec"]
    return pod


def container_of(where: Any = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = pod_of(where, **spec)["containers"][0]
    return container


@pytest.mark.parametrize(
    ("engine", "names"),
    [
        ("vllm", ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]),
        ("sglang", ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]),
        ("llamacpp", ["HF_TOKEN"]),
    ],
)
def test_the_token_is_a_secret_reference_under_each_name_the_engine_reads(
    engine: str, names: list[str]
) -> None:
    env = container_of(engine=engine, huggingFaceToken=TOKEN)["env"]
    tokens = [e for e in env if e["name"] in names]
    assert [e["name"] for e in tokens] == names
    for entry in tokens:
        assert entry == {
            "name": entry["name"],
            "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
        }
        assert "value" not in entry


def test_without_a_token_no_token_variable() -> None:
    names = {e["name"] for e in container_of()["env"]}
    assert names == {"HF_HOME"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([{"name": "A", "value": "1"}], [{"name": "A", "value": "1"}]),
        ([{"name": "EMPTY", "value": ""}], [{"name": "EMPTY", "value": ""}]),
        (
            [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        ),
        (
            [
                {
                    "name": "C",
                    "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k", "optional": True}},
                }
            ],
            [
                {
                    "name": "C",
                    "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k", "optional": True}},
                }
            ],
        ),
    ],
)
def test_user_env_comes_after_ours_as_given(
    given: list[dict[str, Any]], expected: list[dict[str, Any]]
) -> None:
    env = container_of(env=given, huggingFaceToken=TOKEN)["env"]
    assert env[: len(env) - len(expected)][0] == {"name": "HF_HOME", "value": "/models"}
    assert env[-len(expected) :] == expected


def test_env_from_is_passed_on() -> None:
    given = [{"secretRef": {"name": "s"}}, {"prefix": "X_", "configMapRef": {"name": "c"}}]
    assert container_of(envFrom=given)["envFrom"] == given
    assert "envFrom" not in container_of()


@pytest.mark.parametrize("name", RESERVED_ENV)
def test_modelfleets_names_cannot_be_overridden(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model_deployment(env=[{"name": name, "value": "x"}])
    assert describe(caught.value).startswith("spec.env: env must not set HF_HOME")


def test_every_variable_modelfleet_sets_is_reserved() -> None:
    """RESERVED_ENV (the validation) and the renderer must agree, for every engine."""
    for engine in PROFILES:
        env = container_of(engine=str(engine), huggingFaceToken=TOKEN)["env"]
        assert {e["name"] for e in env} <= set(RESERVED_ENV), engine


def test_the_token_reaches_no_other_field() -> None:
    """Only the Secret's name and key are rendered, and only in the token variables."""
    md = model_deployment(huggingFaceToken={"secretKeyRef": {"name": "hf-secret", "key": "k9"}})
    text = repr(children(md, placement()))
    assert text.count("hf-secret") == 2  # HF_TOKEN and HUGGING_FACE_HUB_TOKEN (vllm)


# Qwen2.5-7B-Instruct: 7.6B parameters, bf16: 14.2 GiB -> 15 GiB of weights.
@pytest.mark.parametrize(
    ("spec", "gpus", "requests", "limits"),
    [
        # vllm on 1 GPU: 15 weights + 8 shm + 4 runtime; 1 + 2 cores
        ({}, 1, {"cpu": "3", "memory": "27Gi"}, {"memory": "27Gi"}),
        # 2 GPUs: the same weights, twice the shm, two workers
        ({}, 2, {"cpu": "5", "memory": "35Gi"}, {"memory": "35Gi"}),
        # llama.cpp: 2 GiB runtime, 1 core per GPU
        ({"engine": "llamacpp"}, 1, {"cpu": "2", "memory": "25Gi"}, {"memory": "25Gi"}),
        # fp8 halves the weights: 8 GiB
        ({"quantization": "fp8"}, 1, {"cpu": "3", "memory": "20Gi"}, {"memory": "20Gi"}),
        # a model the catalog does not know, pinned: 16 GiB per GPU
        (
            {"model": "acme/private-model", "gpu": {"product": "NVIDIA-L4", "count": 2}},
            2,
            {"cpu": "5", "memory": "52Gi"},
            {"memory": "52Gi"},
        ),
        # overrides: each given value replaces the default; a memory request moves the limit
        (
            {"resources": {"requests": {"cpu": "8", "memory": "64Gi"}}},
            1,
            {"cpu": "8", "memory": "64Gi"},
            {"memory": "64Gi"},
        ),
        (
            {"resources": {"requests": {"memory": "16Gi"}}},
            1,
            {"cpu": "3", "memory": "16Gi"},
            {"memory": "16Gi"},
        ),
        # a limit alone caps the default request
        (
            {"resources": {"limits": {"cpu": "2", "memory": "20Gi"}}},
            1,
            {"cpu": "2", "memory": "20Gi"},
            {"cpu": "2", "memory": "20Gi"},
        ),
        # a limit above the default keeps the default request
        (
            {"resources": {"limits": {"cpu": "16", "memory": "128Gi"}}},
            1,
            {"cpu": "3", "memory": "27Gi"},
            {"cpu": "16", "memory": "128Gi"},
        ),
        # written as the API server stores them, so the watch sees the same text
        (
            {"resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}}},
            1,
            {"cpu": "500m", "memory": "1Gi"},
            {"memory": "1Gi"},
        ),
    ],
)
def test_cpu_and_memory(
    spec: dict[str, Any], gpus: int, requests: dict[str, str], limits: dict[str, str]
) -> None:
    where = placement(gpus=gpus, quantization=spec.get("quantization"))
    if spec.get("quantization"):
        where = where.model_copy(update={"quantized": True})
    resources = container_of(where, **spec)["resources"]
    assert resources["requests"] == {**requests, "nvidia.com/gpu": str(gpus)}
    assert resources["limits"] == {**limits, "nvidia.com/gpu": str(gpus)}


def test_gpus_are_never_the_users() -> None:
    with pytest.raises(ValidationError) as caught:
        model_deployment(resources={"limits": {"nvidia.com/gpu": "2"}})
    assert "spec.resources.limits.nvidia.com/gpu: Extra inputs" in describe(caught.value)


def test_inline_architecture_sizes_the_memory() -> None:
    from tests.architectures import PHI_4

    md = model_deployment(model="microsoft/phi-4", architecture=PHI_4)
    assert weights_gib(md, placement()) == 28  # 14.7B x 2 bytes
    assert derived(md, placement())["requests"]["memory"] == "40Gi"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0.5", "500m"),
        ("1.5", "1500m"),
        ("1000m", "1"),
        ("2000", "2k"),
        ("1500", "1500"),
        ("64G", "64G"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("1.5Gi", "1536Mi"),
        ("1024Gi", "1Ti"),
        ("512", "512"),
        ("0", "0"),
    ],
)
def test_quantities_are_written_as_the_api_server_stores_them(text: str, canonical: str) -> None:
    assert canonical_quantity(text) == canonical


def test_scheduling_fields_reach_the_pod() -> None:
    tolerations = [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
    ]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        },
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app": "x"}},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        },
    }
    pod = pod_of(
        tolerations=tolerations,
        affinity=affinity,
        priorityClassName="inference",
        imagePullSecrets=[{"name": "registry"}],
        serviceAccountName="engines",
    )
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        *tolerations,
    ]
    assert pod["affinity"] == affinity
    assert pod["priorityClassName"] == "inference"
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["serviceAccountName"] == "engines"
    assert pod["automountServiceAccountToken"] is False


def test_defaults_leave_optional_pod_fields_out() -> None:
    pod = pod_of()
    for field in ("affinity", "priorityClassName", "imagePullSecrets", "serviceAccountName"):
        assert field not in pod
    assert pod["automountServiceAccountToken"] is False
    assert pod_of(automountServiceAccountToken=True)["automountServiceAccountToken"] is True


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({}, {"nvidia.com/gpu.product": "NVIDIA-L4"}),
        (
            {"pool": "inference"},
            {"pool": "inference", "nvidia.com/gpu.product": "NVIDIA-L4"},
        ),
        # the placement's key wins: the planner counted GPUs of that product only
        ({"nvidia.com/gpu.product": "NVIDIA-H100"}, {"nvidia.com/gpu.product": "NVIDIA-L4"}),
    ],
)
def test_node_selector_is_merged_and_the_planners_key_wins(
    user: dict[str, str], expected: dict[str, str]
) -> None:
    assert pod_of(nodeSelector=user)["nodeSelector"] == expected


def test_a_bad_node_selector_key_is_the_operators_field_error() -> None:
    with pytest.raises(ValidationError) as caught:
        model_deployment(nodeSelector={"bad key!": "x"})
    assert describe(caught.value) == (
        "spec.nodeSelector: nodeSelector keys must be label keys (prefix/name)"
    )


def test_security_context_is_restrictive() -> None:
    pod = pod_of()
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


@pytest.mark.parametrize("engine", ["vllm", "sglang", "llamacpp"])
def test_every_engine_image_is_pinned(engine: str) -> None:
    image = container_of(engine=engine)["image"]
    name, _, tag = image.rpartition(":")
    assert name and tag and tag not in ("latest", "server-cuda", "main", "nightly"), image
    assert any(ch.isdigit() for ch in tag), image


def test_a_disruption_budget_per_deployment() -> None:
    md: ModelDeployment = model_deployment(replicas=3)
    budget = disruption_budget(md)
    assert budget["apiVersion"] == "policy/v1"
    assert budget["metadata"]["name"] == "qwen"
    assert budget["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert budget["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": selector_labels(md)},
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }
    assert [c["kind"] for c in children(md, placement())] == [
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ]
    # It selects exactly the engine pods.
    template = deployment(md, placement())["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= template.items()
