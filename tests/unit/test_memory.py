"""The memory model against hand-computed cases. GiB = 2**30 bytes."""

import pytest

from modelfleet.catalog import ModelArch, default_models
from modelfleet.catalog.gpus import GIB, MIB
from modelfleet.plan.memory import (
    estimate,
    kv_bytes_per_token,
    tensor_parallel_problem,
    weights_bytes,
)
from modelfleet.plan.throughput import roofline, usd_per_million_tokens

H100_MIB = 81559  # nvidia.com/gpu.memory on an H100 80GB HBM3
H200_MIB = 143771
L4_MIB = 23034


def arch(name: str) -> ModelArch:
    found = default_models().lookup(name)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("model", "quantization", "expected_bytes"),
    [
        ("deepseek-r1", None, 671e9 * 1),  # published fp8: 1 B/param
        ("deepseek-r1", "awq", 671e9 * 0.5 * 1.1),  # int4 + 10% scales = 369.05e9
        ("deepseek-r1", "bf16", 671e9 * 2),
        ("qwen2.5-72b", None, 72.7e9 * 2),  # bf16
        ("qwen2.5-72b", "fp8", 72.7e9),
        ("qwen2.5-72b", "int8", 72.7e9),
        ("qwen2.5-72b", "gptq", 72.7e9 * 0.55),
        # MoE: all 30.5B parameters are held, not the 3.3B active ones: 61e9 B
        ("qwen3-30b-a3b", None, 30.5e9 * 2),
        ("qwen3-235b-a22b", None, 235e9 * 2),
    ],
)
def test_weights(model: str, quantization: str | None, expected_bytes: float) -> None:
    assert weights_bytes(arch(model), quantization) == pytest.approx(expected_bytes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "kv_dtype", "expected"),
    [
        # GQA: 2 x 28 layers x 4 kv heads x 128 head_dim x 2 B = 57,344 B/token
        ("r1-distill-qwen-7b", "auto", 57_344),
        # GQA: 2 x 80 x 8 x 128 x 2 = 327,680
        ("qwen2.5-72b", "auto", 327_680),
        ("qwen2.5-72b", "fp8", 163_840),
        # MLA: 61 layers x (512 + 64) x 2 B = 70,272 (not 2 x 61 x 128 heads x 128 x 2)
        ("deepseek-r1", "auto", 70_272),
    ],
)
def test_kv_per_token(model: str, kv_dtype: str, expected: int) -> None:
    assert kv_bytes_per_token(arch(model), kv_dtype) == expected  # type: ignore[arg-type]


def test_mha_head_dim_defaults_to_hidden_over_heads() -> None:
    mha = ModelArch(params_b=7, layers=32, hidden=4096, attention_heads=32, max_context=4096)
    # 2 x 32 layers x 32 kv heads (= heads) x 128 (= 4096 / 32) x 2 B = 524,288
    assert kv_bytes_per_token(mha) == 524_288


@pytest.mark.parametrize(
    ("model", "context", "gpus", "gpu_mib", "fits", "needed_gib", "capacity_gib"),
    [
        # DeepSeek-R1 fp8 at its full 163,840 context:
        #   weights 671e9 B = 624.93 GiB; KV 70,272 x 163,840 = 10.72 GiB; overhead 8 x 1.5 = 12
        #   needed 647.65 GiB. 8x H100: 8 x 81,559 MiB x 0.9 = 573.46 GiB -> does not fit.
        ("deepseek-r1", 163_840, 8, H100_MIB, False, 647.65, 573.46),
        #   8x H200: 8 x 143,771 MiB x 0.9 = 1010.88 GiB -> fits.
        ("deepseek-r1", 163_840, 8, H200_MIB, True, 647.65, 1010.88),
        # R1-Distill-Qwen-7B bf16 at 32k on one L4:
        #   weights 7.6e9 x 2 = 14.156 GiB; KV 57,344 x 32,768 = 1.75 GiB; overhead 1.5
        #   needed 17.41 GiB <= 23,034 MiB x 0.9 = 20.24 GiB -> fits.
        ("r1-distill-qwen-7b", 32_768, 1, L4_MIB, True, 17.41, 20.24),
        #   at its full 131,072 context the KV is 7.0 GiB: needed 22.66 GiB -> does not fit.
        ("r1-distill-qwen-7b", 131_072, 1, L4_MIB, False, 22.66, 20.24),
    ],
)
def test_feasibility(
    model: str,
    context: int,
    gpus: int,
    gpu_mib: int,
    fits: bool,
    needed_gib: float,
    capacity_gib: float,
) -> None:
    memory = estimate(arch(model), gpus=gpus, gpu_memory_bytes=gpu_mib * MIB, max_context=context)
    assert memory.fits is fits
    assert memory.needed / GIB == pytest.approx(needed_gib, abs=0.01)
    assert memory.capacity / GIB == pytest.approx(capacity_gib, abs=0.01)


