"""Validation of ModelDeployment specs inside the operator mirrors the CRD's rules."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modelfleet.api.errors import describe
from modelfleet.api.types import ModelDeployment, ModelDeploymentSpec
from tests.architectures import PHI_4 as ARCH


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
        ({"kvCacheDtype": "fp16"}, "spec.kvCacheDtype: Input should be 'auto' or 'fp8'"),
        (
            {"kvCacheDtype": "fp8", "extraArgs": ["--kv-cache-dtype=fp8_e4m3"]},
            "extraArgs must not set --kv-cache-dtype, --cache-type-k, --cache-type-v, -ctk, -ctv "
            "when kvCacheDtype is set",
        ),
        (
            {"kvCacheDtype": "auto", "extraArgs": ["--kv-cache-dtype", "fp8"]},
            "when kvCacheDtype is set",
        ),
        (
            {"engine": "llamacpp", "kvCacheDtype": "fp8", "extraArgs": ["-ctk", "q4_0"]},
            "when kvCacheDtype is set",
        ),
        ({"architecture": {**ARCH, "layers": 0}}, "spec.architecture.layers: Input should be"),
        ({"architecture": {**ARCH, "paramsB": 0}}, "spec.architecture.paramsB: Input should be"),
        (
            {"architecture": {**ARCH, "maxContext": None}},
            "spec.architecture.maxContext: Field required",
        ),
        ({"architecture": {**ARCH, "nativeDtype": "fp4"}}, "spec.architecture.nativeDtype:"),
        ({"architecture": {**ARCH, "params": 14}}, "spec.architecture.params: Extra inputs"),
        (
            {"architecture": {**ARCH, "activeB": 20}},
            "spec.architecture.activeB: activeB must not exceed paramsB",
        ),
        (
            {"architecture": {**ARCH, "kvHeads": 80}},
            "spec.architecture.kvHeads: kvHeads must not exceed attentionHeads",
        ),
        (
            {"architecture": {**ARCH, "kvHeads": 3}},
            "spec.architecture.kvHeads: attentionHeads must be a multiple of kvHeads",
        ),
        (
            {"architecture": {**ARCH, "mla": {"kvLoraRank": 0, "qkRopeHeadDim": 64}}},
            "spec.architecture.mla.kvLoraRank: Input should be greater than or equal to 1",
        ),
        (
            {"architecture": ARCH, "maxContextLength": 32768},
            "maxContextLength must not exceed architecture.maxContext",
        ),
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
        # without the field, the engine flag is the user's (the planner reads it)
        {"extraArgs": ["--kv-cache-dtype=fp8_e4m3"]},
        {"kvCacheDtype": "fp8", "extraArgs": ["--kv-cache-dtype-foo=1"]},
        {"architecture": ARCH, "maxContextLength": 16384},
        # MLA: kvHeads are not used, so they are not checked against the heads either
        {"architecture": {**ARCH, "kvHeads": 3, "mla": {"kvLoraRank": 512, "qkRopeHeadDim": 64}}},
        {"architecture": {**ARCH, "paramsB": 30.5, "activeB": 3.3, "nativeDtype": "fp8"}},
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


def test_inline_architecture_and_kv_cache_dtype_round_trip_in_camel_case() -> None:
    parsed = ModelDeploymentSpec.model_validate(spec(architecture=ARCH, kvCacheDtype="fp8"))
    assert parsed.architecture is not None
    assert (parsed.architecture.params_b, parsed.architecture.kv_heads) == (14.7, 10)
    assert parsed.kv_cache_dtype == "fp8"
    dumped = parsed.model_dump(by_alias=True, exclude_none=True)
    assert dumped["architecture"] == {**ARCH, "nativeDtype": "bf16"}
    assert dumped["kvCacheDtype"] == "fp8"
    assert ModelDeploymentSpec.model_validate(spec()).kv_cache_dtype is None  # auto


SAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests" / "samples").glob("*.yaml"))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_samples_are_valid(path: Path) -> None:
    ModelDeployment.from_body(yaml.safe_load(path.read_text()))
