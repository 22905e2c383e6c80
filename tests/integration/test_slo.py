"""status.slo on a real cluster: TTFT attainment from the engines' histograms against what the
load generator measured at the same bound; condition MetricsUnavailable for a ready pod whose
/metrics cannot be reached, and an engine without a TTFT histogram reported unknown.

The operator runs with the time-based fields written every few seconds (the default, 5 minutes,
is for production); it is restarted with its defaults at the end.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from modelfleet.dev.engine.load import LoadConfig, kube_targets, run_load
from modelfleet.dev.engine.pods import SILENT_ANNOTATION
from modelfleet.render.children import OWNER_LABEL
from tests.integration.engine_fixtures import wait_for_engines
from tests.integration.operator_fixtures import ModelDeployments, OperatorProcess, wait_until

pytestmark = pytest.mark.integration

NAME = "qwen-slo"
MODEL = "Qwen/Qwen2.5-7B-Instruct"
SPEC: dict[str, Any] = {
    "model": MODEL,
    "gpu": {"product": "NVIDIA-L4", "count": 1},
    "replicas": 1,
    "slo": {"ttftSeconds": 2, "objective": 0.99},
}
# Long prompts at a concurrency one L4 cannot prefill at once: first tokens spread around 1 s.
LOAD = LoadConfig(concurrency=6, duration=20, prompt_tokens=1200, output_tokens=20)


def status(mds: ModelDeployments, namespace: str, name: str = NAME) -> dict[str, Any]:
    return dict(mds.get(namespace, name).get("status") or {})


def ttft(mds: ModelDeployments, namespace: str, name: str = NAME) -> dict[str, Any]:
    return dict((status(mds, namespace, name).get("slo") or {}).get("ttft") or {})


def events(api: Any, namespace: str, reason: str) -> list[Any]:
    listed = client.CoreV1Api(api).list_namespaced_event(namespace)
    return [e for e in listed.items if e.reason == reason and e.involved_object.name == NAME]


def test_ttft_attainment_in_status_matches_the_load_generator_at_the_same_bound(
    api: Any, namespace: str, mds: ModelDeployments, emulator: Path, fast_writes: OperatorProcess
) -> None:
    mds.create(namespace, NAME, SPEC)
    wait_for_engines(api, namespace, NAME, 1)
    # vLLM's TTFT buckets jump from 1.0 to 2.5 s: a 2 s target is measured at 1.0 s.
    wait_until(
        lambda: ttft(mds, namespace).get("measuredAtSeconds") == 1.0,
        60,
        "status.slo.ttft measured at the 1.0 s bucket",
    )
    assert ttft(mds, namespace)["target"] == 2
    assert ttft(mds, namespace).get("count") == 0

    report = asyncio.run(run_load(kube_targets(api, namespace, NAME), MODEL, LOAD))
    assert report["errors"] == 0 and report["ok"] > 0, report
    within = report["ttftWithin"]["1"]
    expected = within / report["ok"]
    print(f"load: {report['ok']} ok, {within} within 1.0 s, p50 {report['ttftP50Seconds']}s")

    block = wait_until(
        lambda: (b := ttft(mds, namespace)).get("count") == report["ok"] and b,
        60,
        f"status.slo.ttft counting the {report['ok']} requests sent",
    )
    print(f"status.slo: {status(mds, namespace)['slo']}")
    # The engine times from arrival to its first token, the client from sending to the first
    # chunk it reads: a request within a few milliseconds of the bound may fall either side.
    assert block["attainment"] == pytest.approx(expected, abs=0.05), (block, report)
    assert block["met"] is (block["attainment"] >= 0.99)
    slo = status(mds, namespace)["slo"]
    assert slo["since"] <= slo["until"]

    published = [
        sample.value
        for family in text_string_to_metric_families(fast_writes.metrics())
        for sample in family.samples
        if sample.name == "modelfleet_deployment_slo_attainment"
        and sample.labels == {"namespace": namespace, "name": NAME, "latency": "ttft", "le": "1"}
    ]
    lines = [line for line in fast_writes.metrics().splitlines() if "deployment_" in line]
    assert published == [pytest.approx(block["attainment"], abs=0.01)], lines

    if block["met"] is False:
        wait_until(lambda: events(api, namespace, "SLOMissed"), 30, "a Warning Event SLOMissed")


def test_a_ready_pod_that_does_not_answer_is_named_in_metrics_unavailable(
    api: Any, namespace: str, mds: ModelDeployments, emulator: Path, fast_writes: OperatorProcess
) -> None:
    mds.create(namespace, NAME, {**SPEC, "replicas": 1})
    wait_for_engines(api, namespace, NAME, 1)
    core = client.CoreV1Api(api)
    pod = core.list_namespaced_pod(namespace, label_selector=f"{OWNER_LABEL}={NAME}").items[0]
    name = pod.metadata.name
    # The operator has scraped it: its engine answered (the grace period counts from a failure).
    wait_until(lambda: ttft(mds, namespace).get("measuredAtSeconds") == 1.0, 60, "a first scrape")

    def condition() -> dict[str, Any]:
        found = [
            c
            for c in status(mds, namespace).get("conditions") or []
            if c["type"] == "MetricsUnavailable"
        ]
        return found[0] if found else {}

    assert condition() == {}, "no condition while every pod answers"
    core.patch_namespaced_pod(
        name, namespace, {"metadata": {"annotations": {SILENT_ANNOTATION: "true"}}}
    )
    silenced = time.monotonic()
    found = wait_until(
        lambda: (c := condition()).get("status") == "True" and c,
        90,
        "MetricsUnavailable=True after the grace period",
    )
    assert time.monotonic() - silenced >= 30, "named before the 30 s grace period ended"
    assert name in found["message"], found
    assert events(api, namespace, "MetricsUnavailable")

    core.patch_namespaced_pod(
        name, namespace, {"metadata": {"annotations": {SILENT_ANNOTATION: None}}}
    )
    wait_until(
        lambda: condition().get("status") == "False",
        60,
        "MetricsUnavailable=False once the pod answers again",
    )


def test_an_engine_without_a_ttft_histogram_is_reported_unknown(
    api: Any, namespace: str, mds: ModelDeployments, emulator: Path
) -> None:
    mds.create(namespace, "llama", {**SPEC, "engine": "llamacpp"})
    wait_for_engines(api, namespace, "llama", 1)
    block = wait_until(
        lambda: (
            ttft(mds, namespace, "llama").get("unknownReason") and ttft(mds, namespace, "llama")
        ),
        60,
        "status.slo.ttft unknown for llamacpp",
    )
    assert "llamacpp" in block["unknownReason"], block
    assert "attainment" not in block and "met" not in block


AUTOSCALED: dict[str, Any] = {
    "model": MODEL,
    "gpu": {"product": "NVIDIA-L4", "count": 1},
    "replicas": 1,
    "minReplicas": 1,
    "maxReplicas": 2,
    "autoscaling": {"intervalSeconds": 2, "scaleDownWindowSeconds": 600},
}
# More than one L4 replica's KV cache holds: requests queue, the queue asks for more.
BURST = LoadConfig(concurrency=160, duration=40, prompt_tokens=2000, output_tokens=100)


def test_autoscaling_decisions_are_in_status_and_written_only_when_they_change(
    api: Any, namespace: str, mds: ModelDeployments, emulator: Path
) -> None:
    mds.create(namespace, "auto", AUTOSCALED)
    wait_for_engines(api, namespace, "auto", 1)

    def block() -> dict[str, Any]:
        return dict(status(mds, namespace, "auto").get("autoscaling") or {})

    # Idle: the load asks for none. The scale-down window holds the count (its first decisions,
    # before the engine answered, held 1), or a fresh autoscaler has not watched a whole window.
    notes = {"ScaleDownWindow": "highest in 600s: 1", "ObservingSinceStart": "no scale-down"}
    # (Before the engine's first answer it is MissingData.)
    idle = wait_until(
        lambda: (b := block()).get("recommendation") == 0 and b.get("heldBy") in notes and b,
        60,
        "status.autoscaling idle, held by the window",
    )
    assert idle["replicas"] == 1 and idle["heldBy"] in notes, idle
    assert notes[idle["heldBy"]] in idle["message"], idle
    # Six decisions later nothing was written: the numbers in the message moved, not the verdict
    # (the SLO block's first numbers wait for the write period, 5 minutes here, like tokens).
    before = mds.get(namespace, "auto")
    time.sleep(12)  # a quiet period to observe, not a wait for a condition
    after = mds.get(namespace, "auto")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], (
        before["status"],
        after["status"],
    )
    assert block() == idle

    load = asyncio.run(
        asyncio.wait_for(run_load(kube_targets(api, namespace, "auto"), MODEL, BURST), 300)
    )
    assert load["ok"] > 0, load
    seen = wait_until(
        lambda: (b := block()).get("replicas") == 2 and b,
        60,
        "status.autoscaling at the scaled count",
    )
    assert status(mds, namespace, "auto")["desiredReplicas"] == 2
    assert seen["since"] >= idle["since"]
