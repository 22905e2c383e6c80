"""`modelfleet simulate`: replay a request trace against a ModelDeployment's autoscaling, offline.

    modelfleet simulate --trace TRACE.csv --deployment MD.yaml [--policy NAME|all] [-o table|json]

Simulated time, so an hour of trace runs in seconds. The replicas run the deployment's placement
as `modelfleet plan --all-gpus` chooses it (one empty 8-GPU node of every catalog GPU, default
prices; --gpu-product/--gpus pin it), each modelled by the engine performance model; the
`modelfleet` policy is the operator's autoscaler code. Rules: docs/simulate.md.
Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from modelfleet.api.errors import field_errors
from modelfleet.api.types import ModelDeploymentSpec
from modelfleet.autoscale.policy import Limits
from modelfleet.catalog.gpus import default_gpus
from modelfleet.catalog.models import default_models
from modelfleet.cli.tables import table
from modelfleet.cli.yaml_files import read_documents
from modelfleet.dev.replay.fleet import ROUTINGS, Engine, EngineFactory
from modelfleet.dev.replay.metrics import Result
from modelfleet.dev.replay.policies import KUBEAI_TARGET_REQUESTS
from modelfleet.dev.replay.runner import POLICIES, Setup, ratios, run_policies
from modelfleet.dev.replay.trace import TraceError, TraceRequest, read_trace
from modelfleet.perf.capacity import option_capacity
from modelfleet.perf.engine import EngineProfile, ReplicaEngine, profile_for_placement
from modelfleet.perf.startup import CACHE_STATES, CacheState, Startup, startup
from modelfleet.plan import Placement, PriceSheet, hypothetical_inventory, place
from modelfleet.plan.request import PlacementRequest, PlanInputError, request_from_manifest


class SimulateInputError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = _positive(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _gpu_count(text: str) -> int:
    if text not in ("1", "2", "4", "8"):
        raise argparse.ArgumentTypeError(f"must be 1, 2, 4 or 8, got {text}")
    return int(text)


def add_simulate_command(commands: Any) -> None:
    """Register `simulate` on the top-level subparsers object."""
    simulate = commands.add_parser(
        "simulate",
        help="replay a request trace against a ModelDeployment's autoscaling (offline)",
        description=textwrap.fill(
            "Replay a request trace against a ModelDeployment in simulated time: "
            "replicas of its planned placement (as `modelfleet plan --all-gpus` chooses it), "
            "each modelled by the engine performance model, scaled by a policy. Reports "
            "GPU-hours, cost, SLO attainment and TTFT percentiles. An hour of trace takes "
            "seconds.",
            width=79,
            break_on_hyphens=False,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="policies:\n"
        "  modelfleet   the operator's autoscaler (spec.autoscaling, minReplicas, maxReplicas)\n"
        "  static-peak  fewest fixed replicas meeting --slo-target over the whole trace\n"
        "  inflight     KubeAI-style: 10 s interval, 10 min average of in-flight requests\n"
        "               per replica vs --inflight-target, 30 s scale-down delay\n"
        "  keda-queue   KEDA/HPA-style: waiting requests / 5 per replica, 15 s polling,\n"
        "               300 s scale-down stabilisation\n"
        "  oracle       clairvoyant per --oracle-slot that plays by the rules (start-up,\n"
        "               carried-over load); with it, the hourly clairvoyant too\n"
        "  all          all of them, with GPU-hour ratios of modelfleet to the others;\n"
        "               every policy starts at the hourly clairvoyant's first-hour count\n\n"
        "TRACE.csv: TIMESTAMP,ContextTokens,GeneratedTokens (the Azure LLM inference trace\n"
        "format; TIMESTAMP a date-time or seconds). See docs/simulate.md.\n"
        "Exit 0: done, 2: bad input.",
    )
    simulate.add_argument("--trace", required=True, type=Path, metavar="CSV", help="request trace")
    simulate.add_argument(
        "--deployment", "-f", required=True, type=Path, metavar="FILE", help="ModelDeployment YAML"
    )
    simulate.add_argument(
        "--policy", choices=(*POLICIES, "all"), default="modelfleet", help="default: modelfleet"
    )
    simulate.add_argument(
        "--slo-ttft",
        type=_positive,
        default=2.0,
        metavar="SECONDS",
        help="time-to-first-token SLO (default 2)",
    )
    simulate.add_argument(
        "--slo-target",
        type=_fraction,
        default=0.99,
        metavar="SHARE",
        help="SLO attainment static-peak and the oracle must reach (default 0.99)",
    )
    simulate.add_argument(
        "--startup-delay",
        type=_non_negative,
        default=None,
        metavar="SECONDS",
        help="from creating a replica to its readiness: model load (default 120; or --cache)",
    )
    simulate.add_argument(
        "--cache",
        choices=CACHE_STATES,
        default=None,
        help=(
            "derive the start-up from the model and the weights cache (perf/startup.py): warm "
            "reads cached weights, cold downloads them first; both load, compile and capture "
            "CUDA graphs (instead of --startup-delay)"
        ),
    )
    simulate.add_argument(
        "--time-scale",
        type=_positive,
        default=1.0,
        metavar="X",
        help="replay X times faster (arrival times divided by X; default 1)",
    )
    simulate.add_argument(
        "--gpu-product",
        metavar="P",
        help="pin the GPU (nvidia.com/gpu.product value or catalog name, e.g. NVIDIA-L4); "
        "with --gpus, replaces the manifest's spec.gpu (the one not given is planned)",
    )
    simulate.add_argument(
        "--gpus", type=_gpu_count, metavar="N", help="pin the GPUs per replica (1, 2, 4, 8)"
    )
    simulate.add_argument(
        "--inflight-target",
        type=_positive,
        default=float(KUBEAI_TARGET_REQUESTS),
        metavar="N",
        help=f"in-flight requests per replica for the inflight policy "
        f"(default {KUBEAI_TARGET_REQUESTS}, KubeAI's default)",
    )
    simulate.add_argument(
        "--oracle-slot",
        type=_positive,
        default=60.0,
        metavar="SECONDS",
        help="the oracle's planning slot (default 60)",
    )
    simulate.add_argument(
        "--routing",
        choices=ROUTINGS,
        default="random",
        help="how requests reach replicas: random (a Service, default), least-outstanding "
        "(a load-aware gateway), round-robin (IPVS)",
    )
    simulate.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the random routing (default 0)"
    )
    simulate.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        default="table",
        help="table (default), or JSON: an object, a list with --policy all",
    )
    simulate.add_argument(
        "-v", "--verbose", action="store_true", help="print every scaling change to stderr"
    )
    simulate.set_defaults(func=run_simulate)


@dataclass(frozen=True)
class Deployment:
    name: str
    spec: ModelDeploymentSpec
    placement: Placement


def load_deployment(
    path: Path, gpu_product: str | None = None, gpus: int | None = None
) -> Deployment:
    """The ModelDeployment in `path` and its placement, planned as `modelfleet plan --all-gpus`."""
    try:
        docs = read_documents(path)
    except PlanInputError as error:
        raise SimulateInputError(error.errors) from error
    manifests = [d for d in docs if isinstance(d, Mapping) and d.get("kind") == "ModelDeployment"]
    if not manifests:
        raise SimulateInputError([f"{path}: no ModelDeployment found"])
    manifest = manifests[0]
    raw_spec = manifest.get("spec")
    if not isinstance(raw_spec, Mapping):
        raise SimulateInputError([f"{path}: spec: required"])
    try:
        spec = ModelDeploymentSpec.model_validate(dict(raw_spec))
    except ValidationError as error:
        raise SimulateInputError(
            [f"{path}: {line}" for line in field_errors(error, "spec")]
        ) from error
    try:
        request = request_from_manifest(manifest)
        if gpu_product is not None or gpus is not None:
            # The flags replace both pins; the one not given is the planner's choice.
            pins = {"gpu_product": gpu_product, "gpu_count": gpus}
            request = PlacementRequest.model_validate({**request.model_dump(), **pins})
    except PlanInputError as error:
        raise SimulateInputError([f"{path}: {line}" for line in error.errors]) from error
    except ValidationError as error:
        raise SimulateInputError([f"--gpu-product/--gpus: {error}"]) from error
    placement = place(
        request, hypothetical_inventory(default_gpus()), PriceSheet(), capacity=option_capacity
    )
    if not placement.feasible or placement.chosen is None:
        raise SimulateInputError([f"{path}: no feasible placement: {placement.message}"])
    metadata = manifest.get("metadata")
    name = str(metadata.get("name", path.stem)) if isinstance(metadata, Mapping) else path.stem
    return Deployment(name=name, spec=spec, placement=placement)


DEFAULT_STARTUP_DELAY = 120.0


def replica_startup(deployment: Deployment, cache: CacheState) -> Startup:
    """The start-up of one replica of the deployment's placement (perf/startup.py)."""
    chosen = deployment.placement.chosen
    assert chosen is not None and chosen.memory is not None
    architecture = deployment.spec.architecture
    arch = default_models().lookup(deployment.placement.model)
    layers = architecture.layers if architecture is not None else arch.layers if arch else 0
    if layers <= 0:
        raise SimulateInputError([f"{deployment.placement.model}: layers unknown for --cache"])
    eager = "--enforce-eager" in deployment.spec.extra_args
    return startup(chosen.memory.weights / 2**30, layers, cache, enforce_eager=eager)


