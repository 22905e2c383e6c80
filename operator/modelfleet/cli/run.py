"""`modelfleet run`: the operator itself, and the image's entry point."""

from __future__ import annotations

import argparse
import os
from typing import Any


def add_run_command(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run the operator against the current kubeconfig",
        description="Run the modelfleet operator (kopf) against the current kubeconfig context. "
        "It serves /healthz and /metrics at once, then leads (holds the leader Lease and "
        "reconciles) or stands by.",
        epilog="Environment: KUBECONFIG selects the cluster (in a pod: its ServiceAccount); "
        "MODELFLEET_NAMESPACE holds the leader Lease (default: default); "
        "MODELFLEET_RESYNC_SECONDS sets the periodic reconcile (default 30); "
        "MODELFLEET_PRICES_FILE is the default of --prices; MODELFLEET_COST_WRITE_SECONDS sets how "
        "often the time-based cost fields are written (default 300).",
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
        "--api-prices",
        metavar="FILE",
        help="YAML overrides of hosted-API prices, USD per 1M tokens by provider/model, e.g. "
        "{openai/gpt-4o: {input: 2.0, output: 8.0, asOf: 2026-06}} (docs/cost.md; default: "
        "$MODELFLEET_API_PRICES_FILE, else the built-in table)",
    )
    run.add_argument(
        "--opencost-metrics",
        action="store_true",
        help="also publish node_gpu_hourly_cost and container_gpu_allocation under OpenCost's "
        "names (off by default: a cluster that runs OpenCost would count GPUs twice)",
    )
    run.add_argument(
        "--metrics-port",
        type=port,
        default=os.environ.get("MODELFLEET_METRICS_PORT") or "8080",
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


def port(text: str) -> int:
    """A TCP port, for --metrics-port and $MODELFLEET_METRICS_PORT (argparse reports the error)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"want a TCP port (1-65535), got {text!r}")
    return value


def _run_operator(args: argparse.Namespace) -> int:
    from modelfleet.handlers.main import run_operator

    return run_operator(
        namespaces=args.namespace,
        verbose=args.verbose,
        prices=args.prices,
        metrics_address=args.metrics_address,
        metrics_port=args.metrics_port,
        api_prices=args.api_prices,
        opencost=args.opencost_metrics,
    )
