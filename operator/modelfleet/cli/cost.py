"""`modelfleet cost`: what the ModelDeployments and the cluster's GPUs cost.

    modelfleet cost                          # the current namespace, from status.cost
    modelfleet cost -A -o json               # every namespace, as JSON
    modelfleet cost -n team-a --prometheus http://localhost:9090 --since 7d --html cost.html

Without --prometheus the deployments come from their live `status.cost` (spend and tokens to
date); with it, from the operator's series over --since (what the window added). The cluster
section is always the Nodes and Pods read now, priced like the operator prices them (node
annotation modelfleet.dev/gpu-hourly-usd, else the price sheet with --prices overrides).
Exit codes: 0 the report, 1 the cluster or Prometheus could not be read, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from modelfleet.cli.cost_report import (
    ClusterSection,
    Report,
    cluster_section,
    format_table,
    history_report,
    live_report,
    parse_duration,
)
from modelfleet.cli.yaml_files import read_documents
from modelfleet.plan.prices import PriceSheet, PriceSheetError, parse_price_overrides
from modelfleet.plan.request import PlanInputError

DEFAULT_SINCE = "24h"
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

EPILOG = """examples:
  modelfleet cost                                   current namespace (kubeconfig context)
  modelfleet cost -n team-a                         one namespace
  modelfleet cost -A -o json                        every namespace, as JSON
  modelfleet cost -A --prometheus http://localhost:9090 --since 7d
                                                    spend and tokens of the last 7 days
  modelfleet cost -A --html cost.html               also write charts to one HTML file
  modelfleet cost --prices prices.yaml              GPU prices as the operator's --prices
  modelfleet cost --kubeconfig ~/.kube/prod.yaml    another cluster

JSON: {"deployments": [{"namespace", "name", "model", "gpuProduct", "gpus", "replicas",
"hourly", "spend", "tokens": {"input", "output"}, "perMillionTokens", "apiEquivalent", ...}],
"totals": {"hourly", "spend", ...}, "cluster": {"hourly", "allocatedHourly", "idleHourly", ...}}
in USD. Exit 0: the report; 1: the cluster or Prometheus could not be read; 2: bad input."""


class CostError(Exception):
    """One line for the user, and the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_cost_command(commands: Any) -> None:
    """Register `cost` on the top-level subparsers object."""
    cost = commands.add_parser(
        "cost",
        help="report what deployments and the cluster's GPUs cost (table, JSON, HTML)",
        description="What the ModelDeployments and the cluster's GPUs cost: per deployment, "
        "per namespace and for the cluster, from the live status or from Prometheus history.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scope = cost.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        metavar="NAMESPACE",
        help="only this namespace's deployments, e.g. -n team-a (default: the kubeconfig "
        "context's namespace, else default); the cluster section is always the whole cluster",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="deployments of every namespace"
    )
    cost.add_argument(
        "--since",
        metavar="DURATION",
        help=f"with --prometheus: the window, e.g. 90m, 24h, 7d, 1h30m (default {DEFAULT_SINCE})",
    )
    cost.add_argument(
        "--prometheus",
        metavar="URL",
        help="read history from this Prometheus (its HTTP API), e.g. http://localhost:9090 "
        "(default: the live status.cost, no history)",
    )
    cost.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        default="table",
        help="table (default) or json, e.g. -o json",
    )
    cost.add_argument(
        "--html",
        metavar="FILE",
        type=Path,
        help="also write one self-contained HTML file with charts, e.g. --html cost.html",
    )
    cost.add_argument(
        "--prices",
        metavar="FILE",
        type=Path,
        help="GPU price overrides YAML as for `modelfleet run`, e.g. "
        "{NVIDIA-L4: 0.55, NVIDIA-H200: {onDemand: 3.5, spot: 2.1}}",
    )
    cost.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="cluster to read, e.g. --kubeconfig ~/.kube/prod.yaml "
        "(default: $KUBECONFIG or ~/.kube/config, or the pod's ServiceAccount)",
    )
    cost.set_defaults(func=run_cost)


def run_cost(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        since = _since(args, err)
        sheet = _price_sheet(args.prices)
        report = _report(args, sheet, since)
        if args.html is not None:
            _write_html(report, args.html)
    except CostError as error:
        err.write(f"modelfleet cost: {error}\n")
        return error.code
    if args.output == "json":
        out.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        out.write(format_table(report))
    if args.html is not None:
        err.write(f"modelfleet cost: wrote {args.html}\n")
    return 0


def _since(args: argparse.Namespace, err: TextIO) -> timedelta:
    try:
        since = parse_duration(args.since or DEFAULT_SINCE)
    except ValueError as error:
        raise CostError(f"--since: {error}", 2) from None
    if args.prometheus is not None:
        from modelfleet.cli.cost_prometheus import check_url

        try:
            check_url(args.prometheus)
        except ValueError as error:
            raise CostError(f"--prometheus: {error}", 2) from None
    if args.since and not args.prometheus:
        err.write(
            "modelfleet cost: --since needs --prometheus (the live status has no history); "
            "showing spend and tokens to date\n"
        )
    return since


def _price_sheet(path: Path | None) -> PriceSheet:
    if path is None:
        return PriceSheet()
    try:
        docs = read_documents(path)
        if len(docs) > 1:
            raise CostError(f"{path}: one YAML document of prices expected", 2)
        return parse_price_overrides(docs[0] if docs else None, prefix=str(path))
    except (PlanInputError, PriceSheetError) as error:
        raise CostError("; ".join(error.errors), 2) from None


def _write_html(report: Report, path: Path) -> None:
    try:
        from modelfleet.cli.cost_html import write_html  # plotly: only for --html
    except ImportError as error:
        raise CostError(
            f"--html needs plotly ({error}); install it with: pip install 'modelfleet[report]'", 2
        ) from None
    try:
        write_html(report, path)
    except OSError as error:
        raise CostError(f"cannot write {path}: {error.strerror or error}", 2) from None


def _report(args: argparse.Namespace, sheet: PriceSheet, since: timedelta) -> Report:
    from modelfleet.cli.cost_cluster import ClusterReader

    now = datetime.now(UTC).replace(microsecond=0)
    as_of = now.isoformat().replace("+00:00", "Z")
    reader = ClusterReader(args.kubeconfig)
    namespace = None if args.all_namespaces else (args.namespace or reader.default_namespace())
    if namespace is not None:
        reader.require_namespace(namespace)
    mds = reader.model_deployments(namespace)
    notes: list[str] = []
    cluster: ClusterSection | None = None
    nodes_and_pods = reader.nodes_and_pods()
    if isinstance(nodes_and_pods, str):
        notes.append(nodes_and_pods)
    else:
        cluster = cluster_section(*nodes_and_pods, sheet)
    if args.prometheus is None:
        return live_report(mds, cluster, as_of, namespace, notes)
    from modelfleet.cli.cost_prometheus import PrometheusError, fetch_history

    try:
        history = fetch_history(args.prometheus, since, now, namespace)
    except PrometheusError as error:
        raise CostError(str(error)) from None
    return history_report(history, mds, cluster, as_of, since, namespace, notes)