def _startup_delay(deployment: Deployment, given: float | None, cache: CacheState | None) -> float:
    if given is not None and cache is not None:
        raise SimulateInputError(["--startup-delay and --cache: give one of them"])
    if cache is not None:
        return round(replica_startup(deployment, cache).total, 1)
    return DEFAULT_STARTUP_DELAY if given is None else given


def engine_profile(placement: Placement) -> EngineProfile:
    """The performance profile of the placement's model, GPU, count, quantization, context."""
    chosen = placement.chosen
    assert chosen is not None
    return profile_for_placement(
        placement.model,
        chosen.gpu_product,
        chosen.gpus,
        quantization=chosen.quantization,
        max_context=placement.max_context_length,
    )


def engine_factory(placement: Placement) -> EngineFactory:
    """ReplicaEngine for the placement's model, GPU, count, quantization and context."""
    profile = engine_profile(placement)

    def factory(now: float) -> Engine:
        return ReplicaEngine(profile, now=now)

    return factory


def setup_for(
    deployment: Deployment,
    requests: list[TraceRequest],
    *,
    slo_seconds: float = 2.0,
    slo_target: float = 0.99,
    startup_delay: float = 120.0,
    inflight_target: float = float(KUBEAI_TARGET_REQUESTS),
    oracle_slot: float = 60.0,
    routing: str = "random",
    seed: int = 0,
    err: TextIO | None = None,
) -> Setup:
    """The Setup for every policy of one comparison; progress goes to `err` (if given)."""
    spec, placement = deployment.spec, deployment.placement
    chosen = placement.chosen
    assert chosen is not None

    def progress(message: str) -> None:
        if err is not None:
            err.write(f"modelfleet simulate: {message}\n")
            err.flush()

    return Setup(
        requests=requests,
        engine_factory=engine_factory(placement),
        gpus_per_replica=chosen.gpus,
        hourly_cost=chosen.hourly_cost,
        # Without maxReplicas only static-peak runs (the caller checks), which ignores limits.
        limits=Limits.from_spec(spec)
        if spec.max_replicas is not None
        else Limits(spec.replicas, spec.replicas),
        autoscaling=spec.autoscaling_or_default,
        initial_replicas=spec.replicas,
        slo_seconds=slo_seconds,
        slo_target=slo_target,
        startup_delay=startup_delay,
        inflight_target=inflight_target,
        oracle_slot=oracle_slot,
        routing=routing,
        seed=seed,
        max_context=placement.max_context_length,
        prefill_tokens_per_s=engine_profile(placement).prefill_tokens_per_s(),
        progress=progress,
    )


