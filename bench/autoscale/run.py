"""Autoscaling benchmark (issue 12): each policy on each trace, against the static curve and two
clairvoyants that play by the same rules, and the issue's targets.

Per trace (bench/traces/, each with its deployment here; `modelfleet simulate`'s code in-process,
random routing as a Service does it, 120 s start-up, TTFT <= 2 s):

- the static curve: N = 1, 2, ... fixed replicas (full runs, no start-up), GPU-hours, USD and SLO
  attainment, up to where attainment passes 0.999; "best static" = the cheapest count with
  attainment >= 0.99 over the whole trace;
- the hourly clairvoyant (one count per hour, chosen knowing the hour, fewest GPU-hours for the
  whole-trace target) and the per-slot oracle (one count per 60 s), both planned from that one
  static-curve pass and played as real runs: replicas ordered a start-up ahead and paid while
  loading, queue and running requests carried over, re-planned until they meet the target;
- modelfleet (the operator's policy), and the causal peers: KubeAI-style in-flight and a
  KEDA/HPA-style policy on vllm:num_requests_waiting. Every policy starts at the hourly
  clairvoyant's first-hour count.

Targets (exit 1 on a miss):
  slo           day traces (>= 6 h): modelfleet attainment >= 0.99
  saving        day traces: modelfleet saves >= 60% of the hourly clairvoyant's saving over best
                static (GPU-hours)
  curve         every trace: modelfleet's attainment >= the static curve's at its GPU-hours
                (linear between counts) - 0.005
  vs-<peer>     every trace, against each causal peer: when both meet the 0.99 target,
                modelfleet uses no more GPU-hours; when only one does, it is modelfleet;
                when neither does, modelfleet is no worse on both, or closer to (or
                further above) the static curve at its own GPU-hours than the peer

--variants adds a robustness pass (not pass/fail; --variants-only runs just that): each day
trace, derived four ways, with its own static counts around the 0.99 point and modelfleet
starting at that best static count: thin-0.7 (each request kept with probability 0.7),
dup-1.4 (each request plus, with probability 0.4, a copy within +-30 s), reversed (the
10-minute windows in reverse order, the timing inside each kept) and shifted (the windows
rotated by half the span: the trace starts mid-way). It prints modelfleet's GPU-hours over
the variant's best static, its attainment and its distance from the static curve.

Runs are spread over --jobs processes (default 2; the machine is shared). --hours H replays only
the first H hours of each trace (quick iteration; the targets then say met/missed, the same
rules). A full run takes a few minutes.

    .venv/bin/python bench/autoscale/run.py [--trace NAME ...] [--hours H] [--jobs N]
                                            [--routing R] [-o table|json]
                                            [--variants | --variants-only]

Trace data: Azure LLM inference trace 2023 (Azure Public Dataset), CC-BY 4.0; Patel et al.,
"Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024. ServeGen
workload data (Alibaba), Apache-2.0; Xiang, Li, Qian, Yu, Zhai, Jin et al., "ServeGen: Workload
Characterization and Generation of Large Language Model Serving in Production" (arXiv:2505.09999;
NSDI 2026). bench/traces/README.md has the details.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelfleet.dev.replay.command import Deployment, load_deployment, setup_for
from modelfleet.dev.replay.fleet import Outcome
from modelfleet.dev.replay.metrics import Result, attainment, summarize
from modelfleet.dev.replay.policies import FixedController
from modelfleet.dev.replay.runner import (
    HOUR,
    Setup,
    _simulate,
    run_clairvoyant,
    run_inflight,
    run_modelfleet,
    run_queue,
)
from modelfleet.dev.replay.trace import TraceRequest, read_trace

HERE = Path(__file__).resolve().parent
TRACES = HERE.parent / "traces"
# name: (trace file, deployment file)
BENCH: dict[str, tuple[str, str]] = {
    "azure-code": ("azure_llm_2023_code.csv", "deployment.yaml"),
    "servegen-language": ("servegen_language_12h.csv", "language.yaml"),
    "servegen-reasoning": ("servegen_reasoning_24h.csv", "reasoning.yaml"),
}
SLO_TARGET = 0.99
CURVE_MARGIN = 0.998  # the static curve runs until attainment passes this
CURVE_GAIN = 0.0005  # ... or gains less than this per count twice in a row (a plateau)
CURVE_SLACK = 0.005
SAVING_SHARE = 0.60
DAY_HOURS = 6.0
PEERS = ("inflight", "keda-queue")
ORACLE_SLOT = 300.0  # the ServeGen rates change every 10 min; 60 s slots plan on routing noise

# Set before the worker pool forks: the workers read the setups from here (closures in a Setup
# do not pickle, a fork copies them).
SETUPS: dict[str, Setup] = {}


def _static(key: str, count: int) -> tuple[str, int, Outcome]:
    setup = SETUPS[key]
    return key, count, _simulate(setup, FixedController(count, "static"), 0.0)


def _policy(key: str, name: str) -> tuple[str, str, Result]:
    setup = SETUPS[key]
    runner: Callable[[Setup], tuple[Result, Outcome]] = {
        "modelfleet": run_modelfleet,
        "inflight": run_inflight,
        "keda-queue": run_queue,
    }[name]
    result, _ = runner(setup)
    return key, name, result


def _clairvoyant(key: str, slot: float, name: str, curve: dict[int, Outcome]) -> Result:
    """The hourly clairvoyant starts at its own first-hour count (which becomes the common
    start); the oracle starts at the common start."""
    setup = SETUPS[key]
    initial = None if name == "hourly" else setup.initial_replicas
    return run_clairvoyant(setup, curve, slot, name, initial=initial).result


def _clairvoyant_task(args: tuple[str, float, str]) -> tuple[str, str, Result]:
    key, slot, name = args
    return key, name, _clairvoyant(key, slot, name, CURVES[key])


CURVES: dict[str, dict[int, Outcome]] = {}


@dataclass
class TraceRun:
    key: str
    deployment: Deployment
    setup: Setup
    curve: dict[int, Result]
    hourly: Result | None = None
    policies: dict[str, Result] | None = None


def static_result(setup: Setup, count: int, outcome: Outcome) -> Result:
    chosen_gpus = setup.gpus_per_replica
    return summarize(
        f"static ({count})",
        outcome,
        slo_seconds=setup.slo_seconds,
        gpus_per_replica=chosen_gpus,
        hourly_cost=setup.hourly_cost,
        wall_seconds=0.0,
        extra={"staticReplicas": count},
    )


def build_curves(keys: Sequence[str], pool: Any) -> None:
    """Static counts 1, 2, ... per trace, `jobs` at a time, until each passes CURVE_MARGIN."""
    next_count = dict.fromkeys(keys, 1)
    done: dict[str, bool] = dict.fromkeys(keys, False)
    best: dict[str, float] = dict.fromkeys(keys, -1.0)
    plateau: dict[str, int] = dict.fromkeys(keys, 0)
    width = max(1, pool._processes)
    while not all(done.values()):
        tasks = []
        for key in keys:
            if done[key]:
                continue
            top = SETUPS[key].limits.max_replicas
            for count in range(next_count[key], min(next_count[key] + width, top + 1)):
                tasks.append((key, count))
            next_count[key] += width
        for key, count, outcome in pool.starmap(_static, tasks):
            CURVES[key][count] = outcome
        for key in keys:
            if done[key]:
                continue
            counts = sorted(CURVES[key])
            reached = [attainment(CURVES[key][c].ttft, SETUPS[key].slo_seconds) for c in counts]
            if max(reached) >= CURVE_MARGIN or counts[-1] >= SETUPS[key].limits.max_replicas:
                done[key] = True
            elif max(reached) <= best[key] + CURVE_GAIN:
                plateau[key] += 1
                done[key] = plateau[key] >= 2
            best[key] = max(best[key], max(reached))


def static_slo_at(curve: Sequence[Result], gpu_hours: float) -> float:
    """The static curve's attainment at `gpu_hours`, linear between counts, flat beyond."""
    points = sorted((r.gpu_hours, r.slo_attainment) for r in curve)
    if gpu_hours <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 <= gpu_hours <= x1:
            return y0 + (y1 - y0) * (gpu_hours - x0) / (x1 - x0) if x1 > x0 else max(y0, y1)
    return points[-1][1]


