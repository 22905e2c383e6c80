"""Catalog lookups: models by id/alias (any case), GPUs by GFD, GKE and Karpenter label values."""

import pytest

from modelfleet.catalog import GPUCatalog, ModelArch, ModelCatalog, default_gpus, default_models
from modelfleet.catalog.gpus import (
    GFD_PRODUCT_LABEL,
    GKE_ACCELERATOR_LABEL,
    KARPENTER_GPU_NAME_LABEL,
)


@pytest.mark.parametrize(
    ("name", "model_id"),
    [
        ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-R1"),
        ("DEEPSEEK-AI/deepseek-r1", "deepseek-ai/DeepSeek-R1"),
        ("deepseek-r1", "deepseek-ai/DeepSeek-R1"),
        ("qwen2.5-72b", "Qwen/Qwen2.5-72B-Instruct"),
        ("Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-72B-Instruct"),
        ("llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct"),
        ("mistral-7b", "mistralai/Mistral-7B-Instruct-v0.3"),
        ("kimi-k2", "moonshotai/Kimi-K2-Instruct"),
        ("r1-distill-qwen-7b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"),
        (" qwen3-30b-a3b ", "Qwen/Qwen3-30B-A3B"),
    ],
)
def test_model_lookup(name: str, model_id: str) -> None:
    model = default_models().lookup(name)
    assert model is not None
    assert model.id == model_id


def test_unknown_model() -> None:
    assert default_models().lookup("acme/secret-model") is None


def test_catalog_covers_the_reference_models() -> None:
    assert len(default_models()) == 20
    r1 = default_models().lookup("deepseek-r1")
    assert r1 is not None and r1.mla is not None and r1.native_dtype == "fp8"


def test_conflicting_explicit_alias_is_refused() -> None:
    arch = {"params_b": 1, "layers": 1, "hidden": 64, "attention_heads": 1, "max_context": 8}
    with pytest.raises(ValueError, match="names both"):
        ModelCatalog(
            [
                ModelArch.model_validate({"id": "a/one", "aliases": ["x"], **arch}),
                ModelArch.model_validate({"id": "b/two", "aliases": ["x"], **arch}),
            ]
        )


def test_inline_architecture_accepts_camel_case() -> None:
    arch = ModelArch.model_validate(
        {
            "paramsB": 8,
            "layers": 32,
            "hidden": 4096,
            "attentionHeads": 32,
            "kvHeads": 8,
            "maxContext": 8192,
        }
    )
    # head_dim defaults to hidden / heads = 4096 / 32 = 128
    assert arch.effective_head_dim == 128
    assert arch.effective_kv_heads == 8


@pytest.mark.parametrize(
    ("key", "value", "memory_mib", "gpu"),
    [
        (GFD_PRODUCT_LABEL, "NVIDIA-L4", None, "L4"),
        (GFD_PRODUCT_LABEL, "nvidia-h100-80gb-hbm3", None, "H100-80GB"),
        (GFD_PRODUCT_LABEL, "NVIDIA-H200", None, "H200"),
        (GKE_ACCELERATOR_LABEL, "nvidia-tesla-a100", None, "A100-40GB"),
        (GKE_ACCELERATOR_LABEL, "nvidia-l4", None, "L4"),
        (KARPENTER_GPU_NAME_LABEL, "a10g", None, "A10G"),
        (KARPENTER_GPU_NAME_LABEL, "a100", 81920, "A100-80GB"),  # ambiguous: memory decides
        (KARPENTER_GPU_NAME_LABEL, "a100", 40960, "A100-40GB"),
        (GFD_PRODUCT_LABEL, "NVIDIA-Unknown-9000", None, None),
    ],
)
def test_gpu_by_label(key: str, value: str, memory_mib: int | None, gpu: str | None) -> None:
    found = default_gpus().by_label(key, value, memory_mib)
    assert (found.name if found else None) == gpu


def test_configurable_product_aliases() -> None:
    catalog = default_gpus().with_aliases({"NVIDIA-H100-SXM5-80GB": "H100-80GB"})
    found = catalog.by_label(GFD_PRODUCT_LABEL, "NVIDIA-H100-SXM5-80GB")
    assert found is not None and found.name == "H100-80GB"
    with pytest.raises(ValueError, match="unknown catalog GPU"):
        GPUCatalog(default_gpus().gpus, {"X": "NoSuchGPU"})


def test_spot_prices_are_not_invented() -> None:
    assert all(gpu.spot_price_usd_hour is None for gpu in default_gpus().gpus)
    l4 = default_gpus().by_name("L4")
    assert l4 is not None and l4.price_usd_hour == 0.70
