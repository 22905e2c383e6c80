"""The `modelfleet` command: run the operator, manage the local cluster, generate artifacts."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelfleet",
        description="Serve open LLMs on your own GPUs at the lowest cost.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="run the operator against the current kubeconfig",
        description="Run the modelfleet operator (kopf) against the current kubeconfig context.",
        epilog="Environment: KUBECONFIG selects the cluster (in a pod: its ServiceAccount); "
        "MODELFLEET_RESYNC_SECONDS sets the periodic reconcile (default 30); "
        "MODELFLEET_PRICES_FILE is the default of --prices.",
    )
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; default: all namespaces)",
    )
    run.add_argument("--verbose", action="store_true", help="debug logging")
    run.add_argument(
        "--prices",
        metavar="FILE",
        help="YAML price overrides, USD per GPU-hour by nvidia.com/gpu.product value, e.g. "
        "{NVIDIA-L4: 0.55, NVIDIA-H200: {onDemand: 3.5, spot: 2.1}} "
        "(default: $MODELFLEET_PRICES_FILE, else the catalog's prices)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("MODELFLEET_METRICS_PORT") or 8080),
        metavar="PORT",
        help="serve /healthz (liveness: the leader-election loop runs) and /metrics on this "
        "port (default: $MODELFLEET_METRICS_PORT, else 8080)",
    )
    run.add_argument(
        "--metrics-address",
        default="0.0.0.0",
        metavar="ADDR",
        help="address to serve /healthz and /metrics on (default 0.0.0.0)",
    )
    run.set_defaults(func=_run_operator)

    crds = commands.add_parser(
        "crds",
        help="print the generated CustomResourceDefinition YAML",
        description="Print the ModelDeployment CRD generated from the pydantic types.",
    )
    crds.set_defaults(func=_print_crds)

    from modelfleet.plan_command import add_plan_command
    from modelfleet.sim.cluster.cli import add_cluster_commands
    from modelfleet.sim.engine.cli import add_engine_commands
    from modelfleet.simulate.command import add_simulate_command

    add_plan_command(commands)
    add_cluster_commands(commands)
    add_engine_commands(commands)
    add_simulate_command(commands)
    return parser


def _run_operator(args: argparse.Namespace) -> int:
    from modelfleet.handlers.main import run_operator

    return run_operator(
        namespaces=args.namespace,
        verbose=args.verbose,
        prices=args.prices,
        metrics_address=args.metrics_address,
        metrics_port=args.metrics_port,
    )


def _print_crds(args: argparse.Namespace) -> int:
    from modelfleet.api.crd import crd_yaml

    sys.stdout.write(crd_yaml())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