def best_static(curve: Sequence[Result]) -> Result | None:
    good = [r for r in curve if r.slo_attainment >= SLO_TARGET]
    return min(good, key=lambda r: r.gpu_hours, default=None)


def checks(run: TraceRun) -> list[tuple[str, bool, str]]:
    assert run.policies is not None and run.hourly is not None
    mine = run.policies["modelfleet"]
    curve = list(run.curve.values())
    span = run.setup.requests[-1].arrival / HOUR
    out: list[tuple[str, bool, str]] = []
    best = best_static(curve)
    if span >= DAY_HOURS:
        out.append(
            (
                "slo",
                mine.slo_attainment >= SLO_TARGET,
                f"modelfleet attainment {mine.slo_attainment:.4f} >= {SLO_TARGET}",
            )
        )
        if best is None:
            out.append(("saving", False, "no static count reaches the target"))
        else:
            room = best.gpu_hours - run.hourly.gpu_hours
            saved = best.gpu_hours - mine.gpu_hours
            share = saved / room if room > 0 else float("inf") if saved >= 0 else -1.0
            out.append(
                (
                    "saving",
                    room > 0 and saved >= SAVING_SHARE * room,
                    f"saved {saved:.1f} of the hourly clairvoyant's {room:.1f} GPU-h "
                    f"({share:.0%}, >= {SAVING_SHARE:.0%}): modelfleet / best static "
                    f"{mine.gpu_hours / best.gpu_hours:.3f}, hourly / best static "
                    f"{run.hourly.gpu_hours / best.gpu_hours:.3f}",
                )
            )
    at = static_slo_at(curve, mine.gpu_hours)
    out.append(
        (
            "curve",
            mine.slo_attainment >= at - CURVE_SLACK,
            f"attainment {mine.slo_attainment:.4f} at {mine.gpu_hours:.1f} GPU-h >= static "
            f"curve's {at:.4f} - {CURVE_SLACK}",
        )
    )
    for peer in PEERS:
        theirs = run.policies[peer]
        cheaper = mine.gpu_hours <= theirs.gpu_hours + 1e-9
        mine_met, theirs_met = (r.slo_attainment >= SLO_TARGET for r in (mine, theirs))
        if mine_met and theirs_met:
            ok = cheaper  # both meet the SLO target: the cheaper is better
        elif mine_met or theirs_met:
            ok = mine_met  # only one meets it
        else:
            # Neither meets it, at different attainments: compare each point with the static
            # curve at its own GPU-hours (the only yardstick at equal SLO both share).
            dominates = cheaper and mine.slo_attainment >= theirs.slo_attainment - 1e-9
            mine_gap = mine.slo_attainment - static_slo_at(curve, mine.gpu_hours)
            theirs_gap = theirs.slo_attainment - static_slo_at(curve, theirs.gpu_hours)
            ok = dominates or mine_gap >= theirs_gap
        out.append(
            (
                f"vs-{peer}",
                ok,
                f"{mine.gpu_hours:.1f} GPU-h at {mine.slo_attainment:.4f} vs {peer} "
                f"{theirs.gpu_hours:.1f} at {theirs.slo_attainment:.4f}",
            )
        )
    return out


