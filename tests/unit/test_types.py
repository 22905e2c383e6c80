"""Validation of ModelDeployment specs inside the operator mirrors the CRD's rules."""

from typing import Any

import pytest
from pydantic import ValidationError

from modelfleet.api.errors import describe
from modelfleet.api.types import ModelDeployment, ModelDeploymentSpec


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": "NVIDIA-L4"}}
    return {**base, **overrides}


def test_defaults() -> None:
    parsed = ModelDeploymentSpec.model_validate(spec())
    assert (parsed.engine, parsed.gpu.count, parsed.replicas, parsed.extra_args) == (
        "vllm",
        None,
        1,
        [],
    )


def test_gpu_defaults_to_automatic_placement() -> None:
    parsed = ModelDeploymentSpec.model_validate({"model": "deepseek-ai/DeepSeek-R1"})
    assert (parsed.gpu.product, parsed.gpu.count) == ("auto", None)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"model": ""}, "spec.model: String should have at least 1 character"),
        ({"engine": "tgi"}, "spec.engine: Input should be 'vllm', 'sglang' or 'llamacpp'"),
        ({"gpu": {"product": "NVIDIA-L4", "count": 9}}, "spec.gpu.count: Input should be less"),
        ({"gpu": {"product": "NVIDIA-L4", "count": 0}}, "spec.gpu.count: Input should be greater"),
        ({"gpu": {"product": "bad label!"}}, "spec.gpu.product: String should match pattern"),
        ({"gpu": {"product": ""}}, "spec.gpu.product: String should have at least 1 char"),
        ({"maxContextLength": 100}, "spec.maxContextLength: Input should be greater than"),
        ({"quantization": "int3"}, "spec.quantization: Input should be 'bf16'"),
        ({"replicas": -1}, "spec.replicas: Input should be greater than or equal to 0"),
        ({"gpus": 2}, "spec.gpus: Extra inputs are not permitted"),
        ({"gpu": {"product": "NVIDIA-L4", "count": 3}}, "gpu.count must be 1, 2, 4 or 8"),
        ({"extraArgs": ["--port=9000"]}, "extraArgs must not set"),
        ({"extraArgs": ["--tensor-parallel-size", "2"]}, "extraArgs must not set"),
    ],
)
def test_invalid_specs_name_the_field(overrides: dict[str, Any], expected: str) -> None:
    body = {"metadata": {"name": "m"}, "spec": spec(**overrides)}
    with pytest.raises(ValidationError) as caught:
        ModelDeployment.from_body(body)
    assert expected in describe(caught.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"engine": "llamacpp", "gpu": {"product": "NVIDIA-L4", "count": 3}},
        {"extraArgs": ["--max-model-len=8192", "--model-impl=vllm", "--tokenizer-mode=auto"]},
        {"replicas": 0},
    ],
)
def test_valid_edge_cases(overrides: dict[str, Any]) -> None:
    ModelDeploymentSpec.model_validate(spec(**overrides))


def test_status_ignores_foreign_fields() -> None:
    body = {
        "metadata": {"name": "m"},
        "spec": spec(),
        "status": {"readyReplicas": 1, "kopf": {"progress": {}}},
    }
    assert ModelDeployment.from_body(body).status.ready_replicas == 1
