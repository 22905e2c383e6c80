"""Engine settings as the engines ship them (issue 12): vLLM's batch defaults per GPU, fp8
prefill at the fp8 rate, the single-stream overhead fitted to TPOT, tensor-parallel all-reduces.
Public figures: ../shared/reference/engine-performance.md (sources in perf/engine.py)."""

from __future__ import annotations

import dataclasses

import pytest

from modelfleet.catalog.gpus import default_gpus
from modelfleet.perf.engine import (
    ReplicaEngine,
    Request,
    profile_for_placement,
    vllm_batch_defaults,
)

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [
        ("L4", (2048, 256)),
        ("L40S", (2048, 256)),
        ("A10G", (2048, 256)),
        ("A100-40GB", (2048, 256)),
        ("A100-80GB", (2048, 256)),  # >= 70 GiB, but vLLM names A100 among the small
        ("H100-80GB", (8192, 1024)),
        ("H200", (8192, 1024)),
        ("B200", (8192, 1024)),
    ],
)
def test_vllm_batch_defaults_follow_the_gpu(gpu: str, expected: tuple[int, int]) -> None:
    found = default_gpus().by_name(gpu)
    assert found is not None
    assert vllm_batch_defaults(found) == expected
    profile = profile_for_placement(LLAMA_8B, gpu, 1, quantization=None, max_context=8192)
    assert (profile.max_batched_tokens, profile.max_running) == expected


def ttft_alone(profile_gpu: str, gpus: int, quantization: str | None, prompt: int) -> float:
    model = "meta-llama/Llama-3.1-70B-Instruct" if gpus > 1 else LLAMA_8B
    profile = profile_for_placement(
        model, profile_gpu, gpus, quantization=quantization, max_context=8192
    )
    engine = ReplicaEngine(profile)
    engine.submit(Request("a", 0.0, prompt, 1))
    events = []
    while (t := engine.next_event_time()) is not None:
        events += engine.advance(t)
    return next(e.time for e in events if e.kind == "first_token")


def test_fp8_weights_prefill_at_the_fp8_rate_where_the_gpu_has_it() -> None:
    # H100 and L40S have fp8 tensor cores: an 8k prompt prefills about twice as fast.
    for gpu in ("NVIDIA-H100-80GB-HBM3", "NVIDIA-L40S"):
        bf16 = ttft_alone(gpu, 1, None, 8000)
        fp8 = ttft_alone(gpu, 1, "fp8", 8000)
        assert 1.7 <= bf16 / fp8 <= 2.1, gpu
    # A100 has none: fp8 weights save bytes, not FLOPs.
    a100 = ttft_alone("NVIDIA-A100-SXM4-80GB", 1, None, 8000)
    a100_fp8 = ttft_alone("NVIDIA-A100-SXM4-80GB", 1, "fp8", 8000)
    assert a100_fp8 == pytest.approx(a100, rel=0.1)


def test_70b_fp8_ttft_on_two_h100_near_the_nim_figure() -> None:
    # NVIDIA NIM Llama-3.3-70B page: 407 ms for 5,000 prompt tokens on 2x H100 fp8.
    assert 0.3 <= ttft_alone("NVIDIA-H100-80GB-HBM3", 2, "fp8", 5000) <= 0.55


@pytest.mark.parametrize(
    ("gpu", "quantization", "public_ms"),
    [
        ("NVIDIA-H100-80GB-HBM3", None, 6.48),  # yobitel InferenceBench, vLLM 0.21, p50 TPOT
        ("NVIDIA-A100-SXM4-40GB", None, 1000 / 75),  # public vLLM 0.23 sweep, 75 tok/s
        ("NVIDIA-H100-80GB-HBM3", "fp8", 4.63),  # NVIDIA NIM benchmarking page, v1.8.0
    ],
)
def test_single_stream_time_per_token_within_25_percent_of_public(
    gpu: str, quantization: str | None, public_ms: float
) -> None:
    profile = profile_for_placement(LLAMA_8B, gpu, 1, quantization=quantization, max_context=8192)
    model_ms = 1000 / profile.decode_tokens_per_s(1, 500)
    assert 0.8 <= model_ms / public_ms <= 1.25


def test_tensor_parallel_communication_costs_time_and_more_on_pcie() -> None:
    h100 = profile_for_placement(
        "meta-llama/Llama-3.1-70B-Instruct",
        "NVIDIA-H100-80GB-HBM3",
        4,
        quantization=None,
        max_context=8192,
    )
    l40s = profile_for_placement(
        "meta-llama/Llama-3.1-70B-Instruct",
        "NVIDIA-L40S",
        4,
        quantization=None,
        max_context=8192,
    )
    single = profile_for_placement(
        LLAMA_8B, "NVIDIA-H100-80GB-HBM3", 1, quantization=None, max_context=8192
    )
    assert single.tp_comm_seconds(64) == 0.0
    # Two all-reduces per layer (80 layers): at least 160 latencies, growing with tokens.
    assert h100.tp_comm_seconds(1) >= 160 * 10e-6
    assert h100.tp_comm_seconds(2048) > h100.tp_comm_seconds(1)
    assert l40s.tp_comm_seconds(256) > 3 * h100.tp_comm_seconds(256)
    # The step time includes it.
    without = dataclasses.replace(h100, tp_gpus=1)
    assert h100.step_seconds(64, 0, 64_000) == pytest.approx(
        without.step_seconds(64, 0, 64_000) + h100.tp_comm_seconds(64)
    )