def row(label: str, r: Result, best: Result | None) -> str:
    usd = (
        "-"
        if r.cost_usd is None
        else f"{r.cost_usd:,.0f}"
        if r.cost_usd >= 100
        else f"{r.cost_usd:.2f}"
    )
    ratio = f"{r.gpu_hours / best.gpu_hours:.3f}" if best else "-"
    p99 = "inf" if r.p99_ttft == float("inf") else f"{r.p99_ttft:.2f}"
    return (
        f"  {label:<22} {r.gpu_hours:>9.1f} {usd:>9} {r.slo_attainment:>8.4f} {p99:>8} "
        f"{r.mean_replicas:>6.2f} {r.max_replicas:>4} {ratio:>7}"
    )


def report(run: TraceRun, wall: float) -> str:
    assert run.policies is not None and run.hourly is not None
    setup, chosen = run.setup, run.deployment.placement.chosen
    assert chosen is not None
    requests = setup.requests
    span = requests[-1].arrival / HOUR
    refused = sum(
        1 for q in requests if q.prompt_tokens + q.output_tokens > (setup.max_context or 1 << 62)
    )
    lines = [
        f"== {run.key}: {len(requests):,} requests over {span:.1f} h; "
        f"{run.deployment.placement.model} on {chosen.display} at ${chosen.hourly_cost:.2f}/h; "
        f"TTFT <= {setup.slo_seconds:g} s, target {SLO_TARGET}; start-up "
        f"{setup.startup_delay:g} s; routing {setup.routing}; {refused} requests longer than "
        f"the context ({setup.max_context}); common start {setup.initial_replicas}",
        f"  {'POLICY':<22} {'GPU-H':>9} {'USD':>9} {'SLO':>8} {'P99 TTFT':>8} {'MEAN':>6} "
        f"{'MAX':>4} {'/BEST':>7}",
    ]
    curve = [run.curve[n] for n in sorted(run.curve)]
    best = best_static(curve)
    for r in curve:
        lines.append(row(r.policy + (" best" if r is best else ""), r, best))
    lines.append(row("hourly clairvoyant", run.hourly, best))
    for name in ("oracle", "modelfleet", *PEERS):
        lines.append(row(name, run.policies[name], best))
    for name, r in (("hourly", run.hourly), ("oracle", run.policies["oracle"])):
        if r.extra.get("sloTargetMet") is False:
            lines.append(f"  note: the {name} clairvoyant did not reach the target")
    for name, ok, detail in checks(run):
        lines.append(f"  {'PASS' if ok else 'FAIL'}  {name:<14} {detail}")
    lines.append(f"  ({wall:.0f} s)")
    return "\n".join(lines)


