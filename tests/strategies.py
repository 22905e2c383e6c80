"""Hypothesis strategies for ModelDeployments: valid, edge-case and invalid.

Every field has values the schema takes (including its edges and combinations that break a CEL
rule across fields) and values it refuses (out of range, wrong type, null in a list, unknown
keys). A spec is all-takeable, takeable with one field broken, or broken anywhere, so that both
verdicts are common. Takeable replica counts stay small: accepted examples run on the shared
local cluster.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.architectures import PHI_4

S = st.SearchStrategy

invalid_names = st.one_of(
    st.from_regex(r"\A[a-z][a-z0-9]{0,8}\.[a-z0-9]{1,8}\Z"),  # a subdomain, not a label
    st.from_regex(r"\A[0-9][a-z0-9-]{0,10}[a-z0-9]\Z"),  # leading digit
    st.from_regex(r"\A[a-z][a-z0-9-]{0,10}-\Z"),  # trailing dash
    st.from_regex(r"\A[a-z]{1,5}[A-Z_][a-z]{0,5}\Z"),  # uppercase or underscore
    st.integers(64, 80).map(lambda n: "n" * n),  # longer than a label
    st.just(""),
)
# ("fresh", length): the test names the example uniquely with that many characters


def _architecture(overrides: dict[str, Any]) -> dict[str, Any]:
    return {**PHI_4, **overrides}


# field -> (values the schema takes, values it refuses)
FIELDS: dict[str, tuple[S[Any], S[Any]]] = {
    "model": (
        st.sampled_from(
            [
                "meta-llama/Llama-3.1-8B-Instruct",
                "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
                "deepseek-ai/DeepSeek-R1",
                "acme/not-in-the-catalog",
                "m" * 256,
            ]
        ),
        st.sampled_from(["", "m" * 257, 5, None]),
    ),
    "engine": (
        st.sampled_from(["vllm", "sglang", "llamacpp", None]),
        st.sampled_from(["tgi", "VLLM", 1]),
    ),
    "gpu": (
        st.fixed_dictionaries(
            {},
            optional={
                "product": st.sampled_from(
                    ["auto", "NVIDIA-L4", "NVIDIA-H100-80GB-HBM3", "NVIDIA-B200", "L" * 63]
                ),
                "count": st.sampled_from([1, 2, 4, 8, 3]),  # 3: only llamacpp
            },
        ),
        st.sampled_from(
            [
                {"product": "bad label!"},
                {"product": ""},
                {"product": 7},
                {"count": 0},
                {"count": 9},
                {"count": "2"},
                {"count": 1.5},
                {"type": "x"},
                "NVIDIA-L4",
            ]
        ),
    ),
    "maxContextLength": (
        st.sampled_from([256, 4096, 32768, 10_000_000]),
        st.sampled_from([255, 10_000_001, "long", 4096.5]),
    ),
    "quantization": (
        st.sampled_from(["bf16", "fp8", "awq", "auto"]),
        st.sampled_from(["int3", "FP8", ""]),
    ),
    "kvCacheDtype": (st.sampled_from(["auto", "fp8"]), st.sampled_from(["fp16", ""])),
    "replicas": (st.sampled_from([0, 1, 2, None]), st.sampled_from([-1, 1001, "2", 1.5, True])),
    "minReplicas": (st.sampled_from([0, 1, 3]), st.sampled_from([-1, 1001])),
    "maxReplicas": (st.sampled_from([1, 2, 3]), st.sampled_from([0, 1001, "3"])),
    "autoscaling": (
        st.fixed_dictionaries(
            {},
            optional={
                "targetKVCacheUsage": st.sampled_from([0.7, 1, 0.01]),
                "targetQueueDepth": st.sampled_from([0, 2.5, 10_000]),
                "intervalSeconds": st.sampled_from([1, 300]),
                "scaleDownWindowSeconds": st.sampled_from([0, 86_400]),
            },
        ),
        st.sampled_from(
            [
                {"targetKVCacheUsage": 0},
                {"targetKVCacheUsage": 1.5},
                {"targetKVCacheUsage": "0.5"},
                {"targetQueueDepth": -1},
                {"intervalSeconds": 0},
                {"maxScaleUpStep": 0},
                {"window": 5},
            ]
        ),
    ),
    "architecture": (
        st.fixed_dictionaries(
            {},
            optional={
                "activeB": st.sampled_from([3.3, 14.7, 20.0]),  # 20 > paramsB: a CEL rule
                "kvHeads": st.sampled_from([10, 40, 3, 80, None]),  # 3, 80: CEL rules
                "maxContext": st.sampled_from([16384, 256, 131072]),
                "mla": st.just({"kvLoraRank": 512, "qkRopeHeadDim": 64}),
                "nativeDtype": st.sampled_from(["bf16", "fp8", "int4"]),
            },
        ).map(_architecture),
        st.sampled_from(
            [
                _architecture({"paramsB": 0}),
                _architecture({"layers": 0}),
                _architecture({"maxContext": None}),
                _architecture({"maxContext": 255}),
                _architecture({"nativeDtype": "fp4"}),
                _architecture({"mla": {"kvLoraRank": 0, "qkRopeHeadDim": 64}}),
                _architecture({"params": 14}),
                {"paramsB": 7},
            ]
        ),
    ),
    "image": (
        st.sampled_from(["registry.example/engine:1", "i" * 512]),
        st.sampled_from(["", "i" * 513, 3]),
    ),
    "extraArgs": (
        st.lists(
            st.sampled_from(
                [
                    *("--max-model-len=8192", "--enforce-eager", "--portable", ""),
                    *("--kv-cache-dtype=fp8", "-ctk"),  # refused with kvCacheDtype
                    *("--port=9000", "--tp", "--model"),  # reserved
                ]
            ),
            max_size=3,
        ),
        st.sampled_from(["--not-a-list", [None], [1], ["x" * 1025], ["--x"] * 65]),
    ),
}
UNKNOWN_FIELDS: S[dict[str, Any]] = st.sampled_from([{"gpus": 1}, {"replica": 2}, {"Model": "m"}])

_takeable_fields: S[dict[str, Any]] = st.fixed_dictionaries(
    {"model": FIELDS["model"][0]},
    optional={name: takeable for name, (takeable, _) in FIELDS.items() if name != "model"},
)


@st.composite
def _takeable_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Each field takeable; cross-field rules hold more often than by chance (not always)."""
    spec = draw(_takeable_fields)
    autoscaled = "minReplicas" in spec or "autoscaling" in spec
    if autoscaled and "maxReplicas" not in spec and draw(st.integers(0, 3)):
        spec["maxReplicas"] = 3
    return spec


takeable_specs: S[dict[str, Any]] = _takeable_specs()


@st.composite
def _one_field_broken(draw: st.DrawFn) -> dict[str, Any]:
    spec = draw(takeable_specs)
    if draw(st.booleans()):
        return {**spec, **draw(UNKNOWN_FIELDS)}
    name = draw(st.sampled_from(sorted(FIELDS)))
    return {**spec, name: draw(FIELDS[name][1])}


any_specs: S[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={name: st.one_of(takeable, refused) for name, (takeable, refused) in FIELDS.items()},
)


@st.composite
def model_deployments(draw: st.DrawFn) -> tuple[tuple[str, Any], dict[str, Any]]:
    """((kind, name), spec): kind "fresh" asks the test for a unique valid name of that length,
    "given" is an invalid name. About half the specs are all-takeable."""
    if draw(st.integers(0, 9)) < 2:
        name: tuple[str, Any] = ("given", draw(invalid_names))
    else:
        name = ("fresh", draw(st.integers(8, 63)))
    pick = draw(st.integers(0, 9))
    spec = draw(takeable_specs if pick < 5 else _one_field_broken() if pick < 8 else any_specs)
    return name, spec