def prepare(
    args: argparse.Namespace, err: TextIO, prog: str = "modelfleet simulate"
) -> tuple[Deployment, Setup] | None:
    """The deployment and the Setup from `simulate`'s arguments; None (errors on `err`) on bad
    input. Shared with bench/autoscale."""
    policies = POLICIES if args.policy == "all" else (args.policy,)
    try:
        deployment = load_deployment(args.deployment, args.gpu_product, args.gpus)
        if deployment.spec.max_replicas is None and set(policies) - {"static-peak"}:
            raise SimulateInputError(
                [
                    f"{args.deployment}: spec.maxReplicas is not set, so autoscaling is off; "
                    "set maxReplicas (and minReplicas, autoscaling) or use --policy static-peak"
                ]
            )
        requests = read_trace(args.trace, time_scale=args.time_scale)
        startup_delay = _startup_delay(deployment, args.startup_delay, args.cache)
    except TraceError as error:
        err.write(f"{prog}: {error}\n")
        return None
    except SimulateInputError as error:
        for line in error.errors:
            err.write(f"{prog}: {line}\n")
        return None
    setup = setup_for(
        deployment,
        requests,
        slo_seconds=args.slo_ttft,
        slo_target=args.slo_target,
        startup_delay=startup_delay,
        inflight_target=args.inflight_target,
        oracle_slot=args.oracle_slot,
        routing=getattr(args, "routing", "random"),
        seed=getattr(args, "seed", 0),
        err=err,
    )
    return deployment, setup


