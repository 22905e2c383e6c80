"""`modelfleet load`: streaming completions against one ModelDeployment's ready pods.

Sends to each pod's IP and port 8000 directly (the local cluster has no kube-proxy, so Service
IPs do not route), picking the pod per request as `LoadConfig.routing` says: "random" (default,
what a Service does: kube-proxy in iptables mode picks an endpoint at random; seeded with
`seed`), "least-outstanding" (fewest of our requests in flight, as a load-aware gateway does) or
"round-robin" (IPVS mode). The pod list is refreshed every `refresh_seconds`, so new replicas
get load and removed ones stop getting it. Open loop (`rate`, evenly spaced requests per second)
or closed loop (`concurrency` requests always in flight). Time to first token is measured by the
client: from sending to the first chunk with text.

For tests and the demo: `await run_load(kube_targets(api, ns, name), model, LoadConfig(...))`,
or `load_deployment(kubeconfig, ns, name, LoadConfig(...))` (blocking, reads the model too).
Pass an asyncio.Event as `stop` to end early.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes import client

from modelfleet.api.types import GROUP, PLURAL, VERSION
from modelfleet.dev.engine import openai
from modelfleet.dev.replay.metrics import percentile as nearest_rank
from modelfleet.render.children import OWNER_LABEL, serving
from modelfleet.render.engines import ENGINE_PORT

ROUTINGS = ("random", "least-outstanding", "round-robin")
DRAIN_SECONDS = 120.0  # default: after the duration, in-flight requests get this long to finish


@dataclass(frozen=True)
class Target:
    pod: str
    url: str  # base URL, e.g. http://127.100.0.5:8000


@dataclass(frozen=True)
class LoadConfig:
    rate: float | None = None  # requests per second (open loop); default when neither is set: 1
    concurrency: int | None = None  # requests in flight (closed loop)
    duration: float = 60.0
    prompt_tokens: int = 512
    output_tokens: int = 128
    refresh_seconds: float = 3.0
    request_timeout: float = 300.0
    drain_seconds: float = DRAIN_SECONDS  # then the rest are abandoned (the engines abort them)
    routing: str = "random"  # or "least-outstanding", "round-robin"
    seed: int | None = None  # of the random routing; None: a fresh one each run
    # Bounds (seconds) the report counts first tokens within, as an engine's TTFT histogram does
    # (vLLM's buckets around a usual SLO): "ttftWithin" maps each to a count of ok requests.
    ttft_bounds: tuple[float, ...] = (0.5, 1.0, 2.5)

    def __post_init__(self) -> None:
        if self.routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {', '.join(ROUTINGS)}")


@dataclass
class LoadStats:
    """What happened so far; `report()` summarises it."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    ttfts: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    output_tokens: int = 0
    per_pod: Counter[str] = field(default_factory=Counter)
    pods: int = 0
    ttft_bounds: tuple[float, ...] = ()

    @property
    def in_flight(self) -> int:
        return self.sent - self.ok - sum(self.errors.values())

    def report(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "elapsedSeconds": round(elapsed, 3),
            "sent": self.sent,
            "ok": self.ok,
            "errors": sum(self.errors.values()),
            "errorReasons": dict(self.errors),
            "inFlight": self.in_flight,
            "pods": self.pods,
            "ttftP50Seconds": percentile(self.ttfts, 50),
            "ttftP95Seconds": percentile(self.ttfts, 95),
            "ttftMaxSeconds": max(self.ttfts, default=None),
            "ttftWithin": {
                f"{bound:g}": sum(1 for t in self.ttfts if t <= bound) for bound in self.ttft_bounds
            },
            "latencyP50Seconds": percentile(self.latencies, 50),
            "latencyP95Seconds": percentile(self.latencies, 95),
            "outputTokens": self.output_tokens,
            "outputTokensPerSecond": round(self.output_tokens / elapsed, 1),
            "requestsPerPod": dict(self.per_pod),
        }


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (None for no values), rounded to the millisecond."""
    if not values:
        return None
    return round(nearest_rank(sorted(values), p / 100), 3)


def progress_line(report: dict[str, Any]) -> str:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}s"

    return (
        f"t={report['elapsedSeconds']:.0f}s pods={report['pods']} sent={report['sent']} "
        f"ok={report['ok']} errors={report['errors']} in-flight={report['inFlight']} "
        f"ttft p50={seconds(report['ttftP50Seconds'])} p95={seconds(report['ttftP95Seconds'])}"
    )


def summary(report: dict[str, Any]) -> str:
    """The final report in three lines (for `load_deployment`'s report)."""
    lines = [
        f"{report['namespace']}/{report['deployment']} ({report['model']}): "
        f"{report['ok']}/{report['sent']} ok, {report['errors']} errors "
        f"{report['errorReasons'] or ''}".rstrip(),
        f"time to first token: p50 {report['ttftP50Seconds']}s, p95 {report['ttftP95Seconds']}s, "
        f"max {report['ttftMaxSeconds']}s; latency p50 {report['latencyP50Seconds']}s, "
        f"p95 {report['latencyP95Seconds']}s",
        f"output: {report['outputTokens']} tokens, {report['outputTokensPerSecond']} tokens/s; "
        f"requests per pod: {report['requestsPerPod']}",
    ]
    return "\n".join(lines)


def request_body(model: str, config: LoadConfig) -> dict[str, Any]:
    """A streaming completion of exactly `output_tokens` after `prompt_tokens`."""
    return {
        "model": model,
        "prompt": openai.filler(0, config.prompt_tokens),
        openai.PROMPT_TOKENS_FIELD: config.prompt_tokens,  # exact count for the emulator
        "max_tokens": config.output_tokens,
        "ignore_eos": True,  # vLLM: generate max_tokens even past an end-of-sequence token
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def kube_targets(api_client: Any, namespace: str, deployment: str) -> Callable[[], list[Target]]:
    """A blocking function listing the deployment's servable pods as targets."""
    core: Any = client.CoreV1Api(api_client)

    def targets() -> list[Target]:
        listed = core.list_namespaced_pod(namespace, label_selector=f"{OWNER_LABEL}={deployment}")
        pods = api_client.sanitize_for_serialization(listed.items)
        found = [
            Target(pod["metadata"]["name"], f"http://{pod['status']['podIP']}:{ENGINE_PORT}")
            for pod in pods
            if serving(pod)
        ]
        return sorted(found, key=lambda target: target.pod)

    return targets


def deployment_model(api_client: Any, namespace: str, deployment: str) -> str:
    """spec.model of the ModelDeployment (raises ApiException 404 when it does not exist)."""
    custom: Any = client.CustomObjectsApi(api_client)
    md = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, deployment)
    model: str = md["spec"]["model"]
    return model


def choose_target(
    targets: Sequence[Target],
    routing: str,
    rng: random.Random,
    outstanding: Counter[str],
    turn: int,
) -> Target:
    """The pod for the next request (`targets` not empty); see the module docstring."""
    if routing == "random":
        return rng.choice(targets)
    if routing == "least-outstanding":
        return min(targets, key=lambda target: outstanding[target.pod])
    return targets[turn % len(targets)]


async def run_load(
    discover: Callable[[], Sequence[Target]],
    model: str,
    config: LoadConfig,
    *,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    progress_seconds: float = 5.0,
) -> dict[str, Any]:
    """Send load for `config.duration` seconds, wait for the in-flight requests (at most
    `config.drain_seconds`) and return the final report. `stop` ends it early and abandons the
    in-flight requests at once, like clients that go away (the engines abort them)."""
    stop = stop or asyncio.Event()
    stats = LoadStats(ttft_bounds=config.ttft_bounds)
    targets: list[Target] = list(await asyncio.to_thread(discover))
    stats.pods = len(targets)
    turn = 0
    body = request_body(model, config)
    deadline = stats.started + config.duration
    timeout = aiohttp.ClientTimeout(total=config.request_timeout)
    connector = aiohttp.TCPConnector(limit=0)

    rng = random.Random(config.seed)
    outstanding: Counter[str] = Counter()

    def next_target() -> Target | None:
        nonlocal turn
        if not targets:
            return None
        turn += 1
        return choose_target(targets, config.routing, rng, outstanding, turn)

    async def refresh() -> None:
        nonlocal targets
        while True:
            await asyncio.sleep(config.refresh_seconds)
            try:
                targets = list(await asyncio.to_thread(discover))
            except Exception:  # keep the last list; the API server may be busy
                continue
            stats.pods = len(targets)

    async def progress() -> None:
        while on_progress is not None:
            await asyncio.sleep(progress_seconds)
            on_progress(stats.report())

    async def one(session: aiohttp.ClientSession) -> None:
        target = next_target()
        stats.sent += 1
        if target is None:
            stats.errors["no ready pods"] += 1
            return
        stats.per_pod[target.pod] += 1
        outstanding[target.pod] += 1
        try:
            await _send(session, target, body, stats)
        finally:
            outstanding[target.pod] -= 1

    async def open_loop(session: aiohttp.ClientSession, tasks: set[asyncio.Task[None]]) -> None:
        rate = config.rate or 1.0
        sent = 0
        while not stop.is_set():
            at = stats.started + sent / rate
            if at >= deadline:
                break
            delay = at - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
            task = asyncio.create_task(one(session))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1

    async def worker(session: aiohttp.ClientSession) -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            if not targets:
                await asyncio.sleep(0.5)
                continue
            await one(session)

    async def sending_ended() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, deadline - time.monotonic()))

    helpers = [asyncio.create_task(refresh()), asyncio.create_task(progress())]
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tasks: set[asyncio.Task[None]] = set()
            if config.concurrency:
                tasks = {asyncio.create_task(worker(session)) for _ in range(config.concurrency)}
                await sending_ended()
            else:
                await open_loop(session, tasks)
            pending = set(tasks)
            if pending and not stop.is_set():
                _, pending = await asyncio.wait(pending, timeout=config.drain_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
    return stats.report()


async def _send(
    session: aiohttp.ClientSession, target: Target, body: dict[str, Any], stats: LoadStats
) -> None:
    started = time.monotonic()
    first: float | None = None
    tokens = 0
    try:
        async with session.post(f"{target.url}/v1/completions", json=body) as response:
            if response.status != 200:
                stats.errors[f"http {response.status}"] += 1
                return
            finished = False
            async for line in response.content:
                data = openai.sse_data(line)
                if data is None:
                    continue
                if data == "[DONE]":
                    finished = True
                    break
                event = json.loads(data)
                if first is None and any(c.get("text") for c in event.get("choices") or []):
                    first = time.monotonic() - started
                if event.get("usage"):
                    tokens = int(event["usage"].get("completion_tokens") or 0)
    except asyncio.CancelledError:
        stats.errors["abandoned"] += 1
        raise
    except TimeoutError:
        stats.errors["timeout"] += 1
        return
    except (aiohttp.ClientError, ValueError) as error:
        stats.errors[type(error).__name__] += 1
        return
    if not finished or first is None:
        stats.errors["truncated stream"] += 1
        return
    stats.ok += 1
    stats.ttfts.append(first)
    stats.latencies.append(time.monotonic() - started)
    stats.output_tokens += tokens


def load_deployment(
    kubeconfig: str | Path | None,
    namespace: str,
    deployment: str,
    config: LoadConfig,
    *,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    progress_seconds: float = 5.0,
) -> dict[str, Any]:
    """Blocking: load one ModelDeployment and return the report (with its name and config)."""
    from modelfleet.kube.client import load_api_client

    api_client: Any = load_api_client(str(kubeconfig) if kubeconfig else None)
    try:
        model = deployment_model(api_client, namespace, deployment)
        report = asyncio.run(
            run_load(
                kube_targets(api_client, namespace, deployment),
                model,
                config,
                on_progress=on_progress,
                progress_seconds=progress_seconds,
            )
        )
    finally:
        api_client.close()
    mode = (
        {"concurrency": config.concurrency} if config.concurrency else {"rate": config.rate or 1.0}
    )
    return {
        "deployment": deployment,
        "namespace": namespace,
        "model": model,
        **mode,
        "durationSeconds": config.duration,
        "promptTokens": config.prompt_tokens,
        "maxTokens": config.output_tokens,
        **report,
    }
