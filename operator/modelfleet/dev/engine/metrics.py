"""/metrics of one emulated pod, in the Prometheus text format and the real engine's names.

Queue, running, KV-cache use and the token counters are read from the pod's engine at scrape
time (always current, like the real engines' gauges); their names come from
`modelfleet.render.engines` (EngineMetrics), the operator's single source. The time-to-first-token
histogram is observed by the server as requests get their first token (vLLM and SGLang name it;
llama.cpp has none). vLLM and SGLang label every series with `model_name`; llama.cpp uses none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelfleet.api.types import Engine
from modelfleet.render.engines import EngineMetrics, profile

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The names the operator reads (render/engines.py EngineMetrics.ttft): the first of each engine's.
TTFT_HISTOGRAMS: dict[Engine, str] = {
    engine: profile(engine).metrics.ttft[0] for engine in Engine if profile(engine).metrics.ttft
}
# vLLM's own buckets for time to first token.
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip


class Load(Protocol):
    """The engine load the gauges and counters show (perf.engine.EngineLoad)."""

    @property
    def waiting(self) -> int: ...
    @property
    def running(self) -> int: ...
    @property
    def kv_usage(self) -> float: ...
    @property
    def prompt_tokens_total(self) -> int: ...
    @property
    def generation_tokens_total(self) -> int: ...


class _LoadCollector(Collector):
    def __init__(
        self, names: EngineMetrics, labels: dict[str, str], load: Callable[[], Load]
    ) -> None:
        self._names = names
        self._labels = labels
        self._load = load

    def collect(self) -> Iterator[Metric]:
        load = self._load()
        keys = list(self._labels)
        values = list(self._labels.values())
        names = self._names
        gauges = (
            (names.waiting, "Requests waiting to be scheduled.", load.waiting),
            (names.running, "Requests running (in the batch).", load.running),
            (names.kv_cache_usage, "KV-cache usage, 0 to 1.", load.kv_usage),
        )
        for name, doc, value in gauges:
            gauge = GaugeMetricFamily(name, doc, labels=keys)
            gauge.add_metric(values, float(value))
            yield gauge
        counters = (
            (names.prompt_tokens, "Prefill tokens processed.", load.prompt_tokens_total),
            (names.generation_tokens, "Generation tokens processed.", load.generation_tokens_total),
        )
        for name, doc, value in counters:
            counter = CounterMetricFamily(name, doc, labels=keys)
            counter.add_metric(values, float(value))
            yield counter


class PodMetrics:
    """One registry per emulated pod."""

    def __init__(self, engine: Engine, model: str, load: Callable[[], Load]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        labels = {} if engine == Engine.LLAMACPP else {"model_name": model}
        self.registry.register(_LoadCollector(profile(engine).metrics, labels, load))
        self._ttft: Histogram | None = None
        name = TTFT_HISTOGRAMS.get(engine)
        if name:
            histogram = Histogram(
                name,
                "Time to first token in seconds.",
                labelnames=list(labels),
                buckets=TTFT_BUCKETS,
                registry=self.registry,
            )
            self._ttft = histogram.labels(**labels) if labels else histogram

    def observe_ttft(self, seconds: float) -> None:
        if self._ttft is not None:
            self._ttft.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
