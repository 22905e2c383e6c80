"""Autoscaling benchmark (issue 4): every policy on the development trace, and the issue's targets.

Runs `modelfleet simulate --policy all` in-process on bench/traces/azure_llm_2023_code.csv (one
hour of a production code-completion service) against bench/autoscale/deployment.yaml
(Llama-3.1-8B on one L40S per replica: see the comments in that file for why), and prints per
policy GPU-hours, cost, SLO attainment, TTFT percentiles, max/mean replicas and scale events,
the GPU-hour ratios modelfleet/static-peak and modelfleet/oracle, then checks the targets:

  slo          modelfleet SLO attainment >= 0.99 (--slo-target)
  vs-static    modelfleet GPU-hours <= 0.75 x static-peak's ("well below": a quarter saved)
  vs-oracle    modelfleet GPU-hours <= 1.25 x the oracle's
  vs-inflight  modelfleet GPU-hours <= inflight's and SLO attainment >= inflight's

PASS/FAIL per target; exit 1 on any FAIL. Then, unless --no-frontier, the evidence for reading
the result: the trace's burstiness (prompt tokens/s over windows of 1 s to 5 min), the static
cost/SLO curve (N fixed replicas), and modelfleet at other autoscaling settings, with a
zero-start-up variant, each next to the cheapest static count that serves as well.
Deterministic; about ten seconds.

    .venv/bin/python bench/autoscale/run.py [--trace CSV] [--deployment FILE] [--time-scale X]
                                            [--slo-ttft S] [--startup-delay S] [-o table|json]
                                            [--no-frontier]

Trace data: Azure LLM inference trace 2023 (Azure Public Dataset), CC-BY 4.0. Patel et al.,
"Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from modelfleet.dev.replay.command import describe_setup, format_table, prepare
from modelfleet.dev.replay.metrics import Result
from modelfleet.dev.replay.policies import KUBEAI_TARGET_REQUESTS
from modelfleet.dev.replay.runner import (
    POLICIES,
    Setup,
    ratios,
    run_modelfleet,
    run_policies,
    run_static,
)
from modelfleet.dev.replay.trace import TraceRequest

HERE = Path(__file__).resolve().parent
TRACE = HERE.parent / "traces" / "azure_llm_2023_code.csv"
DEPLOYMENT = HERE / "deployment.yaml"
ATTRIBUTION = (
    "Trace: Azure LLM inference trace 2023 (code), Azure Public Dataset, CC-BY 4.0; "
    'Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting", '
    "ISCA 2024."
)
# Other autoscaling settings tried for the frontier: (label, spec.autoscaling overrides). The
# defaults first; then a longer memory (hold replicas 15 minutes), scaling on any queue, both.
VARIANTS: tuple[tuple[str, dict[str, float]], ...] = (
    ("defaults", {}),
    ("scaleDownWindowSeconds 900", {"scale_down_window_seconds": 900}),
    ("targetQueueDepth 0", {"target_queue_depth": 0}),
    ("both", {"scale_down_window_seconds": 900, "target_queue_depth": 0}),
)
BURST_WINDOWS = (1, 10, 60, 300)  # seconds
STATIC_POINTS = 12  # counts on the static curve (every count up to 12)
LAGS = (1, 10, 30, 120)  # seconds: how far ahead the load of one second says anything
STATIC_RATIO_MAX = 0.75  # "well below static peak": at least a quarter of the GPU-hours saved
ORACLE_RATIO_MAX = 1.25


def check(results: list[Result], slo_target: float) -> list[tuple[str, bool, str]]:
    by = {r.policy: r for r in results}
    mine, static, oracle, inflight = (
        by[name] for name in ("modelfleet", "static-peak", "oracle", "inflight")
    )
    vs_static = mine.gpu_hours / static.gpu_hours
    vs_oracle = mine.gpu_hours / oracle.gpu_hours
    return [
        (
            "slo",
            mine.slo_attainment >= slo_target,
            f"modelfleet SLO attainment {mine.slo_attainment:.4f} >= {slo_target}",
        ),
        (
            "vs-static",
            vs_static <= STATIC_RATIO_MAX,
            f"GPU-hours modelfleet/static-peak {vs_static:.3f} <= {STATIC_RATIO_MAX}",
        ),
        (
            "vs-oracle",
            vs_oracle <= ORACLE_RATIO_MAX,
            f"GPU-hours modelfleet/oracle {vs_oracle:.3f} <= {ORACLE_RATIO_MAX}",
        ),
        (
            "vs-inflight",
            mine.gpu_hours <= inflight.gpu_hours + 1e-9
            and mine.slo_attainment >= inflight.slo_attainment - 1e-9,
            f"GPU-hours {mine.gpu_hours:.2f} <= inflight {inflight.gpu_hours:.2f} and "
            f"SLO attainment {mine.slo_attainment:.4f} >= inflight {inflight.slo_attainment:.4f}",
        ),
    ]


def burstiness(requests: list[TraceRequest]) -> list[tuple[int, float, float]]:
    """(window, highest, mean) prompt tokens/s over consecutive windows of each length."""
    span = max((r.arrival for r in requests), default=0.0)
    out = []
    for window in BURST_WINDOWS:
        buckets = [0.0] * (int(span // window) + 1)
        for request in requests:
            buckets[int(request.arrival // window)] += request.prompt_tokens
        out.append((window, max(buckets) / window, sum(buckets) / len(buckets) / window))
    return out


def autocorrelation(requests: list[TraceRequest]) -> list[tuple[int, float]]:
    """(lag, correlation of per-second prompt tokens with themselves `lag` seconds later)."""
    span = max((r.arrival for r in requests), default=0.0)
    series = [0.0] * (int(span) + 1)
    for request in requests:
        series[int(request.arrival)] += request.prompt_tokens
    n = len(series)
    mean = sum(series) / n
    variance = sum((v - mean) ** 2 for v in series) / n
    out = []
    for lag in LAGS:
        if lag >= n or variance == 0:
            continue
        pairs = zip(series[: n - lag], series[lag:], strict=True)
        covariance = sum((a - mean) * (b - mean) for a, b in pairs) / (n - lag)
        out.append((lag, covariance / variance))
    return out


def frontier(setup: Setup, static_peak: int) -> dict[str, list[Result]]:
    """The static cost/SLO curve, and modelfleet at other settings (and with no start-up)."""
    points = min(static_peak, STATIC_POINTS)
    counts = sorted({max(1, round(static_peak * k / points)) for k in range(1, points + 1)})
    static = [run_static(setup, count) for count in counts]
    variants = []
    for label, overrides in VARIANTS:
        config = setup.autoscaling.model_copy(update=overrides)
        for delay in (setup.startup_delay, 0.0):
            variant = replace(setup, autoscaling=config, startup_delay=delay)
            result, _ = run_modelfleet(variant)
            name = f"{label}, start-up {delay:g} s"
            variants.append(replace(result, policy=name))
    return {"static": static, "modelfleet": variants}


def static_slo_at(static: list[Result], gpu_hours: float) -> float | None:
    """SLO attainment of the static curve at `gpu_hours`, linear between the counts tried."""
    curve = sorted((s.gpu_hours, s.slo_attainment) for s in static)
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        if x0 <= gpu_hours <= x1:
            return y0 + (y1 - y0) * (gpu_hours - x0) / (x1 - x0) if x1 > x0 else max(y0, y1)
    return None


def cheapest_static_as_good(static: list[Result], result: Result) -> Result | None:
    good = [s for s in static if s.slo_attainment >= result.slo_attainment]
    return min(good, key=lambda s: s.gpu_hours, default=None)


def format_frontier(requests: list[TraceRequest], curves: dict[str, list[Result]]) -> str:
    lines = ["", "Burstiness: prompt tokens/s, highest window vs the mean"]
    for window, highest, mean in burstiness(requests):
        ratio = highest / mean if mean else float("inf")
        lines.append(f"  {window:>4} s windows: highest {highest:>9,.0f}  ({ratio:.1f} x the mean)")
    lags = ", ".join(f"{lag} s: {r:.2f}" for lag, r in autocorrelation(requests))
    lines.append(f"  per-second load vs the same load later (autocorrelation): {lags}")
    lines += ["", "Static curve (N fixed replicas, no start-up)", "  N     GPU-H   SLO"]
    for result in curves["static"]:
        count = result.extra["staticReplicas"]
        lines.append(f"  {count:<5} {result.gpu_hours:<7.2f} {result.slo_attainment:.4f}")
    lines += [
        "",
        "modelfleet at other settings, next to the static curve: its SLO at the same GPU-hours",
        "(linear between counts) and the cheapest static count that serves as well",
        f"  {'SETTINGS':<44} GPU-H   SLO     STATIC SLO  STATIC AS GOOD",
    ]
    for result in curves["modelfleet"]:
        match = cheapest_static_as_good(curves["static"], result)
        versus = (
            f"{match.extra['staticReplicas']} replicas, {match.gpu_hours:.2f} GPU-H"
            if match
            else "none tried"
        )
        same = static_slo_at(curves["static"], result.gpu_hours)
        at_same = "-" if same is None else f"{same:.4f}"
        lines.append(
            f"  {result.policy:<44} {result.gpu_hours:<7.2f} {result.slo_attainment:.4f}  "
            f"{at_same:<11} {versus}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument("--deployment", type=Path, default=DEPLOYMENT)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--slo-ttft", type=float, default=2.0)
    parser.add_argument("--slo-target", type=float, default=0.99)
    parser.add_argument("--startup-delay", type=float, default=120.0)
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument("--no-frontier", action="store_true", help="skip the evidence section")
    args = parser.parse_args()
    # The arguments `modelfleet simulate` would get: every policy, default baselines.
    args.policy, args.gpu_product, args.gpus = "all", None, None
    args.inflight_target, args.oracle_slot = float(KUBEAI_TARGET_REQUESTS), 60.0
    started = time.perf_counter()
    prepared = prepare(args, sys.stderr, prog="bench/autoscale")
    if prepared is None:
        return 2
    deployment, setup = prepared
    requests = list(setup.requests)
    results = run_policies(setup, POLICIES)
    extra = ratios(results)
    checks = check(results, args.slo_target)
    peak = next(r for r in results if r.policy == "static-peak").extra["staticReplicas"]
    curves = {} if args.no_frontier else frontier(setup, int(peak))
    if args.output == "json":
        document = {
            "trace": str(args.trace),
            "attribution": ATTRIBUTION,
            "results": [r.as_dict() for r in results],
            "ratios": extra,
            "targets": [{"name": n, "pass": ok, "detail": d} for n, ok, d in checks],
            "burstiness": [
                {"windowSeconds": w, "highestPromptTokensPerSecond": h, "meanPerSecond": m}
                for w, h, m in burstiness(requests)
            ],
            "autocorrelation": [
                {"lagSeconds": lag, "correlation": r} for lag, r in autocorrelation(requests)
            ],
            "frontier": {k: [r.as_dict() for r in v] for k, v in curves.items()},
        }
        print(json.dumps(document, indent=2))
    else:
        print(ATTRIBUTION)
        print(format_table(results, extra, describe_setup(setup, deployment, str(args.trace))))
        for name, ok, detail in checks:
            print(f"{'PASS' if ok else 'FAIL'}  {name:<12} {detail}")
        if curves:
            print(format_frontier(requests, curves))
        print(f"({time.perf_counter() - started:.1f} s)")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
