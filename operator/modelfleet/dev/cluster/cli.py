"""`modelfleet cluster ...`: build, start, stop and inspect the local simulated cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pydantic
import yaml

from modelfleet.cli.tables import table
from modelfleet.dev.cluster import control_plane
from modelfleet.dev.cluster.build import (
    BuildError,
    ensure_binaries,
    ensure_helm,
    ensure_prometheus,
)
from modelfleet.dev.cluster.paths import DEFAULT_CLUSTER_NAME, cluster_name, state_dir
from modelfleet.dev.cluster.pod_range import PodRangeError
from modelfleet.dev.cluster.stages import DEFAULT_MODEL_LOAD_DELAY, parse_duration


def add_cluster_commands(commands: Any) -> None:
    """Register `cluster` and its subcommands on the top-level subparsers object."""
    cluster = commands.add_parser(
        "cluster",
        help="build, start, stop and inspect the local simulated cluster",
        description=(
            "A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, "
            "kube-scheduler) on 127.0.0.1 with kwok simulating GPU nodes and pods. Binaries are "
            "built from hack/tools and cached in $MODELFLEET_CACHE_DIR "
            "(default ~/.cache/modelfleet)."
        ),
    )
    sub = cluster.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND", required=True)

    build = sub.add_parser(
        "build",
        help="build and cache the binaries only",
        description="Build etcd, the Kubernetes binaries and kwok (and, when asked, helm and "
        "Prometheus) unless they are cached.",
    )
    build.add_argument(
        "--helm",
        action="store_true",
        help="also build helm (only the chart's integration test uses it)",
    )
    build.add_argument(
        "--prometheus",
        action="store_true",
        help="also build Prometheus (only the demo and the dashboard test run it)",
    )
    build.set_defaults(func=_build)

    up = sub.add_parser(
        "up",
        help="start the cluster (a no-op if it runs)",
        description=(
            "Build the binaries if needed, start the control plane and kwok as background "
            "processes that outlive this command, create the Nodes and wait until they are Ready."
        ),
    )
    _add_name(up)
    up.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="PATH",
        help="also write the admin kubeconfig here (default: <state dir>/kubeconfig)",
    )
    up.add_argument(
        "--nodes",
        type=Path,
        metavar="FILE",
        help="node pool inventory YAML (default: the packaged default-nodes.yaml)",
    )
    up.add_argument(
        "--model-load-delay",
        type=parse_duration,
        metavar="DURATION",
        default=DEFAULT_MODEL_LOAD_DELAY,
        help="time a pod stays Running but not Ready, e.g. 3s, 500ms, 1m (default: 3s);"
        " a pod's annotation modelfleet.dev/simulated-load-delay overrides it",
    )
    up.add_argument(
        "--timeout",
        type=float,
        default=control_plane.WAIT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="limit for each wait step (default: %(default)s)",
    )
    up.set_defaults(func=_up)

    down = sub.add_parser(
        "down",
        help="stop the cluster and delete its state",
        description="Stop the processes `up` started (reverse order) and remove the state dir.",
    )
    _add_name(down)
    down.set_defaults(func=_down)

    status = sub.add_parser(
        "status",
        help="show processes, ports, pod IP range, kubeconfig and node count",
        description="Show each component's PID, whether it is alive, its ports, and the nodes.",
    )
    _add_name(status)
    status.set_defaults(func=_status)

    kubeconfig = sub.add_parser(
        "kubeconfig",
        help="print the admin kubeconfig path",
        description="Print the admin kubeconfig path, e.g. export KUBECONFIG=$(modelfleet "
        "cluster kubeconfig).",
    )
    _add_name(kubeconfig)
    kubeconfig.set_defaults(func=_kubeconfig)


def _add_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--name",
        type=cluster_name,
        default=DEFAULT_CLUSTER_NAME,
        help="cluster name; each has its own state dir (default: %(default)s)",
    )


def _build(args: argparse.Namespace) -> int:
    try:
        binaries = ensure_binaries()
        extras = [ensure_helm()] if args.helm else []
        if args.prometheus:
            extras.append(ensure_prometheus())
    except BuildError as error:
        return _fail(str(error))
    for path in (*vars(binaries).values(), *extras):
        print(path)
    return 0


def _up(args: argparse.Namespace) -> int:
    try:
        state = control_plane.up(
            name=args.name,
            kubeconfig=args.kubeconfig,
            nodes_file=args.nodes,
            model_load_delay=args.model_load_delay,
            timeout_seconds=args.timeout,
        )
    except (pydantic.ValidationError, yaml.YAMLError) as error:
        return _fail(f"invalid node inventory {args.nodes}:\n{error}")
    except (BuildError, control_plane.ClusterError, PodRangeError, OSError) as error:
        return _fail(str(error))
    print(f"cluster {state.name!r} is running: {state.server} ({state.node_count} nodes)")
    print(f"pod IPs: {state.pod_cidr}")
    print(f"kubeconfig: {state.kubeconfig}")
    print(f"export KUBECONFIG={state.kubeconfig}")
    return 0


def _down(args: argparse.Namespace) -> int:
    if control_plane.down(args.name):
        print(f"cluster {args.name!r} stopped and removed")
    else:
        print(f"cluster {args.name!r} is not running (no {state_dir(args.name)})")
    return 0


def _status(args: argparse.Namespace) -> int:
    report = control_plane.status(args.name)
    if report is None:
        print(f"cluster {args.name!r} is not running (no {state_dir(args.name)})")
        return 1
    print(f"cluster {report.name!r}: {report.server}")
    print(f"pod IPs: {report.pod_cidr}")
    print(f"kubeconfig: {report.kubeconfig}")
    print(f"audit log: {report.audit_log}")
    if not report.components:
        print(f"no processes running (the last `up` failed?); logs in {report.logs}")
    else:
        rows = [
            [
                component.component,
                str(component.pid),
                "alive" if component.alive else "DEAD",
                ", ".join(f"{key}={value}" for key, value in component.ports.items()) or "-",
            ]
            for component in report.components
        ]
        print(table(["COMPONENT", "PID", "STATE", "PORTS"], rows), end="")
    print(f"nodes: {'unknown' if report.nodes is None else report.nodes}")
    return 0 if report.healthy else 1


def _kubeconfig(args: argparse.Namespace) -> int:
    state = control_plane.read_state(args.name)
    if state is None:
        return _fail(f"cluster {args.name!r} is not running; start it with `modelfleet cluster up`")
    print(state.kubeconfig)
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
