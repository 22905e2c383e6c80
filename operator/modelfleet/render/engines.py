"""One builder per inference engine: image, command line, port, probes and metric names.

Everything engine-specific lives here so the rest of the operator never branches on the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelfleet.api.types import Engine, ModelDeploymentSpec, PlacementStatus
from modelfleet.plan.memory import DEFAULT_UTILIZATION

ENGINE_PORT = 8000


@dataclass(frozen=True)
class EngineMetrics:
    """Prometheus names an engine exposes on /metrics, for the autoscaler and cost reports."""

    waiting: str
    running: str
    kv_cache_usage: str
    prompt_tokens: str
    generation_tokens: str
    # Latency histograms (base names, without _bucket), for SLO attainment; () when the engine
    # has none. Several names: the engine renamed it between releases, the first found counts.
    ttft: tuple[str, ...] = ()
    tpot: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineProfile:
    """How one engine is run in a container."""

    engine: Engine
    image: str
    health_path: str
    metrics_path: str
    metrics: EngineMetrics
    # Environment variables the engine reads a Hugging Face token from (spec.huggingFaceToken).
    token_env: tuple[str, ...] = ("HF_TOKEN",)
    # Host resources (render/resources.py): cores for the server process plus one worker per
    # GPU, and host memory of the runtime itself beside the weights and /dev/shm.
    cpu_base: int = 1
    cpu_per_gpu: int = 2
    host_overhead_gib: int = 4

    def command(self) -> list[str] | None:
        """Container command; None keeps the image's entrypoint."""
        if self.engine == Engine.SGLANG:
            return ["python3", "-m", "sglang.launch_server"]
        return None

    def args(
        self,
        spec: ModelDeploymentSpec,
        placement: PlacementStatus,
        model_path: str | None = None,
    ) -> list[str]:
        """Engine arguments: model, network, parallelism and sizing, then the user's extras.

        `model_path`: a directory holding the weights (a cache or a PVC); the engine loads it
        and still serves under spec.model. Without it, the engine downloads spec.model at
        spec.modelRevision from the Hub itself.

        A sizing flag the user already passes in extraArgs is left to them. An fp8 KV cache is
        vLLM's fp8, SGLang's fp8_e5m2 and llama.cpp's q8_0 for keys and values (8.5 bits a
        value: within the estimate's per-GPU overhead of one byte; llama.cpp quantizes V only
        with flash attention, which it turns on by itself on CUDA GPUs).
        """
        tp = placement.tensor_parallel
        context = placement.max_context_length
        quantization = placement.quantization if placement.quantized else None
        fp8_kv = placement.kv_cache_dtype == "fp8"
        if self.engine == Engine.VLLM:
            own = [
                f"--model={model_path or spec.model}",
                f"--served-model-name={spec.model}",
                "--host=0.0.0.0",
                f"--port={ENGINE_PORT}",
                f"--tensor-parallel-size={tp}",
            ]
            sizing = {
                "--max-model-len": context,
                "--gpu-memory-utilization": DEFAULT_UTILIZATION,
                "--quantization": quantization,
                "--kv-cache-dtype": "fp8" if fp8_kv else None,
            }
        elif self.engine == Engine.SGLANG:
            own = [
                f"--model-path={model_path or spec.model}",
                f"--served-model-name={spec.model}",
                "--host=0.0.0.0",
                f"--port={ENGINE_PORT}",
                f"--tp-size={tp}",
                "--enable-metrics",
            ]
            sizing = {
                "--context-length": context,
                "--mem-fraction-static": DEFAULT_UTILIZATION,
                "--quantization": quantization,
                "--kv-cache-dtype": "fp8_e5m2" if fp8_kv else None,
            }
        else:
            own = [
                f"--hf-repo={spec.model}",
                f"--alias={spec.model}",
                "--host=0.0.0.0",
                f"--port={ENGINE_PORT}",
                "--n-gpu-layers=999",
                "--metrics",
            ]
            sizing = {
                "--ctx-size": context,
                "--cache-type-k": "q8_0" if fp8_kv else None,
                "--cache-type-v": "q8_0" if fp8_kv else None,
            }
        if spec.model_revision and not model_path and self.engine != Engine.LLAMACPP:
            own.append(f"--revision={spec.model_revision}")
        given = {arg.split("=", 1)[0] for arg in spec.extra_args}
        own += [
            f"{flag}={value}"
            for flag, value in sizing.items()
            if value is not None and flag not in given
        ]
        return own + list(spec.extra_args)


# Every engine image, pinned by release (a floating tag would change engines under running
# deployments at the next pull). spec.image overrides one per deployment.
PROFILES: dict[Engine, EngineProfile] = {
    Engine.VLLM: EngineProfile(
        engine=Engine.VLLM,
        image="vllm/vllm-openai:v0.11.0",
        health_path="/health",
        metrics_path="/metrics",
        metrics=EngineMetrics(
            waiting="vllm:num_requests_waiting",
            running="vllm:num_requests_running",
            kv_cache_usage="vllm:kv_cache_usage_perc",
            prompt_tokens="vllm:prompt_tokens_total",
            generation_tokens="vllm:generation_tokens_total",
            ttft=("vllm:time_to_first_token_seconds",),
            # vLLM 0.11 calls it inter_token_latency; older releases time_per_output_token.
            tpot=("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
        ),
        # huggingface_hub reads HF_TOKEN; releases before 0.20 read only the older name.
        token_env=("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
    ),
    Engine.SGLANG: EngineProfile(
        engine=Engine.SGLANG,
        image="lmsysorg/sglang:v0.5.4",
        health_path="/health",
        metrics_path="/metrics",
        metrics=EngineMetrics(
            waiting="sglang:num_queue_reqs",
            running="sglang:num_running_reqs",
            kv_cache_usage="sglang:token_usage",
            prompt_tokens="sglang:prompt_tokens_total",
            generation_tokens="sglang:generation_tokens_total",
            ttft=("sglang:time_to_first_token_seconds",),
            tpot=("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"),
        ),
        token_env=("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
    ),
    Engine.LLAMACPP: EngineProfile(
        engine=Engine.LLAMACPP,
        # Build b9246 of the server image (the rolling server-cuda tag broke at b9282).
        image="ghcr.io/ggml-org/llama.cpp:server-cuda-b9246",
        health_path="/health",
        metrics_path="/metrics",
        metrics=EngineMetrics(
            waiting="llamacpp:requests_deferred",
            running="llamacpp:requests_processing",
            kv_cache_usage="llamacpp:kv_cache_usage_ratio",
            prompt_tokens="llamacpp:prompt_tokens_total",
            generation_tokens="llamacpp:tokens_predicted_total",
        ),
        # llama-server reads --hf-token's default from HF_TOKEN; a C++ server with the weights
        # on the GPUs needs fewer host cores and less runtime memory than a Python engine.
        cpu_per_gpu=1,
        host_overhead_gib=2,
    ),
}


# The weights downloader (render/cache.py): a pinned Python image, and the pinned release of the
# one tool each source needs, installed when the download pod starts (docs/cache.md).
DOWNLOADER_IMAGE = "python:3.12.11-slim-bookworm"
DOWNLOADER_TOOLS = {"huggingFace": "huggingface_hub==0.36.0", "s3": "awscli==1.42.76"}


def profile(engine: Engine | str) -> EngineProfile:
    return PROFILES[Engine(engine)]
