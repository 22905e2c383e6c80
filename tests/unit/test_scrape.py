"""Engine load parsed from Prometheus text, per engine; bad or partial answers are unknown."""

import asyncio
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from modelfleet.autoscale.policy import PodLoad
from modelfleet.kube.scrape import EngineSample, Scraper, parse_load, parse_sample
from modelfleet.render.engines import profile
from modelfleet.status.slo import Bucketed

NO_VLLM_TTFT = "the engine exports no vllm:time_to_first_token_seconds histogram"
NO_SGLANG_TTFT = "the engine exports no sglang:time_to_first_token_seconds histogram"

VLLM = """\
# HELP vllm:num_requests_waiting Number of requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="a"} 3.0
vllm:num_requests_waiting{model_name="b"} 1.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a"} 12.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="a"} 0.42
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{model_name="a"} 1234.0
"""
OLD_VLLM = VLLM.replace("kv_cache_usage_perc", "gpu_cache_usage_perc")
SGLANG = """\
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs 5
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs 7
# TYPE sglang:token_usage gauge
sglang:token_usage 0.9
"""
LLAMACPP_WITHOUT_KV = """\
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 2
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
"""


def ranks(engine: str, *loads: tuple[float, float, float], label: str = "engine") -> str:
    """/metrics of one pod whose engine runs one label set per rank (data parallel)."""
    names = profile(engine).metrics
    lines = []
    for rank, (waiting, running, kv) in enumerate(loads):
        labels = f'{{model_name="m",{label}="{rank}"}}'
        lines += [
            f"{names.waiting}{labels} {waiting}",
            f"{names.running}{labels} {running}",
            f"{names.kv_cache_usage}{labels} {kv}",
        ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("engine", "text", "expected"),
    [
        pytest.param("vllm", VLLM, PodLoad(4.0, 12.0, 0.42), id="vllm-summed-over-models"),
        pytest.param("vllm", OLD_VLLM, PodLoad(4.0, 12.0, 0.42), id="vllm-old-kv-name"),
        pytest.param("sglang", SGLANG, PodLoad(5.0, 7.0, 0.9), id="sglang"),
        pytest.param(
            "llamacpp", LLAMACPP_WITHOUT_KV, PodLoad(2.0, 1.0, 0.0), id="llamacpp-no-kv-gauge"
        ),
        pytest.param("sglang", VLLM, None, id="other-engine-names-unknown"),
        pytest.param("vllm", "<html>502 Bad Gateway</html>", None, id="not-prometheus"),
        pytest.param("vllm", "", None, id="empty"),
        pytest.param(
            "vllm",
            "vllm:num_requests_waiting 1\nvllm:num_requests_running 2\n"
            "vllm:kv_cache_usage_perc 1.7\n",
            PodLoad(1.0, 2.0, 1.0),
            id="kv-clamped",
        ),
        # Data-parallel ranks: counts add up, KV use is the mean of equal-sized caches.
        pytest.param(
            "vllm",
            ranks("vllm", (3, 5, 0.2), (1, 7, 0.6)),
            PodLoad(4.0, 12.0, 0.4),
            id="vllm-dp2-kv-averaged",
        ),
        pytest.param(
            "vllm",
            ranks("vllm", (0, 4, 0.7), (0, 4, 0.7)),
            PodLoad(0.0, 8.0, 0.7),
            id="vllm-dp2-at-target-is-not-full",
        ),
        pytest.param(
            "vllm",
            ranks("vllm", (2, 9, 1.0), (0, 0, 0.0)),
            PodLoad(2.0, 9.0, 0.5),
            id="vllm-dp2-one-full-one-idle",
        ),
        pytest.param(
            "vllm",
            ranks("vllm", *[(1, 2, 0.25)] * 4),
            PodLoad(4.0, 8.0, 0.25),
            id="vllm-dp4",
        ),
        pytest.param(
            "vllm",
            ranks("vllm", (0, 1, 0.2), (0, 1, 0.6)).replace("kv_cache", "gpu_cache"),
            PodLoad(0.0, 2.0, 0.4),
            id="vllm-dp2-old-kv-name",
        ),
        pytest.param(
            "vllm",
            ranks("vllm", (0, 1, 1.7), (0, 1, 0.1)),
            PodLoad(0.0, 2.0, 0.55),
            id="rank-clamped-before-averaging",
        ),
        pytest.param(
            "vllm",
            ranks("vllm", (0, 1, -0.2), (0, 1, 0.4)),
            PodLoad(0.0, 2.0, 0.2),
            id="negative-rank-clamped-to-zero",
        ),
        pytest.param(
            "sglang",
            ranks("sglang", (5, 3, 0.3), (1, 3, 0.5), label="dp_rank"),
            PodLoad(6.0, 6.0, 0.4),
            id="sglang-dp2",
        ),
        pytest.param(
            "llamacpp",
            ranks("llamacpp", (1, 1, 0.9), (0, 1, 0.1), label="slot_group"),
            PodLoad(1.0, 2.0, 0.5),
            id="llamacpp-two-label-sets",
        ),
    ],
)
def test_parse_load(engine: str, text: str, expected: PodLoad | None) -> None:
    load = parse_load(text, profile(engine).metrics)
    if expected is None or load is None:
        assert load == expected
    else:
        assert (load.waiting, load.running) == (expected.waiting, expected.running)
        assert load.kv_usage == pytest.approx(expected.kv_usage)