def run_simulate(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    policies = POLICIES if args.policy == "all" else (args.policy,)
    prepared = prepare(args, err)
    if prepared is None:
        return 2
    deployment, setup = prepared
    results = run_policies(setup, policies)
    if args.verbose:
        for result in results:
            _scale_log(result, err)
    extra = ratios(results)
    if args.output == "json":
        documents = [r.as_dict() for r in results]
        for document in documents:
            if document["policy"] == "modelfleet":
                document.update({k: v and round(v, 4) for k, v in extra.items()})
        body: Any = documents if args.policy == "all" else documents[0]
        out.write(json.dumps(body, indent=2) + "\n")
    else:
        header = describe_setup(setup, deployment, str(args.trace), args.time_scale)
        out.write(format_table(results, extra, header))
    return 0


def _scale_log(result: Result, err: TextIO) -> None:
    err.write(f"modelfleet simulate: {result.policy} scaling (time, from -> to, reason):\n")
    for change in result.changes:
        err.write(f"  {change.time:8.0f} s  {change.before} -> {change.after}  {change.reason}\n")


def describe_setup(
    setup: Setup, deployment: Deployment, trace: str, time_scale: float = 1.0
) -> str:
    """Two header lines: what runs on what, and the trace, SLO and start-up delay."""
    placement = deployment.placement
    chosen = placement.chosen
    assert chosen is not None
    cost = "" if chosen.hourly_cost is None else f" at ${chosen.hourly_cost:.2f}/h per replica"
    spec = deployment.spec
    bounds = (
        f"replicas {setup.limits.min_replicas}..{setup.limits.max_replicas}"
        if spec.max_replicas is not None
        else "autoscaling off"
    )
    requests = setup.requests
    span = requests[-1].arrival if requests else 0.0
    scale = f", time scale {time_scale:g}x" if time_scale != 1 else ""
    return (
        f"{deployment.name}: {placement.model} on {chosen.display} {chosen.quantization}{cost}, "
        f"{bounds}\n"
        f"trace {trace}: {len(requests)} requests over {span:.0f} s{scale}; "
        f"SLO: TTFT <= {setup.slo_seconds:g} s (target {setup.slo_target:g}); "
        f"start-up {setup.startup_delay:g} s\n"
    )


def _fmt(value: float, spec: str) -> str:
    return "inf" if value == float("inf") else format(value, spec)


def format_table(results: list[Result], extra: Mapping[str, float | None], header: str) -> str:
    headers = [
        "POLICY",
        "GPU-H",
        "COST$",
        "SLO",
        "P50 TTFT",
        "P95 TTFT",
        "P99 TTFT",
        "MAX",
        "MEAN",
        "EVENTS",
        "WALL",
    ]
    rows = []
    for r in results:
        name = r.policy
        if "staticReplicas" in r.extra:
            name += f" ({r.extra['staticReplicas']})"
        rows.append(
            [
                name,
                f"{r.gpu_hours:.2f}",
                "-" if r.cost_usd is None else f"{r.cost_usd:.2f}",
                f"{r.slo_attainment:.4f}",
                _fmt(r.p50_ttft, ".2f") + " s",
                _fmt(r.p95_ttft, ".2f") + " s",
                _fmt(r.p99_ttft, ".2f") + " s",
                str(r.max_replicas),
                f"{r.mean_replicas:.2f}",
                str(r.scale_events),
                f"{r.wall_seconds:.1f} s",
            ]
        )
    lines = table(headers, rows).splitlines()
    notes = [f"{r.policy}: {r.unserved} requests never served" for r in results if r.unserved] + [
        "static-peak: no count reaches the SLO target; best attainment shown"
        for r in results
        if r.extra.get("sloTargetMet") is False
    ]
    names = {
        "gpuHoursVsStaticPeak": "static-peak",
        "gpuHoursVsOracle": "oracle",
        "gpuHoursVsInflight": "inflight",
        "gpuHoursVsKedaQueue": "keda-queue",
    }
    notes += [
        f"GPU-hours modelfleet / {names[key]}: " + ("-" if value is None else f"{value:.3f}")
        for key, value in extra.items()
    ]
    return header + "\n" + "\n".join(lines) + "\n" + "".join(n + "\n" for n in notes)
