"""The engine emulator on the local cluster: the operator's pods answer on their pod IPs with the
OpenAI API and vLLM metrics, load shows up in the gauges, and the load generator reaches every
replica. Needs the `operator` (through `mds`) and the `emulator` fixtures."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelfleet.dev.engine.load import LoadConfig, load_deployment
from tests.integration.engine_fixtures import answers, wait_for_engines
from tests.integration.operator_fixtures import ModelDeployments, wait_until

pytestmark = pytest.mark.integration

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
SPEC = {"model": MODEL, "maxContextLength": 8192, "gpu": {"product": "NVIDIA-L4", "count": 1}}


def vllm_samples(text: str) -> dict[str, float]:
    """Sample name -> value of the vLLM series (single model: labels dropped; buckets skipped)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("vllm:") and "le" not in sample.labels:
                assert sample.labels.get("model_name") == MODEL, sample
                found[sample.name] = sample.value
    return found


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def _check_api(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        status, _ = await _get(session, f"{url}/health")
        assert status == 200
        status, text = await _get(session, f"{url}/v1/models")
        assert status == 200 and json.loads(text)["data"][0]["id"] == MODEL

        before = vllm_samples((await _get(session, f"{url}/metrics"))[1])
        body = {"model": MODEL, "prompt": "Why is the sky blue?", "max_tokens": 16}
        async with session.post(f"{url}/v1/completions", json=body) as response:
            reply = await response.json()
        assert response.status == 200, reply
        assert reply["object"] == "text_completion"
        assert reply["usage"]["completion_tokens"] == 16
        assert len(reply["choices"][0]["text"].split()) == 16

        chat = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 24,
            "stream": True,
        }
        async with session.post(f"{url}/v1/chat/completions", json=chat) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            lines = [line.decode().strip() async for line in response.content]
        events = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert len(chunks) >= 2, "tokens arrive in several chunks"
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        assert len(text.split()) == 24
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"

        after = vllm_samples((await _get(session, f"{url}/metrics"))[1])
    for name in (
        "vllm:num_requests_waiting",
        "vllm:num_requests_running",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_count",
    ):
        assert name in after, name
    assert after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"] == 40
    assert after["vllm:prompt_tokens_total"] > before["vllm:prompt_tokens_total"]
    assert (
        after["vllm:time_to_first_token_seconds_count"]
        - before["vllm:time_to_first_token_seconds_count"]
        == 2
    )
    return after


async def _burst(url: str, requests: int) -> dict[str, float]:
    """Many long requests at once; the highest queue and batch seen by /metrics meanwhile."""
    body = {"model": MODEL, "prompt": "x" * 4000, "max_tokens": 200}
    peak = {"vllm:num_requests_waiting": 0.0, "vllm:num_requests_running": 0.0}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def one() -> int:
            async with session.post(f"{url}/v1/completions", json=body) as response:
                await response.read()
                return response.status

        tasks = [asyncio.create_task(one()) for _ in range(requests)]
        while not all(t.done() for t in tasks):
            samples = vllm_samples((await _get(session, f"{url}/metrics"))[1])
            for name in peak:
                peak[name] = max(peak[name], samples[name])
            await asyncio.sleep(0.1)
        assert [t.result() for t in tasks] == [200] * requests
        idle = vllm_samples((await _get(session, f"{url}/metrics"))[1])
    assert idle["vllm:num_requests_running"] == idle["vllm:num_requests_waiting"] == 0
    return peak


def test_engine_pods_serve_the_openai_api_and_vllm_metrics(
    namespace: str, mds: ModelDeployments, emulator: Path, api: Any
) -> None:
    mds.create(namespace, "emu", {**SPEC, "replicas": 1})
    (url,) = wait_for_engines(api, namespace, "emu", 1)

    asyncio.run(_check_api(url))
    peak = asyncio.run(_burst(url, 16))
    assert peak["vllm:num_requests_running"] + peak["vllm:num_requests_waiting"] > 0, peak

    mds.patch_spec(namespace, "emu", {"replicas": 0})
    wait_until(lambda: not answers(url), 30, f"{url} to stop answering once its pod is gone")


def test_the_load_generator_reaches_every_replica(
    namespace: str, mds: ModelDeployments, emulator: Path, api: Any, kubeconfig: Path
) -> None:
    mds.create(namespace, "loaded", {**SPEC, "replicas": 2})
    wait_for_engines(api, namespace, "loaded", 2)

    report = load_deployment(
        kubeconfig,
        namespace,
        "loaded",
        # Round-robin: the test checks that both pods serve, not how a Service picks.
        LoadConfig(
            concurrency=4, duration=3, prompt_tokens=256, output_tokens=32, routing="round-robin"
        ),
    )
    assert report["errors"] == 0, report
    assert report["ok"] >= 4 and report["sent"] == report["ok"]
    assert len(report["requestsPerPod"]) == 2, report
    assert report["outputTokens"] == 32 * report["ok"]
    assert 0 < report["ttftP50Seconds"] <= report["ttftP95Seconds"]

    command = [sys.executable, "-m", "modelfleet.cli", "load", "--kubeconfig", str(kubeconfig)]
    command += ["-n", namespace, "--deployment", "loaded", "--rate", "5", "--duration", "2"]
    command += ["--output-tokens", "8", "-o", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["deployment"], summary["rate"], summary["errors"]) == ("loaded", 5.0, 0)
    assert summary["ok"] == summary["sent"] == 10
