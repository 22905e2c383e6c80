"""Engine load from the pods' Prometheus /metrics, for the autoscaler.

Scraped straight from each ready pod (pod IP, engine port), so no Prometheus is needed. A pod
that does not answer in time, or answers without the engine's metrics, is unknown, never idle:
the policy holds rather than scale down on missing data.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from modelfleet.autoscale.policy import PodLoad
from modelfleet.render.engines import ENGINE_PORT, EngineMetrics, EngineProfile

SCRAPE_TIMEOUT_SECONDS = 2.0
# Engines rename metrics between releases; older vLLM called KV use gpu_cache_usage_perc.
FALLBACK_NAMES = {"vllm:kv_cache_usage_perc": ("vllm:gpu_cache_usage_perc",)}
MAX_BODY_BYTES = 4 * 2**20


def parse_load(text: str, metrics: EngineMetrics) -> PodLoad | None:
    """One pod's load from its engine's /metrics text.

    A pod can expose several label sets of a gauge: data-parallel ranks (vLLM's `engine`
    label), several engines, or one series per served model name. Queue and running count
    disjoint requests, so they add up. KV-cache usage is a fraction of one rank's own cache, so
    it is averaged, each rank clamped to 0-1 first: the ranks of a pod serve the same model on
    the same GPU type with the same memory share, so their caches are equal and the mean is the
    pod's used/total. (Summing, as before, read two half-full ranks as one full pod and
    over-scaled.) None when the queue or running gauge is missing or the text is not Prometheus
    format. A missing KV gauge counts as 0 (some llama.cpp builds dropped it): queue and
    running still drive the policy. A NaN gauge stays NaN, so the policy counts the pod unknown.
    """
    try:
        samples: dict[str, list[float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append(float(sample.value))
    except (ValueError, TypeError):
        return None
    if metrics.waiting not in samples or metrics.running not in samples:
        return None
    kv_names = (metrics.kv_cache_usage, *FALLBACK_NAMES.get(metrics.kv_cache_usage, ()))
    ranks = next((samples[name] for name in kv_names if name in samples), [0.0])
    return PodLoad(
        waiting=sum(samples[metrics.waiting]),
        running=sum(samples[metrics.running]),
        kv_usage=sum(_fraction(value) for value in ranks) / len(ranks),
    )


def _fraction(value: float) -> float:
    """Clamped to 0-1; NaN passes through (min/max would keep or drop it by argument order)."""
    return value if math.isnan(value) else min(max(value, 0.0), 1.0)


def metrics_url(pod_ip: str, engine: EngineProfile) -> str:
    host = f"[{pod_ip}]" if ":" in pod_ip else pod_ip
    return f"http://{host}:{ENGINE_PORT}{engine.metrics_path}"


class Scraper:
    """Scrapes pods from the event loop: a pod that hangs costs a socket, never a thread.

    One per operator process; aiohttp's connector caps the connections open at once, so the
    cost stays bounded however many pods there are.
    """

    def __init__(self, timeout: float = SCRAPE_TIMEOUT_SECONDS, connections: int = 64) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # trust_env=False: pods are reached directly, never through an HTTP(S)_PROXY.
            connector = aiohttp.TCPConnector(limit=self._connections, force_close=True)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False
            )
        return self._session

    async def fetch(self, url: str) -> str | None:
        """The body of a GET, or None on any network error, timeout or non-200 answer."""
        try:
            async with self._open().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    return None
                body = await response.content.read(MAX_BODY_BYTES)
                return body.decode("utf-8", errors="replace")
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            return None

    async def loads(self, pod_ips: Iterable[str], engine: EngineProfile) -> list[PodLoad | None]:
        """Every pod at once; one entry per pod, None for a pod that is unknown."""
        urls = [metrics_url(ip, engine) for ip in pod_ips]
        bodies = await asyncio.gather(*(self.fetch(url) for url in urls))
        return [None if body is None else parse_load(body, engine.metrics) for body in bodies]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
