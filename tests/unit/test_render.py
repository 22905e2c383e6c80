"""Rendering a ModelDeployment into its Deployment and Service."""

from typing import Any

import pytest

from modelfleet.api.types import PlacementStatus
from modelfleet.render.children import children, deployment, service
from tests.unit.factories import model_deployment, placement


def engine_container(where: PlacementStatus | None = None, **spec: Any) -> dict[str, Any]:
    rendered = deployment(model_deployment(**spec), where or placement())
    container: dict[str, Any] = rendered["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize(
    ("engine", "gpus", "image_prefix", "expected_args"),
    [
        (
            "vllm",
            1,
            "vllm/vllm-openai:",
            ["--model=Qwen/Qwen2.5-7B-Instruct", "--port=8000", "--tensor-parallel-size=1"],
        ),
        ("vllm", 4, "vllm/vllm-openai:", ["--tensor-parallel-size=4"]),
        (
            "sglang",
            2,
            "lmsysorg/sglang:",
            ["--model-path=Qwen/Qwen2.5-7B-Instruct", "--tp-size=2", "--enable-metrics"],
        ),
        (
            "llamacpp",
            3,
            "ghcr.io/ggml-org/llama.cpp:",
            ["--hf-repo=Qwen/Qwen2.5-7B-Instruct", "--port=8000", "--metrics"],
        ),
    ],
)
def test_engine_container(
    engine: str, gpus: int, image_prefix: str, expected_args: list[str]
) -> None:
    container = engine_container(placement(gpus=gpus), engine=engine)
    assert container["image"].startswith(image_prefix)
    for arg in expected_args:
        assert arg in container["args"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
    assert container["resources"]["requests"]["nvidia.com/gpu"] == str(gpus)
    assert container["ports"][0]["containerPort"] == 8000
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"


def test_user_image_and_extra_args_come_last() -> None:
    container = engine_container(
        image="registry.local/vllm:patched", extraArgs=["--max-model-len=8192"]
    )
    assert container["image"] == "registry.local/vllm:patched"
    assert container["args"][-1] == "--max-model-len=8192"


@pytest.mark.parametrize(
    ("label", "product"),
    [
        ("nvidia.com/gpu.product", "NVIDIA-H200"),
        ("cloud.google.com/gke-accelerator", "nvidia-h200-141gb"),
    ],
)
def test_pods_land_on_the_placed_gpu_and_tolerate_the_taint(label: str, product: str) -> None:
    where = placement(product, 8, gpu_label=label)
    rendered = deployment(model_deployment(replicas=3), where)
    pod_spec = rendered["spec"]["template"]["spec"]
    assert rendered["spec"]["replicas"] == 3
    assert pod_spec["nodeSelector"] == {label: product}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec[
        "tolerations"
    ]
    shm = next(v for v in pod_spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}


def test_children_are_owned_and_selected_by_stable_labels() -> None:
    md = model_deployment()
    for child in children(md, placement()):
        owner = child["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "ModelDeployment",
            "qwen",
            "uid-1",
            True,
        )
        assert child["metadata"]["namespace"] == "team-a"
    dep = deployment(md, placement())
    assert dep["spec"]["selector"]["matchLabels"] == {"modelfleet.dev/deployment": "qwen"}
    assert service(md)["spec"]["selector"] == {"modelfleet.dev/deployment": "qwen"}


def test_rendering_is_deterministic() -> None:
    assert children(model_deployment(), placement()) == children(model_deployment(), placement())


def test_rollout_never_removes_capacity_first() -> None:
    strategy = deployment(model_deployment(), placement())["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ("vllm", ["--max-model-len=32768", "--gpu-memory-utilization=0.9", "--quantization=fp8"]),
        ("sglang", ["--context-length=32768", "--mem-fraction-static=0.9", "--quantization=fp8"]),
        ("llamacpp", ["--ctx-size=32768"]),
    ],
)
def test_placement_sizes_the_engine(engine: str, expected: list[str]) -> None:
    where = placement(max_context_length=32768, quantization="fp8", quantized=True)
    args = engine_container(where, engine=engine)["args"]
    for arg in expected:
        assert arg in args


def test_published_weights_are_not_requantized() -> None:
    where = placement(quantization="bf16", quantized=False)
    assert not [a for a in engine_container(where)["args"] if a.startswith("--quantization")]


def test_sizing_flags_the_user_passes_win() -> None:
    where = placement(max_context_length=131072)
    args = engine_container(where, extraArgs=["--max-model-len=8192"])["args"]
    assert [a for a in args if a.startswith("--max-model-len")] == ["--max-model-len=8192"]


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ("vllm", ["--kv-cache-dtype=fp8"]),
        ("sglang", ["--kv-cache-dtype=fp8_e5m2"]),
        ("llamacpp", ["--cache-type-k=q8_0", "--cache-type-v=q8_0"]),
    ],
)
def test_an_fp8_kv_cache_becomes_the_engines_flags(engine: str, expected: list[str]) -> None:
    kv_flags = ("--kv-cache-dtype", "--cache-type-k", "--cache-type-v")
    fp8 = engine_container(placement(kv_cache_dtype="fp8"), engine=engine, kvCacheDtype="fp8")
    assert [a for a in fp8["args"] if a.startswith(kv_flags)] == expected
    auto = engine_container(placement(kv_cache_dtype="auto"), engine=engine)
    assert not [a for a in auto["args"] if a.startswith(kv_flags)]


def test_a_kv_cache_flag_in_extra_args_is_passed_once() -> None:
    # no kvCacheDtype field: the planner counted the user's flag as fp8, the user's value stays
    where = placement(kv_cache_dtype="fp8")
    args = engine_container(where, extraArgs=["--kv-cache-dtype", "fp8_e4m3"])["args"]
    assert [a for a in args if a.startswith("--kv-cache-dtype")] == ["--kv-cache-dtype"]
    assert args[-2:] == ["--kv-cache-dtype", "fp8_e4m3"]
