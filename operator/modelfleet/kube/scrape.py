"""Engine numbers from the pods' Prometheus /metrics: load for the autoscaler, token counters for
cost reports.

Scraped straight from each ready pod (pod IP, engine port), so no Prometheus is needed. A pod
that does not answer in time, or answers without the engine's metrics, is unknown, never idle:
the policy holds rather than scale down on missing data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from modelfleet.autoscale.policy import PodLoad
from modelfleet.render.engines import ENGINE_PORT, EngineMetrics, EngineProfile
from modelfleet.status.slo import Reading, at_target

SCRAPE_TIMEOUT_SECONDS = 2.0
# Engines rename metrics between releases; older vLLM called KV use gpu_cache_usage_perc.
FALLBACK_NAMES = {"vllm:kv_cache_usage_perc": ("vllm:gpu_cache_usage_perc",)}
MAX_BODY_BYTES = 4 * 2**20


@dataclass(frozen=True)
class EngineSample:
    """What one scrape of one pod said.

    The token counters are the engine's cumulative counters as exported (summed over label
    sets), never differenced here: a consumer computes increases between two samples of the
    same pod and treats a smaller value as a counter reset (the engine restarted). None when the
    engine does not export that counter.
    """

    load: PodLoad
    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    # Latency histograms at the SLO's bound (status/slo.py); None: the engine has no such
    # histogram by design (llama.cpp), or no target asked for it.
    ttft: Reading | None = None
    tpot: Reading | None = None


# SLO targets a scrape reads the histograms at: (TTFT seconds, TPOT seconds or None).
Targets = tuple[float, float | None]
DEFAULT_TARGETS: Targets = (2.0, None)


def parse_sample(
    text: str, metrics: EngineMetrics, targets: Targets = DEFAULT_TARGETS
) -> EngineSample | None:
    """One pod's load, token counters and latency histograms (at `targets`) from its engine's
    /metrics text; None when the load is unknown (see parse_load)."""
    kv_names = (metrics.kv_cache_usage, *FALLBACK_NAMES.get(metrics.kv_cache_usage, ()))
    wanted = (metrics.waiting, metrics.running, *kv_names)
    lines = text.splitlines()
    samples = _samples(lines, (*wanted, metrics.prompt_tokens, metrics.generation_tokens))
    if samples is None or metrics.waiting not in samples or metrics.running not in samples:
        return None
    ranks = next((samples[name] for name in kv_names if name in samples), [0.0])
    load = PodLoad(
        waiting=sum(samples[metrics.waiting]),
        running=sum(samples[metrics.running]),
        kv_usage=sum(_fraction(value) for value in ranks) / len(ranks),
    )
    ttft_target, tpot_target = targets
    return EngineSample(
        load=load,
        prompt_tokens=_total(samples.get(metrics.prompt_tokens)),
        generation_tokens=_total(samples.get(metrics.generation_tokens)),
        ttft=_histogram(lines, metrics.ttft, ttft_target),
        tpot=None if tpot_target is None else _histogram(lines, metrics.tpot, tpot_target),
    )


def _histogram(lines: list[str], names: tuple[str, ...], target: float) -> Reading | None:
    """The first of `names` the text exports, read at `target`; None when the engine has none."""
    if not names:
        return None
    for name in names:
        buckets = _buckets(lines, name)
        if buckets:
            return at_target(name, buckets, target)
    return at_target(names[0], {}, target)


def _buckets(lines: list[str], name: str) -> dict[float, float]:
    """Cumulative bucket counts by bound (le), summed over label sets (model names, ranks)."""
    prefix = f"{name}_bucket{{"
    mine = [line for line in lines if line.startswith(prefix)]
    found: dict[float, float] = {}
    if not mine:
        return found
    try:
        for family in text_string_to_metric_families("\n".join(mine) + "\n"):
            for sample in family.samples:
                bound = float(sample.labels["le"])
                found[bound] = found.get(bound, 0.0) + float(sample.value)
    except (ValueError, TypeError, KeyError):
        return {}
    return found


def _samples(lines: list[str], names: Iterable[str]) -> dict[str, list[float]] | None:
    """Values by sample name, for the wanted names only; None when the text is not Prometheus.

    Only the lines of the wanted series reach prometheus_client's parser (an engine's /metrics
    runs to hundreds of series, mostly histograms, parsed in the event loop every few seconds
    per pod); without their TYPE lines they parse as untyped, under the name as written, which
    is the name EngineMetrics gives (counters with their _total).
    """
    prefixes = tuple(f"{name}{end}" for name in names for end in ("{", " ", "\t"))
    mine = [line for line in lines if line.startswith(prefixes)]
    found: dict[str, list[float]] = {}
    try:
        for family in text_string_to_metric_families("\n".join(mine) + "\n"):
            for sample in family.samples:
                found.setdefault(sample.name, []).append(float(sample.value))
    except (ValueError, TypeError):
        return None
    return found


def _total(values: list[float] | None) -> float | None:
    return None if values is None else sum(values)


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
    sample = parse_sample(text, metrics)
    return None if sample is None else sample.load


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

    async def sample(
        self, pod_ip: str, engine: EngineProfile, targets: Targets = DEFAULT_TARGETS
    ) -> EngineSample | None:
        """One pod's engine numbers; None when the pod is unknown."""
        body = await self.fetch(metrics_url(pod_ip, engine))
        return None if body is None else parse_sample(body, engine.metrics, targets)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
