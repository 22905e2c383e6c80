"""`modelfleet emulate` and `modelfleet load`: the engine emulator and the load generator."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from modelfleet.render.engines import ENGINE_PORT


def add_engine_commands(commands: Any) -> None:
    """Register `emulate` and `load` on the top-level subparsers object."""
    emulate = commands.add_parser(
        "emulate",
        help="serve every modelfleet engine pod of the local cluster from this process",
        description=(
            "Stand in for the engines of the local (kwok) cluster, whose pods run no "
            "containers. For each Running and Ready modelfleet engine pod, listen on the pod's "
            f"IP (in the local cluster's own 127.N.0.0/16) and port {ENGINE_PORT} and serve the "
            "OpenAI API "
            "(/v1/models, /v1/completions, /v1/chat/completions with stream: true), /health "
            "and /metrics with the engine's own metric names (vLLM, SGLang or llama.cpp). "
            "Timing follows modelfleet's performance model of the pod's model and GPU "
            "(continuous batching with a KV-cache limit); output is filler text. A request "
            "generates exactly max_tokens tokens (default 256); prompt tokens are the "
            "modelfleet_prompt_tokens field if given, else the prompt at ~4 characters per "
            "token. Pods are re-listed every second; stop with Ctrl-C."
        ),
    )
    emulate.add_argument(
        "--kubeconfig", metavar="PATH", help="kubeconfig (default: $KUBECONFIG or ~/.kube/config)"
    )
    emulate.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="emulate only this namespace's pods (repeatable; default: all namespaces)",
    )
    emulate.add_argument(
        "--pod-cidr",
        metavar="CIDR",
        type=_network,
        help=(
            "serve only pods with an IP in this range (default: the pod range of the local "
            "cluster whose API server the kubeconfig names, as `modelfleet cluster status` "
            "shows it; every pod IP when the cluster is not a local one)"
        ),
    )
    emulate.add_argument("--verbose", action="store_true", help="debug logging")
    emulate.set_defaults(func=_emulate)

    load = commands.add_parser(
        "load",
        help="send streaming completions to a ModelDeployment's pods",
        description=(
            "Send streaming completions round-robin to the ready pods of one ModelDeployment, "
            f"straight to each pod's IP and port {ENGINE_PORT}: the local cluster has no "
            "kube-proxy, so Service addresses do not route (in a real cluster, use the "
            "Service). The pod list is refreshed every few seconds, so new replicas get load. "
            "Prints progress (sent, ok, errors, p50/p95 time to first token) every few "
            "seconds and a summary at the end."
        ),
        epilog="Exit status: 0 when every request succeeded, 1 otherwise.",
    )
    load.add_argument("--deployment", "-d", required=True, metavar="NAME", help="ModelDeployment")
    load.add_argument(
        "--namespace", "-n", default="default", help="its namespace (default: %(default)s)"
    )
    mode = load.add_mutually_exclusive_group()
    mode.add_argument(
        "--rate",
        type=_positive_float,
        metavar="R",
        help="requests per second, evenly spaced (open loop; the default, at 1/s)",
    )
    mode.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="C",
        help="keep C requests in flight (closed loop)",
    )
    load.add_argument(
        "--duration",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how long to send (default: %(default)s)",
    )
    load.add_argument(
        "--drain",
        type=_non_negative_float,
        default=120.0,
        metavar="SECONDS",
        help=(
            "then how long in-flight requests get to finish before they are abandoned "
            "(default: %(default)s)"
        ),
    )
    load.add_argument(
        "--prompt-tokens",
        type=_positive_int,
        default=512,
        metavar="N",
        help="(default: %(default)s)",
    )
    load.add_argument(
        "--output-tokens",
        type=_positive_int,
        default=128,
        metavar="N",
        help="max_tokens of each request (default: %(default)s)",
    )
    load.add_argument(
        "--kubeconfig", metavar="PATH", help="kubeconfig (default: $KUBECONFIG or ~/.kube/config)"
    )
    load.add_argument(
        "--output",
        "-o",
        choices=["text", "json"],
        default="text",
        help="json: only the final report, as one JSON object on stdout (default: text)",
    )
    load.add_argument(
        "--progress-seconds",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="progress line interval, on stderr with -o json (default: %(default)s)",
    )
    load.add_argument(
        "--routing",
        choices=["random", "least-outstanding", "round-robin"],
        default="random",
        help="pod per request: random (as a Service, default), least-outstanding (a gateway), "
        "round-robin (IPVS)",
    )
    load.add_argument("--seed", type=int, metavar="N", help="seed of the random routing")
    load.set_defaults(func=_load)


def _network(text: str) -> str:
    try:
        return str(ipaddress.IPv4Network(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _emulate(args: argparse.Namespace) -> int:
    from modelfleet.dev.cluster.control_plane import find_by_server
    from modelfleet.dev.engine.emulator import Emulator, KubeObserver
    from modelfleet.kube.client import load_api_client

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if not args.verbose:
        logging.getLogger("kubernetes").setLevel(logging.WARNING)
    api_client: Any = load_api_client(args.kubeconfig)
    log = logging.getLogger(__name__)
    pod_cidr = args.pod_cidr
    if pod_cidr is None:
        # Two local clusters may run side by side (`make demo`, then `make test`): serve only the
        # pods of the cluster this kubeconfig names, found by its API server address.
        local = find_by_server(api_client.configuration.host)
        if local is not None:
            pod_cidr = local.pod_cidr
        else:
            log.warning(
                "%s is not a local modelfleet cluster: serving pods at any IP",
                api_client.configuration.host,
            )
    emulator = Emulator(KubeObserver(api_client, args.namespace, pod_cidr))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await emulator.run(stop)

    log.info(
        "emulating modelfleet engine pods in %s with IPs in %s",
        ", ".join(args.namespace) or "all namespaces",
        pod_cidr or "any range",
    )
    try:
        asyncio.run(main())
    finally:
        api_client.close()
    return 0


def _load(args: argparse.Namespace) -> int:
    from kubernetes.client.exceptions import ApiException

    from modelfleet.dev.engine.load import LoadConfig, load_deployment, progress_line, summary

    config = LoadConfig(
        rate=args.rate,
        concurrency=args.concurrency,
        duration=args.duration,
        prompt_tokens=args.prompt_tokens,
        output_tokens=args.output_tokens,
        drain_seconds=args.drain,
        routing=args.routing,
        seed=args.seed,
    )
    out = sys.stderr if args.output == "json" else sys.stdout

    def progress(report: dict[str, Any]) -> None:
        print(progress_line(report), file=out, flush=True)

    try:
        report = load_deployment(
            Path(args.kubeconfig) if args.kubeconfig else None,
            args.namespace,
            args.deployment,
            config,
            on_progress=progress,
            progress_seconds=args.progress_seconds,
        )
    except ApiException as error:
        if error.status == 404:
            print(f"error: no ModelDeployment {args.namespace}/{args.deployment}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        return 130
    if args.output == "json":
        print(json.dumps(report, indent=2))
    else:
        print(progress_line(report))
        print(summary(report))
    return 0 if report["ok"] and not report["errors"] else 1