def test_fp8_kv_cache_halves_the_kv_and_fits_the_full_context_on_one_l4() -> None:
    model = arch("r1-distill-qwen-7b")
    l4 = {"gpus": 1, "gpu_memory_bytes": L4_MIB * MIB, "max_context": 131_072}
    auto = estimate(model, **l4)  # type: ignore[arg-type]
    fp8 = estimate(model, kv_cache_dtype="fp8", **l4)  # type: ignore[arg-type]
    # KV 57,344 B/token x 131,072 = 7.0 GiB in bf16, 3.5 GiB in fp8; weights unchanged
    assert (auto.kv_cache / GIB, fp8.kv_cache / GIB) == (7.0, 3.5)
    assert fp8.weights == auto.weights
    # 14.156 + 3.5 + 1.5 = 19.16 GiB <= 20.24 GiB: one L4 holds the 128k context in fp8 only
    assert not auto.fits
    assert fp8.fits and fp8.needed / GIB == pytest.approx(19.16, abs=0.01)


@pytest.mark.parametrize(
    ("model", "gpus", "problem"),
    [
        ("r1-distill-qwen-7b", 1, None),
        ("r1-distill-qwen-7b", 4, None),  # 28 heads / 4, 4 kv heads / 4
        ("r1-distill-qwen-7b", 8, "tensor parallel 8 does not divide 28 attention heads"),
        ("qwen3-235b-a22b", 8, None),  # 64 heads; 4 kv heads replicated twice (8 % 4 == 0)
        ("deepseek-r1", 8, None),  # MLA: heads only
    ],
)
def test_tensor_parallel(model: str, gpus: int, problem: str | None) -> None:
    assert tensor_parallel_problem(arch(model), gpus) == problem


def test_kv_heads_must_split_sensibly() -> None:
    odd = ModelArch(params_b=1, layers=2, hidden=768, attention_heads=12, kv_heads=6, max_context=8)
    # 12 heads / 4 is fine, but 6 kv heads neither divide by 4 nor divide 4
    assert tensor_parallel_problem(odd, 4) == "tensor parallel 4 cannot split 6 KV heads evenly"


def test_roofline_is_monotone_in_bandwidth_and_prices_tokens() -> None:
    from modelfleet.catalog import default_gpus

    l4 = default_gpus().by_name("L4")
    assert l4 is not None
    model = arch("r1-distill-qwen-7b")
    memory = estimate(model, gpus=1, gpu_memory_bytes=L4_MIB * MIB, max_context=32_768)
    rates = [
        roofline(
            model, l4.model_copy(update={"bandwidth_gbs": bw}), memory, max_context=32_768
        ).decode_tokens_per_s
        for bw in (100, 300, 1000, 3000, 10_000)
    ]
    assert rates == sorted(rates)
    # $0.70/h at 1000 tokens/s: 0.70 / 3.6e6 x 1e6 = $0.1944 per 1M tokens
    assert usd_per_million_tokens(0.70, 1000) == pytest.approx(0.19444, rel=1e-4)
