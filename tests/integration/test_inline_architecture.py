"""Right-sizing on a real control plane: a model given by inline architecture, an fp8 KV cache."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.architectures import PHI_4
from tests.integration.operator_fixtures import ModelDeployments, wait_until

pytestmark = pytest.mark.integration

L4 = "NVIDIA-L4"


def engine_pods(api: Any, namespace: str, name: str) -> list[Any]:
    core: Any = client.CoreV1Api(api)
    return list(
        core.list_namespaced_pod(
            namespace, label_selector=f"modelfleet.dev/deployment={name}"
        ).items
    )


def test_a_model_given_inline_is_placed_and_its_pods_scheduled(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    spec = {"model": "microsoft/phi-4", "architecture": PHI_4, "kvCacheDtype": "fp8"}
    mds.create(namespace, "phi-4", spec)

    wait_until(
        lambda: mds.condition(namespace, "phi-4", "Ready").get("status") == "True",
        60,
        "phi-4 Ready",
    )
    placement = mds.get(namespace, "phi-4")["status"]["placement"]
    # 27.4 GiB of bf16 weights + 1.6 GiB fp8 KV (16k tokens) + 2 x 1.5 overhead: 2x L4 ($1.40/h)
    # is the cheapest that holds it; one L4 (20 GiB usable) does not.
    assert (placement["gpuProduct"], placement["gpusPerReplica"]) == (L4, 2)
    assert (placement["maxContextLength"], placement["kvCacheDtype"]) == (16384, "fp8")
    assert placement["estimatedMemoryGiB"] == 31.9
    assert "not in the catalog" not in placement["message"]

    core: Any = client.CoreV1Api(api)
    [pod] = engine_pods(api, namespace, "phi-4")
    assert pod.spec.node_name
    assert core.read_node(pod.spec.node_name).metadata.labels["nvidia.com/gpu.product"] == L4
    engine = pod.spec.containers[0]
    assert engine.resources.limits["nvidia.com/gpu"] == "2"
    assert {"--tensor-parallel-size=2", "--max-model-len=16384", "--kv-cache-dtype=fp8"} <= set(
        engine.args
    )


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        (
            {"kvCacheDtype": "fp8", "extraArgs": ["--kv-cache-dtype=fp8_e4m3"]},
            "spec.extraArgs",
            "must not set --kv-cache-dtype, --cache-type-k, --cache-type-v, -ctk, -ctv when "
            "kvCacheDtype is set",
        ),
        (
            {"kvCacheDtype": "auto", "extraArgs": ["--kv-cache-dtype", "fp8"]},
            "spec.extraArgs",
            "when kvCacheDtype is set",
        ),
        ({"kvCacheDtype": "fp16"}, "spec.kvCacheDtype", "Unsupported value"),
        (
            {"architecture": {**PHI_4, "activeB": 20}},
            "spec.architecture.activeB",
            "activeB must not exceed paramsB",
        ),
        (
            {"architecture": {**PHI_4, "kvHeads": 3}},
            "spec.architecture.kvHeads",
            "attentionHeads must be a multiple of kvHeads",
        ),
        (
            {"architecture": PHI_4, "maxContextLength": 32768},
            "spec.maxContextLength",
            "must not exceed architecture.maxContext",
        ),
        ({"architecture": {**PHI_4, "layers": 0}}, "spec.architecture.layers", "greater than"),
    ],
    ids=[
        "kv-flag-conflict",
        "kv-flag-conflict-auto",
        "kv-dtype-enum",
        "active-params",
        "kv-heads",
        "context",
        "layers",
    ],
)
def test_conflicting_or_impossible_right_sizing_fields_are_rejected(
    namespace: str, mds: ModelDeployments, spec: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ApiException) as rejected:
        mds.create(namespace, "bad", {"model": "microsoft/phi-4", **spec})
    assert rejected.value.status in (400, 422)
    assert field in rejected.value.body
    assert words in rejected.value.body
