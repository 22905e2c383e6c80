"""The engine pods' scrape loops: which pods are scraped, the latest sample of each, what the
autoscaler makes of them, and the loops' start and stop (with a fake scraper, no network)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from modelfleet.api.types import Engine
from modelfleet.autoscale.policy import LoadSample, PodLoad
from modelfleet.handlers import metrics
from modelfleet.handlers.autoscaler import observe
from modelfleet.handlers.scrapes import (
    ENGINE_LABEL,
    EnginePod,
    Loops,
    PodSample,
    Samples,
    engine_pod,
)
from modelfleet.kube.scrape import SCRAPE_TIMEOUT_SECONDS, EngineSample
from modelfleet.render.engines import EngineProfile


def pod(
    name: str = "qwen-7b-abc",
    *,
    ip: str | None = "10.1.0.5",
    phase: str = "Running",
    ready: bool = True,
    engine: str | None = "vllm",
    owner: str | None = "qwen-7b",
    uid: str = "uid-1",
    deleting: bool = False,
) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "modelfleet"}
    if owner is not None:
        labels["modelfleet.dev/deployment"] = owner
    if engine is not None:
        labels[ENGINE_LABEL] = engine
    meta: dict[str, Any] = {"namespace": "ns", "name": name, "uid": uid, "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip is not None:
        status["podIP"] = ip
    return {"metadata": meta, "status": status}


SCRAPED = EnginePod("ns", "qwen-7b-abc", "uid-1", "qwen-7b", "10.1.0.5", Engine.VLLM)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(pod(), SCRAPED, id="running-ready-with-ip"),
        pytest.param(
            pod(engine="sglang"),
            EnginePod("ns", "qwen-7b-abc", "uid-1", "qwen-7b", "10.1.0.5", Engine.SGLANG),
            id="engine-from-the-pod-label",
        ),
        pytest.param(pod(phase="Pending", ip=None, ready=False), None, id="pending"),
        pytest.param(pod(ready=False), None, id="loading-the-model"),
        pytest.param(pod(ip=None), None, id="no-ip"),
        pytest.param(pod(phase="Succeeded"), None, id="ended"),
        pytest.param(pod(deleting=True), None, id="terminating"),
        pytest.param(pod(engine=None), None, id="no-engine-label"),
        pytest.param(pod(engine="triton"), None, id="an-engine-modelfleet-does-not-know"),
        pytest.param(pod(owner=None), None, id="no-owner-label"),
    ],
)
def test_which_pods_are_scraped(body: dict[str, Any], expected: EnginePod | None) -> None:
    assert engine_pod(body) == expected


ANSWER = EngineSample(PodLoad(2.0, 8.0, 0.5), prompt_tokens=100.0, generation_tokens=20.0)
PERIOD = 5.0
STALE = 2 * PERIOD + SCRAPE_TIMEOUT_SECONDS


@pytest.mark.parametrize(
    ("recorded", "asked", "now", "expected"),
    [
        pytest.param(
            PodSample(SCRAPED, 100, PERIOD, ANSWER, 1.7e9), pod(), 104, ANSWER.load, id="fresh"
        ),
        pytest.param(
            PodSample(SCRAPED, 100, PERIOD, ANSWER, 1.7e9),
            pod(),
            100 + STALE,
            ANSWER.load,
            id="edge",
        ),
        pytest.param(
            PodSample(SCRAPED, 100, PERIOD, ANSWER, 1.7e9),
            pod(),
            100 + STALE + 0.1,
            None,
            id="two-scrapes-missed-is-unknown",
        ),
        pytest.param(
            PodSample(SCRAPED, 100, 1.0, ANSWER, 1.7e9),
            pod(),
            100 + 2 * 1.0 + SCRAPE_TIMEOUT_SECONDS + 0.1,
            None,
            id="a-faster-pace-goes-stale-sooner",
        ),
        pytest.param(
            PodSample(SCRAPED, 100, PERIOD, None, 1.7e9), pod(), 101, None, id="no-answer"
        ),
        pytest.param(None, pod(), 101, None, id="not-scraped-yet"),
        pytest.param(
            PodSample(SCRAPED, 100, PERIOD, ANSWER, 1.7e9),
            pod(uid="uid-2"),
            101,
            None,
            id="another-pod-of-the-same-name",
        ),
        pytest.param(
            PodSample(SCRAPED, 100, PERIOD, ANSWER, 1.7e9),
            pod(owner="other"),
            101,
            None,
            id="other-owner",
        ),
        pytest.param(
            PodSample(SCRAPED, 100, PERIOD, ANSWER, 1.7e9),
            pod(),
            99,
            None,
            id="a-clock-that-went-back",
        ),
    ],
)
def test_a_pod_load_is_known_only_from_a_fresh_answer_of_that_pod(
    recorded: PodSample | None, asked: dict[str, Any], now: float, expected: PodLoad | None
) -> None:
    samples = Samples()
    if recorded is not None:
        samples.record(recorded)
    assert samples.load(asked, now) == expected


def test_samples_by_deployment_and_forgotten_with_the_pod() -> None:
    samples = Samples()
    other = EnginePod("ns", "qwen-7b-def", "uid-2", "qwen-7b", "10.1.0.6", Engine.VLLM)
    elsewhere = EnginePod("ns2", "qwen-7b-abc", "uid-3", "qwen-7b", "10.1.0.7", Engine.VLLM)
    for engine_pod_ in (SCRAPED, other, elsewhere):
        samples.record(PodSample(engine_pod_, 100, PERIOD, ANSWER, 1.7e9))
    assert {s.pod.name for s in samples.of_deployment("ns", "qwen-7b")} == {
        "qwen-7b-abc",
        "qwen-7b-def",
    }
    samples.forget(SCRAPED)
    samples.forget(SCRAPED)  # twice: nothing left to forget
    assert [s.pod for s in samples.of_deployment("ns", "qwen-7b")] == [other]
    assert len(samples) == 2
    samples.clear()
    assert len(samples) == 0


def test_the_autoscaler_counts_answers_unknown_and_starting_pods() -> None:
    samples = Samples()
    answered = pod("a", uid="ua", ip="10.1.0.1")
    stale = pod("b", uid="ub", ip="10.1.0.2")
    silent = pod("c", uid="uc", ip="10.1.0.3")
    never_scraped = pod("d", uid="ud", ip="10.1.0.4")
    loading = pod("e", uid="ue", ready=False)
    pending = pod("f", uid="uf", phase="Pending", ip=None, ready=False)
    for body, at, answer in ((answered, 100, ANSWER), (stale, 80, ANSWER), (silent, 100, None)):
        found = engine_pod(body)
        assert found is not None
        samples.record(PodSample(found, at, PERIOD, answer, 1.7e9))
    pods = [answered, stale, silent, never_scraped, loading, pending]
    assert observe(samples, pods, now=101) == LoadSample(
        time=101, pods=(ANSWER.load,), unknown=3, starting=2
    )


def test_the_autoscaler_passes_the_pods_measured_start_up() -> None:
    samples = Samples()
    ready = pod("a", uid="ua", ip="10.1.0.1")
    ready["metadata"]["creationTimestamp"] = "2026-12-01T10:00:00Z"
    ready["status"]["conditions"][0]["lastTransitionTime"] = "2026-12-01T10:02:30Z"
    loading = pod("b", uid="ub", ready=False)
    loading["metadata"]["creationTimestamp"] = "2026-12-01T10:05:00Z"
    assert observe(samples, [ready, loading], now=1).startup_seconds == 150.0
    assert observe(samples, [loading], now=1).startup_seconds is None


# -- the loops ----------------------------------------------------------------------------------


class FakeScraper:
    """Answers from a table by pod IP (None: the pod does not answer); records every call."""

    def __init__(self, answers: dict[str, EngineSample | None]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, Engine]] = []

    async def sample(
        self, pod_ip: str, engine: EngineProfile, targets: object = None
    ) -> EngineSample | None:
        self.calls.append((pod_ip, engine.engine))
        await asyncio.sleep(0)
        return self.answers.get(pod_ip)


async def until(check: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Poll `check` in the event loop until it holds; fail at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


def scrapes_total(result: str) -> float:
    return metrics.REGISTRY.get_sample_value("modelfleet_engine_scrapes_total", {"result": result})


def pods_scraped() -> float | None:
    return metrics.REGISTRY.get_sample_value("modelfleet_engine_pods_scraped")


def with_loops(
    scenario: Callable[[Loops, FakeScraper], Awaitable[None]],
    answers: dict[str, EngineSample | None],
) -> None:
    async def main() -> None:
        loops = Loops(Samples(), period=0.01, jitter=lambda: 0.5)
        scraper = FakeScraper(answers)
        runner = asyncio.create_task(loops.run(scraper))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        try:
            await scenario(loops, scraper)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        assert loops.scraping == set() and len(loops.samples) == 0
        assert pods_scraped() == 0

    asyncio.run(main())


def test_every_serving_pod_is_scraped_until_it_goes() -> None:
    second = EnginePod("ns", "qwen-7b-def", "uid-2", "qwen-7b", "10.1.0.6", Engine.SGLANG)
    ok_before, unknown_before = scrapes_total("ok"), scrapes_total("unknown")

    async def scenario(loops: Loops, scraper: FakeScraper) -> None:
        loops.want(SCRAPED.key, SCRAPED)
        loops.want(second.key, second)
        await until(lambda: len(loops.samples) == 2, "both pods sampled")
        assert loops.scraping == {SCRAPED.key, second.key}
        assert pods_scraped() == 2
        assert ("10.1.0.6", Engine.SGLANG) in scraper.calls  # each with its own engine
        [answered] = [s for s in loops.samples.of_deployment("ns", "qwen-7b") if s.pod == SCRAPED]
        assert loops.samples.load(pod(), answered.time) == ANSWER.load
        assert answered.engine == ANSWER  # the token counters kept raw, with wall-clock time
        assert abs(answered.unix_time - time.time()) < 60
        # The second pod does not answer: unknown, counted as such.
        await until(lambda: scrapes_total("unknown") > unknown_before, "an unknown scrape")
        assert scrapes_total("ok") > ok_before
        # Again and again, every period.
        calls = len(scraper.calls)
        await until(lambda: len(scraper.calls) >= calls + 4, "more scrapes")

        loops.want(second.key, None)  # gone, or not ready any more
        await until(lambda: loops.scraping == {SCRAPED.key}, "the second pod's loop stopped")
        assert [s.pod for s in loops.samples.of_deployment("ns", "qwen-7b")] == [SCRAPED]
        assert pods_scraped() == 1

    with_loops(scenario, {SCRAPED.ip: ANSWER})


def test_a_pod_that_changed_is_scraped_at_its_new_address() -> None:
    moved = EnginePod("ns", "qwen-7b-abc", "uid-1", "qwen-7b", "10.1.0.9", Engine.VLLM)

    async def scenario(loops: Loops, scraper: FakeScraper) -> None:
        loops.want(SCRAPED.key, SCRAPED)
        await until(lambda: scraper.calls, "a first scrape")
        loops.want(moved.key, moved)
        await until(lambda: scraper.calls[-1][0] == moved.ip, "a scrape at the new IP")
        calls = len(scraper.calls)
        await until(lambda: len(scraper.calls) >= calls + 3, "more scrapes")
        assert {ip for ip, _ in scraper.calls[calls:]} == {moved.ip}

    with_loops(scenario, {SCRAPED.ip: ANSWER, "10.1.0.9": ANSWER})


def test_a_terminating_pod_is_scraped_once_more_for_its_counters() -> None:
    last = EngineSample(ANSWER.load, prompt_tokens=900.0, generation_tokens=90.0)

    async def main() -> None:
        loops = Loops(Samples(), period=100.0, jitter=lambda: 0.5)  # no periodic scrape soon
        heard: list[PodSample] = []
        loops.samples.listeners.append(heard.append)  # as the cost ledger listens
        scraper = FakeScraper({SCRAPED.ip: ANSWER})
        runner = asyncio.create_task(loops.run(scraper))  # type: ignore[arg-type]
        try:
            loops.want(SCRAPED.key, SCRAPED)
            await until(lambda: len(heard) == 1, "the first scrape")
            scraper.answers[SCRAPED.ip] = last  # what it served until it was told to stop
            loops.want(SCRAPED.key, None, last_call=True)
            await until(lambda: len(heard) == 2, "the last scrape", timeout=2)
            assert heard[-1].engine == last and heard[-1].pod == SCRAPED
            assert loops.scraping == set()
            assert len(loops.samples) == 0  # its load is not kept: it takes no new requests
            await asyncio.sleep(0.05)
            assert len(scraper.calls) == 2
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(main())


def test_a_pod_that_goes_away_is_not_scraped_again() -> None:
    async def scenario(loops: Loops, scraper: FakeScraper) -> None:
        loops.want(SCRAPED.key, SCRAPED)
        await until(lambda: scraper.calls, "a first scrape")
        loops.want(SCRAPED.key, None)  # deleted, or not ready: no last call
        await until(lambda: loops.scraping == set(), "the pod's loop stopped")
        calls = len(scraper.calls)
        await asyncio.sleep(0.1)
        assert len(scraper.calls) == calls

    with_loops(scenario, {SCRAPED.ip: ANSWER})


def test_a_failing_scrape_is_counted_and_the_loop_goes_on() -> None:
    class Broken(FakeScraper):
        async def sample(
            self, pod_ip: str, engine: EngineProfile, targets: object = None
        ) -> EngineSample | None:
            self.calls.append((pod_ip, engine.engine))
            raise RuntimeError("a bug")

    errors = "modelfleet_handler_errors_total"
    before = metrics.REGISTRY.get_sample_value(errors, {"handler": "scrape"}) or 0

    async def main() -> None:
        loops = Loops(Samples(), period=0.01, jitter=lambda: 0.5)
        scraper = Broken({})
        runner = asyncio.create_task(loops.run(scraper))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        loops.want(SCRAPED.key, SCRAPED)
        await until(lambda: len(scraper.calls) >= 3, "scrapes after a failure")
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(main())
    assert (metrics.REGISTRY.get_sample_value(errors, {"handler": "scrape"}) or 0) >= before + 3


def test_autoscaled_deployments_set_the_pace_of_their_pods() -> None:
    loops = Loops(Samples(), period=5.0)
    other = EnginePod("ns", "llama-abc", "uid-9", "llama", "10.1.0.8", Engine.VLLM)
    loops.pace(SCRAPED.owner, 2.0)
    loops.pace(other.owner, 30.0)  # slower than the default: the default holds
    assert (loops.period_of(SCRAPED), loops.period_of(other)) == (2.0, 5.0)
    loops.pace(SCRAPED.owner, None)
    assert loops.period_of(SCRAPED) == 5.0


def test_stopping_forgets_every_pod_so_a_new_leader_starts_from_its_own_listing() -> None:
    async def main() -> None:
        loops = Loops(Samples(), period=0.01, jitter=lambda: 0.5)
        scraper = FakeScraper({SCRAPED.ip: ANSWER})
        runner = asyncio.create_task(loops.run(scraper))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        loops.want(SCRAPED.key, SCRAPED)
        loops.pace(SCRAPED.owner, 1.0)
        await until(lambda: len(loops.samples) == 1, "a sample")
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        assert (loops.scraping, len(loops.samples), loops.period_of(SCRAPED)) == (set(), 0, 0.01)
        calls = len(scraper.calls)
        # Stood by: what the old watch said is gone; the next run scrapes only what it is told.
        runner = asyncio.create_task(loops.run(scraper))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(scraper.calls) == calls and loops.scraping == set()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(main())


def test_leaving_the_lead_drops_per_object_series() -> None:
    metrics.AUTOSCALER_LAST_DECISION.labels("ns", "a").set(1.0)
    metrics.PERIODIC_WAITING.set(3)
    metrics.stopped_leading()
    name = "modelfleet_autoscaler_last_decision_timestamp_seconds"
    assert metrics.REGISTRY.get_sample_value(name, {"namespace": "ns", "name": "a"}) is None
    assert metrics.REGISTRY.get_sample_value("modelfleet_periodic_work_waiting") == 0
