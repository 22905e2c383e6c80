"""Rendering a ModelDeployment into its Deployment and Service."""

from typing import Any

import pytest

from modelfleet.render.children import children, deployment, service
from tests.unit.factories import model_deployment


def engine_container(**spec: Any) -> dict[str, Any]:
    rendered = deployment(model_deployment(**spec))
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
    container = engine_container(engine=engine, gpu={"product": "NVIDIA-L4", "count": gpus})
    assert container["image"].startswith(image_prefix)
    for arg in expected_args:
        assert arg in container["args"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": str(gpus)}
    assert container["ports"][0]["containerPort"] == 8000
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"


def test_user_image_and_extra_args_come_last() -> None:
    container = engine_container(
        image="registry.local/vllm:patched", extraArgs=["--max-model-len=8192"]
    )
    assert container["image"] == "registry.local/vllm:patched"
    assert container["args"][-1] == "--max-model-len=8192"


def test_pods_land_on_the_gpu_product_and_tolerate_the_taint() -> None:
    rendered = deployment(model_deployment(gpu={"product": "NVIDIA-H200", "count": 8}, replicas=3))
    pod_spec = rendered["spec"]["template"]["spec"]
    assert rendered["spec"]["replicas"] == 3
    assert pod_spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec[
        "tolerations"
    ]
    shm = next(v for v in pod_spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}


def test_children_are_owned_and_selected_by_stable_labels() -> None:
    md = model_deployment()
    for child in children(md):
        owner = child["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "ModelDeployment",
            "qwen",
            "uid-1",
            True,
        )
        assert child["metadata"]["namespace"] == "team-a"
    dep = deployment(md)
    assert dep["spec"]["selector"]["matchLabels"] == {"modelfleet.dev/deployment": "qwen"}
    assert service(md)["spec"]["selector"] == {"modelfleet.dev/deployment": "qwen"}


def test_rendering_is_deterministic() -> None:
    assert children(model_deployment()) == children(model_deployment())


def test_rollout_never_removes_capacity_first() -> None:
    strategy = deployment(model_deployment())["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
