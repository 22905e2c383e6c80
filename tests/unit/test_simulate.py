"""`modelfleet simulate`: trace parsing, router, accounting, baselines, the operator's policy, CLI.

Router and accounting tests use FixedLatencyEngine (below), a test double with exact timings;
the baseline and policy tests run the real engine model (modelfleet.perf.engine) and the real
autoscale.policy.decide().
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.api.types import AutoscalingSpec
from modelfleet.autoscale import policy as autoscale_policy
from modelfleet.autoscale.policy import Limits
from modelfleet.dev.replay import policies
from modelfleet.dev.replay.command import add_simulate_command, load_deployment, setup_for
from modelfleet.dev.replay.fleet import FleetView, Outcome, Simulation
from modelfleet.dev.replay.metrics import attainment, percentile
from modelfleet.dev.replay.policies import FixedController, InflightController
from modelfleet.dev.replay.runner import (
    Setup,
    run_modelfleet,
    run_policies,
    run_static_peak,
)
from modelfleet.dev.replay.trace import TraceError, TraceRequest, parse_trace, read_trace
from modelfleet.perf.engine import EngineLoad, Request, RequestEvent

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


# Trace parsing -------------------------------------------------------------------------------


def test_azure_rows_become_relative_arrivals() -> None:
    text = (
        HEADER + "2023-11-16 18:17:04.5,100,10\n"
        "\n"
        "2023-11-16 18:17:03.9799600,4808,0\n"
        "2023-11-16 18:18:03.97996,7,3\n"
    )
    requests = parse_trace(io.StringIO(text))
    assert [r.prompt_tokens for r in requests] == [4808, 100, 7]  # sorted by time
    assert requests[0] == TraceRequest(0.0, 4808, 1)  # 0 generated tokens -> 1
    assert requests[1].arrival == pytest.approx(0.52004)
    assert requests[2].arrival == pytest.approx(60.0, abs=1e-6)


def test_time_scale_compresses_and_seconds_are_accepted() -> None:
    text = "GeneratedTokens,TIMESTAMP,ContextTokens\n5,10,1\n5,30.5,2\n"
    requests = parse_trace(io.StringIO(text), time_scale=10)
    assert requests == [TraceRequest(0.0, 1, 5), TraceRequest(2.05, 2, 5)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEADER + "1,10,5\n2,abc,5\n", "t.csv:3: ContextTokens 'abc' is not a non-negative"),
        (HEADER + "1,10,5\n2,10,-1\n", "t.csv:3: GeneratedTokens '-1'"),
        (HEADER + "1,10\n", "t.csv:2: expected 3 fields, got 2"),
        (HEADER + "2023-13-01 00:00:00,10,5\n", "t.csv:2: TIMESTAMP '2023-13-01 00:00:00'"),
        (HEADER + "nan,10,5\n", "t.csv:2: TIMESTAMP 'nan' is not a time"),
        ("time,ContextTokens,GeneratedTokens\n", "t.csv:1: expected a header"),
        (HEADER, "t.csv: no requests"),
        ("", "t.csv: no requests"),
    ],
)
def test_bad_traces_name_the_line(text: str, message: str) -> None:
    with pytest.raises(TraceError) as error:
        parse_trace(io.StringIO(text), source="t.csv")
    assert message in str(error.value)


def test_missing_trace_file(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="No such file"):
        read_trace(tmp_path / "nope.csv")


# Metrics -------------------------------------------------------------------------------------


def test_percentile_is_nearest_rank_and_unserved_misses() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.99) == 99
    assert percentile([1.0, 2.0], 0.99) == 2.0
    assert attainment([0.5, 2.0, 2.5, None], 2.0) == 0.5


# A test double with exact timings ------------------------------------------------------------


class FixedLatencyEngine:
    """Every request: first token `ttft` after submission, finished `service` after it."""

    def __init__(self, now: float, ttft: float, service: float, log: list[Any]) -> None:
        self._now = now
        self.ttft = ttft
        self.service = service
        self.pending: list[RequestEvent] = []
        self.log = log
        self.name = len([e for e in log if isinstance(e, str)])
        log.append(f"engine {self.name} at {now}")

    @property
    def now(self) -> float:
        return self._now

    @property
    def in_flight(self) -> int:
        return sum(1 for e in self.pending if e.kind == "finished")

    def submit(self, request: Request) -> None:
        assert request.arrival >= self._now
        self.log.append((self.name, int(request.id), request.arrival))
        self.pending.append(RequestEvent(request.id, "first_token", request.arrival + self.ttft))
        self.pending.append(RequestEvent(request.id, "finished", request.arrival + self.service))
        self.pending.sort(key=lambda e: e.time)

    def advance(self, until: float) -> list[RequestEvent]:
        done = [e for e in self.pending if e.time <= until]
        self.pending = [e for e in self.pending if e.time > until]
        self._now = max(self._now, until)
        return done

    def next_event_time(self) -> float | None:
        return self.pending[0].time if self.pending else None

    def load(self) -> EngineLoad:
        return EngineLoad(0, self.in_flight, 0.0, 0, 0)


def fixed_engines(
    log: list[Any], ttft: float = 0.5, service: float = 5.0
) -> Callable[[float], FixedLatencyEngine]:
    return lambda now: FixedLatencyEngine(now, ttft, service, log)


class Scripted:
    """Starts with `initial`; at each decision time in `script`, asks for that count."""

    name = "scripted"

    def __init__(self, initial: int, script: dict[float, int], every: float = 10.0) -> None:
        self.initial, self.script, self.every = initial, script, every
        self.views: list[tuple[float, int, int]] = []

    def initial_replicas(self) -> int:
        return self.initial

    def interval(self) -> float | None:
        return self.every

    def decide(self, fleet: FleetView) -> int:
        self.views.append((fleet.now, fleet.replicas, fleet.starting))
        return self.script.get(fleet.now, fleet.replicas)

    def reason(self) -> str:
        return "script"


def arrivals(*times: float, prompt: int = 100, output: int = 10) -> list[TraceRequest]:
    return [TraceRequest(t, prompt, output) for t in times]


# Router --------------------------------------------------------------------------------------


def test_round_robin_over_ready_replicas() -> None:
    log: list[Any] = []
    Simulation(
        arrivals(0, 1, 2, 3, 4, 5, 6),
        fixed_engines(log),
        FixedController(3),
        startup_delay=0,
        routing="round-robin",
    ).run()
    assignments = [
        (engine, request) for engine, request, _ in (e for e in log if isinstance(e, tuple))
    ]
    assert assignments == [(0, 0), (1, 1), (2, 2), (0, 3), (1, 4), (2, 5), (0, 6)]


def test_requests_wait_in_the_router_while_no_replica_is_ready() -> None:
    log: list[Any] = []
    controller = Scripted(0, {0.0: 1})  # scale from zero at the first decision
    outcome = Simulation(
        arrivals(1, 2, 50), fixed_engines(log, ttft=0.5), controller, startup_delay=30
    ).run()
    # Ready at 30: the two queued requests go out then; their wait counts against TTFT.
    assert outcome.ttft == [pytest.approx(29.5), pytest.approx(28.5), pytest.approx(0.5)]
    assert [e for e in log if isinstance(e, tuple)][:2] == [(0, 0, 30.0), (0, 1, 30.0)]
    assert controller.views[1] == (10.0, 1, 1)  # loading replicas are "starting"


def test_unserved_requests_when_nothing_ever_starts() -> None:
    outcome = Simulation(
        arrivals(1, 2), fixed_engines([]), FixedController(0), startup_delay=0
    ).run()
    assert outcome.ttft == [None, None]
    assert outcome.replica_seconds == 0


# GPU-hours accounting ------------------------------------------------------------------------


def test_a_new_replica_costs_from_its_creation_while_loading() -> None:
    trace = arrivals(0, 1000)
    outcome = Simulation(trace, fixed_engines([]), Scripted(1, {100.0: 2}), startup_delay=120).run()
    # replica 0: 0..1005 (last request finishes at 1005); replica 1: created at 100, not ready
    # until 220, still costs from 100.
    assert outcome.end_time == pytest.approx(1005)
    assert outcome.replica_seconds == pytest.approx(1005 + 905)
    assert outcome.max_replicas == 2
    assert outcome.scale_events == 1


def test_a_removed_replica_drains_then_stops_costing() -> None:
    log: list[Any] = []
    trace = arrivals(0, 1, 2, 3, 500)
    controller = Scripted(2, {10.0: 1})
    outcome = Simulation(trace, fixed_engines(log, service=30), controller, startup_delay=0).run()
    # Replica 1 (the most recently ready, ties: newest) got requests 1 and 3 (finish 31 and 33):
    # removed at 10, it drains until 33. Replica 0 serves request 4 (500 -> 530).
    assert outcome.replica_seconds == pytest.approx(530 + 33)
    assert [e for e in log if isinstance(e, tuple)][-1] == (0, 4, 500.0)
    assert outcome.scale_events == 1
    assert outcome.changes[0].before == 2 and outcome.changes[0].after == 1


def test_a_loading_replica_is_removed_first_and_stops_at_once() -> None:
    trace = arrivals(0, 100)
    outcome = Simulation(
        trace, fixed_engines([]), Scripted(1, {10.0: 2, 20.0: 1}), startup_delay=120
    ).run()
    assert outcome.replica_seconds == pytest.approx(105 + 10)
    assert outcome.scale_events == 2


def test_gpu_hours_and_cost_scale_with_gpus_and_price() -> None:
    from modelfleet.dev.replay.metrics import summarize

    outcome = Outcome(
        ttft=[1.0], replica_seconds=7200, end_time=3600, max_replicas=2, scale_events=0
    )
    result = summarize(
        "x", outcome, slo_seconds=2, gpus_per_replica=4, hourly_cost=12.0, wall_seconds=0
    )
    assert result.gpu_hours == 8.0
    assert result.cost_usd == 24.0
    assert result.mean_replicas == 2.0


# The real engine model and policy ------------------------------------------------------------

DEPLOYMENT = {
    "apiVersion": "modelfleet.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "bench"},
    "spec": {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "maxContextLength": 8192,
        "gpu": {"product": "NVIDIA-L4", "count": 1},
        "replicas": 1,
        "minReplicas": 1,
        "maxReplicas": 6,
    },
}


def bursty_trace() -> list[TraceRequest]:
    """Quiet, a 90 s burst of long prompts, quiet again: 20 minutes."""
    requests = [TraceRequest(float(t), 500, 20) for t in range(0, 120, 10)]
    requests += [TraceRequest(120 + i * 0.15, 2000, 30) for i in range(600)]
    requests += [TraceRequest(float(t), 500, 20) for t in range(220, 1200, 10)]
    return requests


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    path = tmp_path / "md.yaml"
    path.write_text(yaml.safe_dump(DEPLOYMENT))
    return setup_for(load_deployment(path), bursty_trace(), startup_delay=60)


def test_static_peak_meets_the_slo_and_one_fewer_does_not(setup: Setup) -> None:
    result, _ = run_static_peak(setup)
    count = result.extra["staticReplicas"]
    assert count > 1
    assert result.extra["sloTargetMet"] is True
    assert result.slo_attainment >= setup.slo_target
    fewer = Simulation(
        setup.requests, setup.engine_factory, FixedController(count - 1), startup_delay=0
    ).run()
    assert attainment(fewer.ttft, setup.slo_seconds) < setup.slo_target
    assert result.scale_events == 0


def test_oracle_uses_the_fewest_gpu_hours(setup: Setup) -> None:
    results = {r.policy: r for r in run_policies(setup, ("modelfleet", "static-peak", "oracle"))}
    oracle = results["oracle"]
    assert oracle.gpu_hours <= results["static-peak"].gpu_hours
    assert oracle.gpu_hours <= results["modelfleet"].gpu_hours
    schedule = oracle.extra["schedule"]
    assert max(schedule) > 1 and schedule[-1] == 1


def test_modelfleet_policy_calls_the_operators_decide(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, Any]] = []
    real = autoscale_policy.decide

    def spy(
        config: AutoscalingSpec,
        limits: Limits,
        current: int,
        sample: Any,
        state: Any,
        slo_target: float = 0.99,
        prefill: float | None = None,
    ) -> Any:
        calls.append((current, sample))
        return real(config, limits, current, sample, state, slo_target, prefill)

    monkeypatch.setattr(policies, "decide", spy)
    # The SLO feedback holds the count for 10 minutes after the burst's misses: this short
    # trace ends before that, so it is off here to see the way down.
    result, outcome = run_modelfleet(dataclasses.replace(setup, slo_feedback=False))
    interval = setup.autoscaling.interval_seconds
    assert len(calls) >= setup.requests[-1].arrival // interval
    assert [sample.time for _, sample in calls[:3]] == [0, interval, 2 * interval]
    # Ready replicas are pods, loading ones are "starting".
    assert all(len(s.pods) + s.starting == current for current, s in calls)
    assert any(s.starting > 0 for _, s in calls)
    assert all(s.first_tokens is None for _, s in calls)
    # It scaled up for the burst and back down, within the bounds.
    assert 1 < result.max_replicas <= setup.limits.max_replicas
    assert result.scale_events == len(outcome.changes) >= 2
    assert all(
        setup.limits.min_replicas <= c.after <= setup.limits.max_replicas for c in outcome.changes
    )
    assert outcome.changes[-1].after < result.max_replicas


def test_modelfleet_sees_first_tokens_and_the_prompt_rate(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples: list[Any] = []
    real = autoscale_policy.decide

    def spy(*args: Any) -> Any:
        samples.append(args[3])
        return real(*args)

    monkeypatch.setattr(policies, "decide", spy)
    run_modelfleet(setup)
    # The first tokens of each interval (the engines' TTFT histogram), all of them.
    assert sum(s.first_tokens for s in samples) <= len(setup.requests)
    assert sum(s.first_tokens for s in samples) > len(setup.requests) / 2
    assert sum(s.first_tokens_within_slo for s in samples) < sum(s.first_tokens for s in samples)
    # ... and the prompt rate of each interval after the first (the burst: 2000 per 0.15 s).
    assert samples[0].prompt_tokens_per_s is None
    assert max(s.prompt_tokens_per_s or 0 for s in samples) >= 2000 / 0.15 * 0.9


def test_inflight_follows_kubeai_rules() -> None:
    class View:
        def __init__(self, now: float, in_flight: int, replicas: int) -> None:
            self.now, self._in_flight, self.replicas = now, in_flight, replicas
            self.starting, self.router_queue = 0, 0

        def ready_loads(self) -> list[EngineLoad]:
            return []

        def ready_in_flight(self) -> int:
            return self._in_flight

    controller = InflightController(Limits(1, 10), 1, target=10, window=30, scale_down_delay=30)
    assert controller.decide(View(0, 45, 1)) == 5  # ceil(45 / 10)
    controller = InflightController(Limits(1, 10), 1, target=10, window=30, scale_down_delay=30)
    load = ((0, 50), (10, 0), (20, 0), (30, 0), (40, 0))
    # Window averages 50, 25, 16.7, 0, 0 ask for 5, 3, 2, 1, 1; the lower count is applied only
    # once it has been wanted for 30 s (from t=10).
    assert [controller.decide(View(t, n, 5)) for t, n in load] == [5, 5, 5, 5, 1]


# CLI -----------------------------------------------------------------------------------------


def run_cli(
    tmp_path: Path, *argv: str, trace: str | None = None, manifest: Any = None
) -> tuple[int, str, str]:
    trace_path = tmp_path / "trace.csv"
    trace_path.write_text(
        trace
        if trace is not None
        else HEADER
        + "".join(f"{t},{p},{o}\n" for t, p, o in ((0, 500, 20), (5, 800, 10), (9, 300, 5)))
    )
    md = tmp_path / "md.yaml"
    md.write_text(manifest if isinstance(manifest, str) else yaml.safe_dump(manifest or DEPLOYMENT))
    parser = argparse.ArgumentParser()
    add_simulate_command(parser.add_subparsers())
    args = parser.parse_args(
        ["simulate", "--trace", str(trace_path), "--deployment", str(md), *argv]
    )
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_json_for_one_policy(tmp_path: Path) -> None:
    code, out, _ = run_cli(tmp_path, "-o", "json")
    assert code == 0
    document = json.loads(out)
    for key in (
        "policy",
        "gpuHours",
        "sloAttainment",
        "p50TtftSeconds",
        "p95TtftSeconds",
        "p99TtftSeconds",
        "maxReplicas",
        "meanReplicas",
        "scaleEvents",
        "requests",
        "costUsd",
        "simulatedSeconds",
        "wallSeconds",
    ):
        assert key in document
    assert document["policy"] == "modelfleet" and document["requests"] == 3


def test_cli_all_policies_table_and_json(tmp_path: Path) -> None:
    code, out, err = run_cli(tmp_path, "--policy", "all", "-o", "json")
    assert code == 0
    documents = json.loads(out)
    assert [d["policy"] for d in documents] == [
        "hourly",
        "modelfleet",
        "static-peak",
        "inflight",
        "keda-queue",
        "oracle",
    ]
    mine = documents[1]
    assert "gpuHoursVsStaticPeak" in mine and "gpuHoursVsOracle" in mine
    assert "static-peak: 1 replicas" in err  # progress on stderr
    code, out, _ = run_cli(tmp_path, "--policy", "all", "--gpu-product", "NVIDIA-H100-80GB-HBM3")
    assert code == 0
    assert "1x H100-80GB" in out and "GPU-hours modelfleet / oracle" in out


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trace": HEADER + "0,10,5\n1,ten,5\n"}, "trace.csv:3: ContextTokens 'ten'"),
        ({"manifest": "spec: [unclosed"}, "md.yaml:2:1: not valid YAML"),
        ({"manifest": {"kind": "Deployment"}}, "md.yaml: no ModelDeployment found"),
        (
            {"manifest": {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "minReplicas": 9}}},
            "minReplicas must not exceed maxReplicas",
        ),
        (
            {"manifest": {**DEPLOYMENT, "spec": {"model": "meta-llama/Llama-3.1-8B-Instruct"}}},
            "spec.maxReplicas is not set",
        ),
        (
            {"manifest": {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "model": "no/such"}}},
            "no feasible placement",
        ),
    ],
)
def test_cli_bad_input_exits_2(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    code, out, err = run_cli(tmp_path, **kwargs)
    assert code == 2, err
    assert out == ""
    assert message in err


def test_cli_missing_files_exit_2(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_simulate_command(parser.add_subparsers())
    args = parser.parse_args(
        ["simulate", "--trace", str(tmp_path / "t.csv"), "-f", str(tmp_path / "md.yaml")]
    )
    err = io.StringIO()
    assert args.func(args, io.StringIO(), err) == 2
    assert "md.yaml: No such file" in err.getvalue()


@pytest.mark.parametrize(
    "argv",
    [["--slo-ttft", "0"], ["--startup-delay", "-1"], ["--time-scale", "x"], ["--gpus", "3"]],
)
def test_cli_bad_flags_exit_2(tmp_path: Path, argv: Sequence[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_cli(tmp_path, *argv)
    assert exit_.value.code == 2