VLLM_FULL = (
    VLLM
    + """\
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{model_name="a"} 5000.0
vllm:prompt_tokens_created{model_name="a"} 1.7e9
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.5",model_name="a"} 3.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="a"} 4.0
vllm:time_to_first_token_seconds_count{model_name="a"} 4.0
vllm:time_to_first_token_seconds_sum{model_name="a"} 1.5
vllm:num_requests_waiting_by_reason{reason="x"} 99.0
"""
)
LLAMACPP_COUNTERS = """\
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 300
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 40
llamacpp:requests_deferred 0
llamacpp:requests_processing 1
llamacpp:kv_cache_usage_ratio 0.1
"""


@pytest.mark.parametrize(
    ("engine", "text", "expected"),
    [
        pytest.param(
            "vllm",
            VLLM_FULL,
            EngineSample(
                PodLoad(4.0, 12.0, 0.42),
                prompt_tokens=5000.0,
                generation_tokens=1234.0,
                ttft=Bucketed(0.5, 3.0, 4.0),  # 2 s target: the largest bound below is 0.5
            ),
            id="vllm-counters-among-histograms-and-look-alike-names",
        ),
        pytest.param(
            "vllm",
            VLLM,
            EngineSample(
                PodLoad(4.0, 12.0, 0.42),
                prompt_tokens=None,
                generation_tokens=1234.0,
                ttft=NO_VLLM_TTFT,
            ),
            id="a-counter-the-engine-does-not-export-is-none",
        ),
        pytest.param(
            "sglang",
            SGLANG,
            EngineSample(PodLoad(5.0, 7.0, 0.9), ttft=NO_SGLANG_TTFT),
            id="no-counters-at-all",
        ),
        pytest.param(
            "llamacpp",
            LLAMACPP_COUNTERS,
            EngineSample(PodLoad(0.0, 1.0, 0.1), prompt_tokens=300.0, generation_tokens=40.0),
            id="llamacpp-total-in-the-type-line",
        ),
        pytest.param(
            "vllm",
            "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\n"
            'vllm:generation_tokens_total{engine="0"} 10\n'
            'vllm:generation_tokens_total{engine="1"} 32\n',
            EngineSample(PodLoad(0.0, 0.0, 0.0), generation_tokens=42.0, ttft=NO_VLLM_TTFT),
            id="ranks-add-up",
        ),
        pytest.param(
            "vllm",
            'vllm:generation_tokens_total{model_name="a"} 10\n',
            None,
            id="counters-without-load-are-unknown",
        ),
        pytest.param(
            "vllm",
            "vllm:num_requests_waiting 0\nvllm:num_requests_running zero\n",
            None,
            id="a-bad-value-is-unknown",
        ),
    ],
)
def test_parse_sample(engine: str, text: str, expected: EngineSample | None) -> None:
    assert parse_sample(text, profile(engine).metrics) == expected


def test_a_nan_rank_leaves_the_pod_unknown_to_the_policy() -> None:
    load = parse_load(ranks("vllm", (0, 1, float("nan")), (0, 1, 0.5)), profile("vllm").metrics)
    assert load is not None and math.isnan(load.kv_usage)


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = VLLM.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[str]:
    """A real HTTP server on a loopback address, port 8000 like an engine pod."""
    try:
        server = HTTPServer(("127.99.0.7", 8000), _Metrics)
    except OSError as error:
        pytest.skip(f"cannot bind 127.99.0.7:8000 here: {error}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.99.0.7"
    server.shutdown()
    server.server_close()


def test_a_pod_is_sampled_with_its_counters_and_a_silent_one_is_unknown(
    metrics_server: str,
) -> None:
    # 127.99.0.8 has nothing listening: refused at once, unknown rather than idle.
    async def scrape() -> tuple[EngineSample | None, EngineSample | None]:
        scraper = Scraper(timeout=1.0)
        try:
            return (
                await scraper.sample(metrics_server, profile("vllm")),
                await scraper.sample("127.99.0.8", profile("vllm")),
            )
        finally:
            await scraper.close()

    answered, silent = asyncio.run(scrape())
    assert answered == EngineSample(
        PodLoad(4.0, 12.0, 0.42), generation_tokens=1234.0, ttft=NO_VLLM_TTFT
    )
    assert silent is None