VARIANT_WINDOW = 600.0  # ServeGen's rate windows
VARIANT_JITTER = 30.0
VARIANTS = ("thin-0.7", "dup-1.4", "reversed", "shifted")


def derive(requests: Sequence[TraceRequest], kind: str, seed: int = 0) -> list[TraceRequest]:
    """A trace of the same kind from `requests` (sorted by arrival): rate-scaled or with its
    10-minute windows reordered (see the module docstring)."""
    rng = random.Random(seed)
    if kind == "thin-0.7":
        return [r for r in requests if rng.random() < 0.7]
    if kind == "dup-1.4":
        out = list(requests)
        for r in requests:
            if rng.random() < 0.4:
                jitter = rng.uniform(-VARIANT_JITTER, VARIANT_JITTER)
                out.append(replace(r, arrival=max(0.0, r.arrival + jitter)))
        return sorted(out, key=lambda r: r.arrival)
    if kind in ("reversed", "shifted"):
        windows = int(requests[-1].arrival // VARIANT_WINDOW) + 1 if requests else 0
        out = []
        for r in requests:
            window = int(r.arrival // VARIANT_WINDOW)
            into = r.arrival - window * VARIANT_WINDOW
            moved = (
                windows - 1 - window if kind == "reversed" else (window + windows // 2) % windows
            )
            out.append(replace(r, arrival=moved * VARIANT_WINDOW + into))
        return sorted(out, key=lambda r: r.arrival)
    raise ValueError(f"unknown variant {kind!r}")


def _guess(setup: Setup) -> int:
    """Where the static search starts without a curve: the busiest 10-minute window's prompt
    rate in replicas (roofline prefill), plus 2."""
    windows: dict[int, int] = {}
    for r in setup.requests:
        key = int(r.arrival // VARIANT_WINDOW)
        windows[key] = windows.get(key, 0) + r.prompt_tokens
    rate = max(windows.values(), default=0) / VARIANT_WINDOW
    return math.ceil(rate / (setup.prefill_tokens_per_s or float("inf"))) + 2


def _static_attainment(key: str, count: int) -> tuple[str, int, Result]:
    key, count, outcome = _static(key, count)
    return key, count, static_result(SETUPS[key], count, outcome)


def variant_curves(
    keys: Sequence[str], guesses: dict[str, int], pool: Any
) -> dict[str, dict[int, Result]]:
    """Per variant, static counts until the cheapest with attainment >= 0.99 is found, with the
    two below it (the curve where modelfleet lands)."""
    curves: dict[str, dict[int, Result]] = {key: {} for key in keys}
    while True:
        tasks = []
        for key in keys:
            curve, top = curves[key], SETUPS[key].limits.max_replicas
            passing = [n for n, r in curve.items() if r.slo_attainment >= SLO_TARGET]
            if not curve:
                wanted = [guesses[key] - 1, guesses[key]]
            elif not passing:
                wanted = [max(curve) + 1, max(curve) + 2]
            else:
                wanted = [min(passing) - 1, min(passing) - 2]
            wanted = [n for n in wanted if 1 <= n <= top and n not in curve]
            tasks += [(key, n) for n in wanted]
        if not tasks:
            return curves
        for key, count, result in pool.starmap(_static_attainment, tasks):
            curves[key][count] = result


def run_variants(keys: Sequence[str], pool_size: int) -> str:
    """The robustness pass (--variants): a table, one row per derived trace."""
    started = time.perf_counter()
    names: list[str] = []
    guesses: dict[str, int] = {}
    for key in keys:
        base = SETUPS[key]
        if base.requests[-1].arrival / HOUR < DAY_HOURS:
            continue
        best = best_static(list(RUNS[key].curve.values())) if key in RUNS else None
        start = best.extra["staticReplicas"] if best else _guess(base)
        for kind in VARIANTS:
            name = f"{key}/{kind}"
            SETUPS[name] = replace(base, requests=derive(base.requests, kind))
            scale = {"thin-0.7": 0.7, "dup-1.4": 1.4}.get(kind, 1.0)
            guesses[name] = max(1, round(start * scale))
            names.append(name)
    context = multiprocessing.get_context("fork")
    with context.Pool(pool_size) as pool:
        curves = variant_curves(names, guesses, pool)
    for name in names:
        best = best_static(list(curves[name].values()))
        start = best.extra["staticReplicas"] if best else max(curves[name])
        SETUPS[name] = replace(SETUPS[name], initial_replicas=start)
    with context.Pool(pool_size) as pool:
        mine = {name: r for name, _, r in pool.starmap(_policy, [(n, "modelfleet") for n in names])}
    lines = [
        "== robustness: modelfleet on derived day traces (not pass/fail; each starts at its best "
        "static count)",
        f"  {'TRACE':<34} {'BEST STATIC':>18} {'MODELFLEET':>18} {'/BEST':>6} {'CURVE':>7}",
    ]
    for name in names:
        curve = list(curves[name].values())
        best, r = best_static(curve), mine[name]
        at = static_slo_at(curve, r.gpu_hours)
        best_text = (
            f"{best.extra['staticReplicas']}: {best.gpu_hours:.1f} ({best.slo_attainment:.4f})"
            if best
            else "-"
        )
        ratio = f"{r.gpu_hours / best.gpu_hours:.3f}" if best else "-"
        lines.append(
            f"  {name:<34} {best_text:>18} {f'{r.gpu_hours:.1f} ({r.slo_attainment:.4f})':>18} "
            f"{ratio:>6} {r.slo_attainment - at:>+7.4f}"
        )
    lines.append(
        "  CURVE: modelfleet's attainment minus the static curve's at its GPU-hours (linear "
        f"between the counts run); ({time.perf_counter() - started:.0f} s)"
    )
    return "\n".join(lines)


RUNS: dict[str, TraceRun] = {}


def truncate(requests: list[TraceRequest], hours: float | None) -> list[TraceRequest]:
    if hours is None:
        return requests
    return [r for r in requests if r.arrival < hours * HOUR]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--trace", action="append", choices=sorted(BENCH), help="default: all")
    parser.add_argument("--hours", type=float, help="replay only the first H hours")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--routing", default="random", choices=("random", "least-outstanding", "round-robin")
    )
    parser.add_argument("--startup-delay", type=float, default=120.0)
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument("--variants", action="store_true", help="add the robustness pass")
    parser.add_argument(
        "--variants-only", action="store_true", help="only the robustness pass (no targets)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    keys = args.trace or list(BENCH)
    deployments: dict[str, Deployment] = {}
    for key in keys:
        trace, manifest = BENCH[key]
        requests = truncate(read_trace(TRACES / trace), args.hours)
        deployments[key] = load_deployment(HERE / manifest)
        SETUPS[key] = setup_for(
            deployments[key],
            requests,
            slo_target=SLO_TARGET,
            startup_delay=args.startup_delay,
            routing=args.routing,
            err=sys.stderr,
        )
        CURVES[key] = {}
    if args.variants_only:
        print(run_variants(keys, args.jobs))
        return 0
    context = multiprocessing.get_context("fork")
    with context.Pool(args.jobs) as pool:
        build_curves(keys, pool)
    runs = {
        key: TraceRun(
            key,
            deployments[key],
            SETUPS[key],
            {n: static_result(SETUPS[key], n, o) for n, o in CURVES[key].items()},
        )
        for key in keys
    }
    # The hourly clairvoyant sets the common start; then everything else in parallel.
    with context.Pool(args.jobs) as pool:
        for key, _, result in pool.map(_clairvoyant_task, [(k, HOUR, "hourly") for k in keys]):
            runs[key].hourly = result
            SETUPS[key] = replace(SETUPS[key], initial_replicas=result.extra["schedule"][0])
            runs[key].setup = SETUPS[key]
    with context.Pool(args.jobs) as pool:
        tasks = [(k, ORACLE_SLOT, "oracle") for k in keys]
        oracle = pool.map_async(_clairvoyant_task, tasks)
        policy_tasks = [(k, name) for k in keys for name in ("modelfleet", *PEERS)]
        for key, name, result in pool.starmap(_policy, policy_tasks):
            runs[key].policies = {**(runs[key].policies or {}), name: result}
        for key, name, result in oracle.get():
            runs[key].policies = {**(runs[key].policies or {}), name: result}
    wall = time.perf_counter() - started
    verdicts = [ok for run in runs.values() for _, ok, _ in checks(run)]
    if args.output == "json":
        document = {
            key: {
                "static": [r.as_dict() for r in run.curve.values()],
                "hourly": run.hourly.as_dict() if run.hourly else None,
                "policies": {n: r.as_dict() for n, r in (run.policies or {}).items()},
                "targets": [{"name": n, "pass": ok, "detail": d} for n, ok, d in checks(run)],
            }
            for key, run in runs.items()
        }
        print(json.dumps(document, indent=2, default=str))
    else:
        for run in runs.values():
            print(report(run, wall))
        quick = f" (first {args.hours:g} h only)" if args.hours else ""
        print(f"{sum(verdicts)}/{len(verdicts)} targets met{quick}; {wall:.0f} s")
        if args.variants:
            RUNS.update(runs)
            print(run_variants(keys, args.jobs))
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
