"""Scale benchmark (issue 10): the operator at a thousand deployments on ~200 simulated GPU nodes.

Starts its own local control plane (`modelfleet.dev.cluster.control_plane.up`, cluster name
`modelfleet-bench-scale`, torn down at the end) with GPU nodes from a generated inventory, then:

  floor        applies the Deployment and Service of N ModelDeployments directly (rendered by
               modelfleet.render.children for the planner's placement, server-side applied with
               the admin client) and times until every Deployment is Available: the API floor
  create       starts `modelfleet run` (its own ServiceAccount, the default 30 s resync), creates
               the N ModelDeployments and times until every one is Ready;
               target: operator time <= 1.5 x the floor
  steady       counts the operator's requests in the API server's audit log for S seconds;
               targets: 0 writes to Deployments and Services, at most 1 status write per
               deployment per 5 minutes (Lease renewals aside); reads per second reported
  churn        rounds of spec updates (rollouts) on 20% and delete + create of 10% of the
               deployments; targets: no error in the operator's log (tracebacks, 'failed',
               ERROR), resident memory after / before <= 1.10
  autoscaled   M autoscaled deployments beside the N, their engines emulated (`modelfleet
               emulate`) under a steady request rate; samples the operator's
               modelfleet_autoscaler_last_decision_timestamp_seconds every second;
               target: worst time since a deployment's last decision <= interval + 3 s
  memory       the operator's peak RSS (VmHWM) over the whole run; target: <= 200 MB

Prints a progress line every few seconds (stderr), then the summary table (figure, target,
verdict) and the evidence (which requests dominate); writes the summary as JSON to
--json-file (default: the work dir's summary.json), or prints only JSON with -o json. Only the
full size (the defaults) decides PASS/FAIL and exits 1 on a FAIL; a smaller run says "met" or
"missed" and is indicative only. Exit 2 when the benchmark itself could not run.

    .venv/bin/python bench/scale/run.py [--deployments N] [--nodes N] [--steady-seconds S]
        [--autoscaled N] [--churn-rounds R] [-o table|json] [--keep-cluster]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fleet
import harness
from observe import AuditTail, Tracker
from phases import (
    Operator,
    autoscaled_phase,
    churn_phase,
    create_phase,
    floor_phase,
    operator_figures,
    placement_matches,
    start_operator,
    steady_phase,
)
from record import FULL_SIZE, Figure, Run, describe_source, document, report, source

from modelfleet.dev.cluster import control_plane
from modelfleet.dev.cluster.paths import cache_dir

CLUSTER_NAME = "modelfleet-bench-scale"
RATIO_MAX = 1.5
MODEL_LOAD_DELAY = timedelta(seconds=1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.rsplit("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Only the full size (the defaults of the four size flags) decides PASS/FAIL.",
    )
    parser.add_argument(
        "--deployments", type=int, default=1000, help="ModelDeployments (%(default)s)"
    )
    parser.add_argument(
        "--nodes", type=int, default=200, help="simulated GPU nodes, 8 GPUs each (%(default)s)"
    )
    parser.add_argument(
        "--steady-seconds", type=int, default=300, help="steady-state window (%(default)s)"
    )
    parser.add_argument(
        "--autoscaled", type=int, default=100, help="autoscaled ModelDeployments (%(default)s)"
    )
    parser.add_argument(
        "--namespaces",
        type=int,
        default=10,
        help="namespaces the deployments spread over (%(default)s)",
    )
    parser.add_argument("--churn-rounds", type=int, default=3, help="churn rounds (%(default)s)")
    parser.add_argument(
        "--autoscale-seconds",
        type=int,
        default=120,
        help="decision lags sampled this long (%(default)s)",
    )
    parser.add_argument(
        "--load-rate",
        type=float,
        default=0.2,
        help="requests per second per autoscaled deployment (%(default)s)",
    )
    parser.add_argument(
        "--settle-seconds",
        type=int,
        default=60,
        help="wait after all Ready before counting, and after churn (%(default)s)",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=1800,
        help="seconds to wait for all Ready in any phase (%(default)s)",
    )
    parser.add_argument("--skip-floor", action="store_true", help="no API floor run (no ratio)")
    parser.add_argument(
        "--cluster-name", default=CLUSTER_NAME, help="local cluster name (%(default)s)"
    )
    parser.add_argument(
        "--keep-cluster", action="store_true", help="leave the cluster running at the end"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="logs and summary (default: a new dir under ~/.cache/modelfleet/bench-scale)",
    )
    parser.add_argument(
        "--json-file",
        type=Path,
        help="write the summary JSON here (default: WORK_DIR/summary.json)",
    )
    parser.add_argument(
        "--label", default="", help="what is measured, recorded in the JSON (e.g. a commit)"
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    full = all(getattr(args, key) >= value for key, value in FULL_SIZE.items())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = args.work_dir or cache_dir() / "bench-scale" / stamp
    work.mkdir(parents=True, exist_ok=True)
    run = Run(args, work)
    problems = fleet.capacity_problems(args.nodes, args.deployments, args.autoscaled)
    if problems:
        print("not enough GPUs for the workload: " + "; ".join(problems), file=sys.stderr)
        return 2
    nodes_file = work / "nodes.yaml"
    nodes_file.write_text(fleet.inventory_yaml(args.nodes))
    origin = source()
    run.say(f"operator code: {describe_source(origin)}")
    run.say(f"work dir {work}; starting cluster {args.cluster_name!r} with {args.nodes} GPU nodes")
    failure: str | None = None
    try:
        state = control_plane.up(
            name=args.cluster_name,
            nodes_file=nodes_file,
            model_load_delay=MODEL_LOAD_DELAY,
            timeout_seconds=600,
        )
        run.say(f"cluster up: {state.node_count} nodes, audit log {state.audit_log}")
        run_phases(run, Path(state.kubeconfig), state.audit_log)
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"
        run.say("benchmark failed: " + failure)
        traceback.print_exc()
    finally:
        if args.keep_cluster:
            run.say(f"cluster {args.cluster_name!r} left running (`modelfleet cluster down`)")
        else:
            control_plane.down(args.cluster_name)
            run.say("cluster down")
    summary = document(run, full, {**origin, "label": args.label}, failure)
    json_file = args.json_file or work / "summary.json"
    json_file.write_text(json.dumps(summary, indent=2) + "\n")
    if args.output == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(report(run, full, FULL_SIZE))
        print(f"operator code: {describe_source(origin)}")
        print(f"summary JSON: {json_file}; logs: {work}")
    if failure is not None:
        print(f"the benchmark did not complete: {failure}", file=sys.stderr)
        return 2
    return 1 if full and any(f.met is False for f in run.figures) else 0


def run_phases(run: Run, admin: Path, audit_log: Path) -> None:
    """Every phase in order on the running cluster; the operator's own figures at the end,
    also when a phase failed."""
    args = run.args
    operator: Operator | None = None
    audit_tail: AuditTail | None = None
    trackers: list[Tracker] = []
    try:
        with harness.admin_client(admin) as api:
            harness.install_crd(api)
            floor_namespaces = [f"floor-{i}" for i in range(args.namespaces)]
            namespaces = [f"scale-{i}" for i in range(args.namespaces)]
            floor = None if args.skip_floor else floor_phase(run, api, floor_namespaces)
            audit_tail = AuditTail(audit_log, harness.OPERATOR_USER).start()
            operator = start_operator(run, api, admin)
            seconds, mds, pods, live = create_phase(run, api, operator, audit_tail, namespaces)
            trackers += [mds, pods]
            run.add(Figure("time to all Ready, operator", round(seconds, 1), unit="s"))
            if floor is not None:
                ratio = seconds / floor
                run.add(
                    Figure("time to all Available, API floor", round(floor, 1), unit="s"),
                    Figure(
                        "ratio operator / floor",
                        round(ratio, 3),
                        f"<= {RATIO_MAX}",
                        ratio <= RATIO_MAX,
                    ),
                )
            if math.isinf(seconds):
                raise RuntimeError("not every ModelDeployment became Ready")
            if floor is not None:
                same = placement_matches(run, mds)
                n = args.deployments
                run.add(
                    Figure("placements equal to the floor's", f"{same}/{n}", f"{n}/{n}", same == n)
                )
            steady_phase(run, operator, audit_tail, mds)
            if args.churn_rounds:
                churn_phase(run, api, operator, mds, pods, live, namespaces)
            if args.autoscaled:
                autoscaled_phase(run, api, admin, operator)
    finally:
        for tracker in trackers:
            tracker.stop()
        if audit_tail is not None:
            audit_tail.stop()
        if operator is not None:
            operator_figures(run, operator)


if __name__ == "__main__":
    sys.exit(main())
