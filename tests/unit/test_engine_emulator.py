"""Engine emulator and load generator: request parsing, SSE framing, metrics text, pod facts,
and one emulated pod served in-process (aiohttp test client, real performance model)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from modelfleet.api.types import Engine
from modelfleet.autoscale.policy import PodLoad
from modelfleet.dev.engine import openai
from modelfleet.dev.engine.emulator import Emulator
from modelfleet.dev.engine.load import (
    LoadConfig,
    LoadStats,
    percentile,
    progress_line,
    request_body,
    summary,
)
from modelfleet.dev.engine.metrics import TTFT_HISTOGRAMS, PodMetrics
from modelfleet.dev.engine.pods import SILENT_ANNOTATION, PodFacts, desired, pod_facts
from modelfleet.dev.engine.server import FALLBACK_MODEL, PodServer, engine_profile
from modelfleet.kube.scrape import parse_load
from modelfleet.render.children import serving
from modelfleet.render.engines import profile

# -- requests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 1), ("abc", 1), ("abcd", 1), ("abcde", 2), ("x" * 4000, 1000)],
)
def test_token_estimate_is_four_characters_per_token(text: str, tokens: int) -> None:
    assert openai.estimate_tokens(text) == tokens


@pytest.mark.parametrize(
    ("kind", "body", "prompt", "output", "stream"),
    [
        ("completion", {"prompt": "x" * 40}, 10, openai.DEFAULT_MAX_TOKENS, False),
        ("completion", {"prompt": "hi", "max_tokens": 7, "stream": True}, 1, 7, True),
        ("completion", {"prompt": [1, 2, 3, 4, 5]}, 5, openai.DEFAULT_MAX_TOKENS, False),
        ("completion", {"prompt": ["x" * 8]}, 2, openai.DEFAULT_MAX_TOKENS, False),
        ("completion", {"prompt": "hi", openai.PROMPT_TOKENS_FIELD: 3000}, 3000, 256, False),
        (
            "chat",
            {
                "messages": [
                    {"role": "system", "content": "x" * 8},
                    {"role": "user", "content": "y"},
                ]
            },
            3,
            openai.DEFAULT_MAX_TOKENS,
            False,
        ),
        (
            "chat",
            {
                "messages": [{"role": "user", "content": [{"type": "text", "text": "z" * 12}]}],
                "max_tokens": 5,
                "max_completion_tokens": 9,
            },
            3,
            9,
            False,
        ),
        (
            "chat",
            {"messages": [{"role": "user", "content": "q"}], openai.PROMPT_TOKENS_FIELD: 77},
            77,
            256,
            False,
        ),
    ],
    ids=[
        "text",
        "max-tokens-stream",
        "token-ids",
        "one-prompt-list",
        "explicit-prompt-tokens",
        "chat-text",
        "chat-parts-max-completion-tokens",
        "chat-explicit",
    ],
)
def test_requests_are_parsed_to_token_counts(
    kind: openai.Kind, body: dict[str, Any], prompt: int, output: int, stream: bool
) -> None:
    parsed = openai.parse_request({"model": "m", **body}, kind)
    assert (parsed.prompt_tokens, parsed.output_tokens, parsed.stream) == (prompt, output, stream)
    assert parsed.model == "m" and parsed.kind == kind


@pytest.mark.parametrize(
    ("kind", "body", "param"),
    [
        ("completion", [], None),
        ("completion", {}, "prompt"),
        ("completion", {"prompt": ["a", "b"]}, "prompt"),
        ("completion", {"prompt": "a", "max_tokens": 0}, "max_tokens"),
        ("completion", {"prompt": "a", "max_tokens": "9"}, "max_tokens"),
        ("completion", {"prompt": "a", "n": 2}, "n"),
        ("completion", {"prompt": "a", "stream": "yes"}, "stream"),
        ("completion", {"prompt": "a", openai.PROMPT_TOKENS_FIELD: -1}, "modelfleet_prompt_tokens"),
        ("chat", {"messages": []}, "messages"),
        ("chat", {"messages": [{"content": "no role"}]}, "messages"),
        (
            "chat",
            {"messages": [{"role": "user", "content": "a"}], "max_completion_tokens": 0},
            "max_completion_tokens",
        ),
    ],
)
def test_bad_requests_name_the_field(kind: openai.Kind, body: Any, param: str | None) -> None:
    with pytest.raises(openai.RequestError) as caught:
        openai.parse_request(body, kind)
    assert caught.value.param == param
    assert caught.value.body()["error"]["type"] == "invalid_request_error"


# -- responses and SSE framing ------------------------------------------------------------------


def test_sse_frames_one_json_event_and_reads_it_back() -> None:
    frame = openai.sse({"a": 1, "b": "x y"})
    assert frame == b'data: {"a":1,"b":"x y"}\n\n'
    assert json.loads(openai.sse_data(frame.split(b"\n")[0]) or "") == {"a": 1, "b": "x y"}
    assert openai.SSE_DONE == b"data: [DONE]\n\n"
    assert openai.sse_data(b"data: [DONE]\n") == "[DONE]"
    assert openai.sse_data(b"\n") is None
    assert openai.sse_data(b": keep-alive\n") is None


def test_filler_is_one_word_per_token_and_continues_where_it_stopped() -> None:
    assert len(openai.filler(0, 50).split()) == 50
    assert openai.filler(0, 3) + openai.filler(3, 4) == openai.filler(0, 7)
    assert openai.filler(5, 0) == ""


def test_chunks_and_responses_have_the_openai_shapes() -> None:
    chat = openai.parse_request({"messages": [{"role": "user", "content": "hi"}]}, "chat")
    first = openai.chunk(chat, "id1", "m", 1, "a ", first=True)
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "a "}
    last = openai.chunk(chat, "id1", "m", 1, "", finish_reason="length")
    assert last["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "length"}
    whole = openai.response(chat, "id1", "m", 1, "text")
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": "text"}
    assert whole["usage"] == {"prompt_tokens": 1, "completion_tokens": 256, "total_tokens": 257}

    completion = openai.parse_request({"prompt": "hi", "max_tokens": 2}, "completion")
    piece = openai.chunk(completion, "id2", "m", 1, "b ")
    assert (piece["object"], piece["choices"][0]["text"]) == ("text_completion", "b ")
    usage = openai.usage_chunk(completion, "id2", "m", 1)
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 2
    assert openai.models("m", 1, 4096)["data"][0] | {"created": 0} == {
        "id": "m",
        "object": "model",
        "created": 0,
        "owned_by": "modelfleet-emulator",
        "root": "m",
        "parent": None,
        "max_model_len": 4096,
    }


# -- metrics text -------------------------------------------------------------------------------


@dataclass
class FakeLoad:
    waiting: int = 3
    running: int = 5
    kv_usage: float = 0.25
    prompt_tokens_total: int = 1000
    generation_tokens_total: int = 200


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.parametrize("engine", list(Engine))
def test_the_operator_scraper_reads_what_the_emulator_serves(engine: Engine) -> None:
    text = PodMetrics(engine, "org/model", FakeLoad).render().decode()
    assert parse_load(text, profile(engine).metrics) == PodLoad(waiting=3, running=5, kv_usage=0.25)


@pytest.mark.parametrize("engine", list(Engine))
def test_metrics_use_the_engines_own_names(engine: Engine) -> None:
    metrics = PodMetrics(engine, "org/model", FakeLoad)
    metrics.observe_ttft(0.3)
    samples = _samples(metrics.render())
    names = profile(engine).metrics
    labels: tuple[tuple[str, str], ...] = (
        () if engine == Engine.LLAMACPP else (("model_name", "org/model"),)
    )
    assert samples[(names.waiting, labels)] == 3
    assert samples[(names.running, labels)] == 5
    assert samples[(names.kv_cache_usage, labels)] == 0.25
    assert samples[(names.prompt_tokens, labels)] == 1000
    assert samples[(names.generation_tokens, labels)] == 200
    ttft = TTFT_HISTOGRAMS.get(engine)
    if ttft:
        assert samples[(f"{ttft}_count", labels)] == 1
        assert samples[(f"{ttft}_bucket", tuple(sorted((*labels, ("le", "0.5")))))] == 1
        assert samples[(f"{ttft}_bucket", tuple(sorted((*labels, ("le", "0.25")))))] == 0
    else:
        assert not any("first_token" in name for name, _ in samples)


def test_vllm_metrics_text_is_what_a_scraper_expects() -> None:
    text = PodMetrics(Engine.VLLM, "m", FakeLoad).render().decode()
    assert "# TYPE vllm:num_requests_waiting gauge" in text
    assert 'vllm:num_requests_waiting{model_name="m"} 3.0' in text
    assert re.search(r"^# TYPE vllm:prompt_tokens(_total)? counter$", text, re.MULTILINE)
    assert 'vllm:prompt_tokens_total{model_name="m"} 1000.0' in text
    assert "# TYPE vllm:time_to_first_token_seconds histogram" in text


# -- pods ---------------------------------------------------------------------------------------


def _pod(
    *,
    phase: str = "Running",
    ready: str = "True",
    ip: str | None = "127.100.0.7",
    deleting: bool = False,
    engine: str | None = "sglang",
) -> dict[str, Any]:
    labels = {"modelfleet.dev/deployment": "qwen", "app.kubernetes.io/managed-by": "modelfleet"}
    if engine:
        labels["modelfleet.dev/engine"] = engine
    metadata: dict[str, Any] = {
        "name": "qwen-abc",
        "namespace": "ns",
        "uid": "u1",
        "labels": labels,
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
            "containers": [
                {
                    "args": ["--model-path=Qwen/Qwen3-8B", "--served-model-name=Qwen/Qwen3-8B"],
                    "resources": {"limits": {"nvidia.com/gpu": "2"}},
                }
            ],
        },
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


MD = {
    "metadata": {"name": "qwen", "namespace": "ns"},
    "spec": {"model": "Qwen/Qwen3-8B", "engine": "sglang", "maxContextLength": 8192},
    "status": {
        "placement": {
            "gpuProduct": "NVIDIA-L4",
            "gpusPerReplica": 4,
            "quantization": "fp8",
            "maxContextLength": 16384,
        }
    },
}


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (_pod(), True),
        (_pod(phase="Pending"), False),
        (_pod(ready="False"), False),
        (_pod(ip=None), False),
        (_pod(deleting=True), False),
    ],
    ids=["ready", "pending", "not-ready", "no-ip", "terminating"],
)
def test_only_running_ready_pods_with_an_ip_are_served(pod: dict[str, Any], expected: bool) -> None:
    assert serving(pod) is expected
    assert (pod_facts(pod, MD) is not None) is expected


def test_a_pod_annotated_silent_is_not_served_though_ready() -> None:
    pod = _pod()
    pod["metadata"]["annotations"] = {SILENT_ANNOTATION: "true"}
    assert serving(pod)
    assert pod_facts(pod, MD) is None
    pod["metadata"]["annotations"] = {SILENT_ANNOTATION: "false"}
    assert pod_facts(pod, MD) is not None


def test_pod_facts_prefer_the_pod_and_fill_in_from_the_model_deployment() -> None:
    facts = pod_facts(_pod(), MD)
    assert facts == PodFacts(
        namespace="ns",
        name="qwen-abc",
        uid="u1",
        ip="127.100.0.7",
        deployment="qwen",
        engine=Engine.SGLANG,
        model="Qwen/Qwen3-8B",
        gpu_product="NVIDIA-H100-80GB-HBM3",  # the pod's nodeSelector, not the placement
        gpus=2,  # the pod's GPU limit
        quantization="fp8",
        max_context=16384,
    )
    assert facts.key == "ns/qwen-abc"


def test_pod_facts_without_a_model_deployment_come_from_the_pod() -> None:
    facts = pod_facts(_pod(engine=None), None)
    assert facts is not None
    assert (facts.engine, facts.model, facts.gpus, facts.max_context) == (
        Engine.VLLM,
        "Qwen/Qwen3-8B",
        2,
        None,
    )
    assert desired([_pod(), _pod(ready="False")], {("ns", "qwen"): MD}) == {"u1": facts_of()}


def facts_of() -> PodFacts:
    facts = pod_facts(_pod(), MD)
    assert facts is not None
    return facts


@pytest.mark.parametrize(
    ("ip", "served"),
    [("127.100.0.7", True), ("127.101.0.7", False), ("10.244.0.7", False)],
    ids=["own-range", "another-local-cluster", "not-loopback"],
)
def test_only_pods_in_the_clusters_own_pod_range_are_served(ip: str, served: bool) -> None:
    want = desired([_pod(ip=ip)], {("ns", "qwen"): MD}, pod_cidr="127.100.0.0/16")
    assert ("u1" in want) is served
    assert "u1" in desired([_pod(ip=ip)], {("ns", "qwen"): MD})  # no range: every IP


# -- load generator -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [([], 50, None), ([1.0], 95, 1.0), ([3.0, 1.0, 2.0, 4.0], 50, 2.0), ([*range(1, 101)], 95, 95)],
)
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


def test_load_requests_carry_exact_token_counts() -> None:
    body = request_body("m", LoadConfig(prompt_tokens=300, output_tokens=20))
    parsed = openai.parse_request(body, "completion")
    assert (parsed.prompt_tokens, parsed.output_tokens, parsed.stream) == (300, 20, True)
    assert parsed.include_usage


# -- one emulated pod, in process ---------------------------------------------------------------

L4_FACTS = PodFacts(
    namespace="ns",
    name="p",
    uid="u",
    ip="127.0.0.1",
    deployment="d",
    engine=Engine.VLLM,
    model="meta-llama/Llama-3.1-8B-Instruct",
    gpu_product="NVIDIA-L4",
    gpus=1,
    quantization=None,
    max_context=8192,
)


def test_unknown_models_and_gpus_fall_back_to_a_known_profile() -> None:
    _, note = engine_profile(L4_FACTS)
    assert note == "meta-llama/Llama-3.1-8B-Instruct on 1x NVIDIA-L4"
    unknown = PodFacts(**{**vars(L4_FACTS), "model": "acme/unknown-model", "gpu_product": "TPU"})
    _, note = engine_profile(unknown)
    assert note.startswith(f"{FALLBACK_MODEL} on 1x NVIDIA-L4 (fallback: ")


async def _exercise_pod() -> None:
    server = PodServer(L4_FACTS, engine_profile(L4_FACTS)[0])
    task = asyncio.create_task(server.driver.run())
    async with TestClient(TestServer(server.app())) as http:
        assert (await http.get("/health")).status == 200
        models = await (await http.get("/v1/models")).json()
        assert models["data"][0]["id"] == L4_FACTS.model

        reply = await http.post(
            "/v1/completions", json={"model": L4_FACTS.model, "prompt": "hi", "max_tokens": 5}
        )
        body = await reply.json()
        assert reply.status == 200, body
        assert body["usage"]["completion_tokens"] == 5
        assert len(body["choices"][0]["text"].split()) == 5

        stream = await http.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 40,
                "stream": True,
            },
        )
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        events = [openai.sse_data(line) async for line in stream.content]
        data = [e for e in events if e]
        assert data[-1] == "[DONE]"
        chunks = [json.loads(e) for e in data[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        assert len(text.split()) == 40
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"

        wrong = await http.post("/v1/completions", json={"model": "other", "prompt": "x"})
        assert wrong.status == 404
        too_long = await http.post("/v1/completions", json={"prompt": "x", "max_tokens": 9000})
        assert too_long.status == 400
        assert "maximum context length is 8192" in (await too_long.json())["error"]["message"]

        metrics = _samples(await (await http.get("/metrics")).read())
        labels = (("model_name", L4_FACTS.model),)
        assert metrics[("vllm:generation_tokens_total", labels)] == 45
        assert metrics[("vllm:time_to_first_token_seconds_count", labels)] == 2
        assert metrics[("vllm:num_requests_running", labels)] == 0
    task.cancel()


def test_an_emulated_pod_serves_the_openai_api_and_counts_tokens() -> None:
    asyncio.run(_exercise_pod())


async def _emulate_one_pod() -> None:
    with socket.socket() as probe:  # a free port on 127.0.0.1 stands in for podIP:8000
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pods = {"u": L4_FACTS}
    emulator = Emulator(lambda: dict(pods), port=port, poll_seconds=0.05)
    stop = asyncio.Event()
    running = asyncio.create_task(emulator.run(stop))
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            if "u" in emulator.servers:
                break
            await asyncio.sleep(0.05)
        async with session.get(f"{url}/health") as response:
            assert response.status == 200

        server = emulator.servers["u"]
        tracked = [server.driver.submit(1000, 50) for _ in range(20)]
        load = server.driver.load()
        assert load.waiting + load.running == 20

        pods.clear()  # the pod went away: its requests fail, its port closes
        for _ in range(100):
            if not emulator.servers:
                break
            await asyncio.sleep(0.05)
        assert all(t.finished.done() for t in tracked)
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}/health")
    stop.set()
    await running


def test_the_emulator_serves_listed_pods_and_stops_when_they_go() -> None:
    asyncio.run(_emulate_one_pod())


async def _abandon_requests() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    emulator = Emulator(lambda: {"u": L4_FACTS}, port=port, poll_seconds=0.05)
    stop = asyncio.Event()
    running = asyncio.create_task(emulator.run(stop))
    url = f"http://127.0.0.1:{port}/v1/completions"
    for _ in range(100):
        if "u" in emulator.servers:
            break
        await asyncio.sleep(0.05)
    driver = emulator.servers["u"].driver
    long = {"prompt": "x", "max_tokens": 4000}  # minutes of decoding on an L4
    async with aiohttp.ClientSession() as session:
        stream = await session.post(url, json={**long, "stream": True})
        await stream.content.readline()  # the first token arrived: it is decoding
        blocking = asyncio.create_task(session.post(url, json=long))
        for _ in range(100):
            if driver.load().running == 2:
                break
            await asyncio.sleep(0.02)
        assert driver.load().running == 2
        stream.close()  # both clients go away
        blocking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await blocking
    for _ in range(100):
        if driver.in_flight == 0 and driver.load().running == 0:
            break
        await asyncio.sleep(0.02)
    load = driver.load()
    assert (driver.in_flight, load.running, load.waiting, load.kv_usage) == (0, 0, 0, 0.0)
    assert load.generation_tokens_total < 2 * 4000
    stop.set()
    await running


def test_a_client_that_goes_away_aborts_its_request() -> None:
    asyncio.run(_abandon_requests())


def test_load_progress_and_summary_read_the_report() -> None:
    stats = LoadStats(sent=5, ok=3, pods=2)
    stats.errors["http 503"] += 1
    stats.ttfts += [0.1, 0.2, 0.3]
    report = stats.report()
    assert report["inFlight"] == 1 and report["ttftP50Seconds"] == 0.2
    line = progress_line(report)
    assert "pods=2 sent=5 ok=3 errors=1 in-flight=1 ttft p50=0.200s p95=0.300s" in line
    text = summary({**report, "namespace": "ns", "deployment": "d", "model": "m"})
    assert text.splitlines()[0] == "ns/d (m): 3/5 ok, 1 errors {'http 503': 1}"
