"""Operator start-up: endpoints, leader election, kopf settings, and `modelfleet run`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import kopf
import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException
from urllib3.exceptions import HTTPError

from modelfleet.cost import ApiPriceError, ApiPriceTable, default_api_prices
from modelfleet.cost import parse_api_price_overrides as parse_api_prices
from modelfleet.handlers import (  # noqa: F401 (each registers its handlers with kopf)
    autoscaler,
    budgets,
    cache,
    costs,
    endpoints,
    metrics,
    modeldeployment,
    schedule,
    scrapes,
    slo,
)
from modelfleet.kube.client import Kube, load_api_client
from modelfleet.kube.lease import LeaderElector
from modelfleet.kube.scrape import Scraper
from modelfleet.plan.prices import PriceSheet, PriceSheetError, parse_price_overrides

ANNOTATION_PREFIX = "modelfleet.dev"
PRICES_ENV = "MODELFLEET_PRICES_FILE"
API_PRICES_ENV = "MODELFLEET_API_PRICES_FILE"
COST_WRITE_ENV = "MODELFLEET_COST_WRITE_SECONDS"
# The chart sets these from the downward API; outside a cluster the defaults do.
NAMESPACE_ENV = "MODELFLEET_NAMESPACE"
LEASE_NAME = "modelfleet-autoscaler"

log = logging.getLogger(__name__)
T = TypeVar("T")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **indexes: Any) -> None:
    if "kube" not in memo:
        raise SystemExit("start the operator with `modelfleet run` (it elects a leader first)")
    # kopf keeps these up to date from its watches; ClusterView.take reads them (handlers/cache).
    memo.indexes = kopf.Memo({name: indexes[name] for name in cache.INDEXES})
    memo.indexes.prices = memo.prices  # budgets price replicas as a reconcile sees the cluster
    cache.watch_selectors(settings)
    # Keep kopf's bookkeeping in annotations: our status schema holds only our own fields.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # kopf posts an Event for every handler run by default; keep only warnings and errors.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300


def load_price_sheet(path: str | None) -> PriceSheet:
    """Catalog prices, overridden by a YAML file of USD per GPU-hour keyed by product label.

    Checked before the operator starts: a typo in a price must stop it, not cost money quietly.
    """
    if not path:
        return PriceSheet()
    return _load_overrides(path, "price overrides", parse_price_overrides)


def load_api_prices(path: str | None) -> ApiPriceTable:
    """Hosted-API token prices, overridden by a YAML file (docs/cost.md), checked at start-up."""
    if not path:
        return default_api_prices()
    return _load_overrides(path, "API price overrides", parse_api_prices)


def _load_overrides(path: str, what: str, parse: Callable[..., T]) -> T:
    """A YAML overrides file parsed by `parse`; any problem ends the process naming the file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
        return parse(data, prefix=path)
    except OSError as error:
        raise SystemExit(f"{what} {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise SystemExit(f"{what} {path}: not YAML: {error}") from error
    except (PriceSheetError, ApiPriceError) as error:
        raise SystemExit(f"invalid {what}:\n  " + "\n  ".join(error.errors)) from error


def cost_write_seconds(raw: str | None) -> float:
    """Seconds between writes of the time-based cost fields ($MODELFLEET_COST_WRITE_SECONDS)."""
    if raw is None or raw == "":
        return costs.WRITE_PERIOD_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1
    if not 1 <= seconds <= 3600:
        raise SystemExit(f"{COST_WRITE_ENV}: want seconds between 1 and 3600, got {raw!r}")
    return seconds


def run_operator(
    namespaces: list[str],
    verbose: bool = False,
    prices: str | None = None,
    metrics_address: str = "0.0.0.0",
    metrics_port: int = 8080,
    api_prices: str | None = None,
    opencost: bool = False,
) -> int:
    """Serve /healthz and /metrics, then lead or stand by until told to stop.

    Without namespaces, watch the whole cluster. kopf runs only while this instance holds the
    leader lease; losing it (the API server unreachable for the renew deadline, or another
    instance took over) stops kopf at once, and the process campaigns again: an API outage is
    survived without a restart, and a standby never writes.
    """
    sheet = load_price_sheet(prices or os.environ.get(PRICES_ENV))
    costs.settings = costs.CostSettings(
        api_prices=load_api_prices(api_prices or os.environ.get(API_PRICES_ENV)),
        write_period=cost_write_seconds(os.environ.get(COST_WRITE_ENV)),
        opencost=opencost,
    )
    kopf.configure(verbose=verbose)
    identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    namespace = os.environ.get(NAMESPACE_ENV) or "default"
    try:
        api_client = load_api_client()
    except ConfigException as error:
        raise SystemExit(f"no cluster to run against: {error}") from None
    try:
        elector = LeaderElector(Kube(api_client), namespace, LEASE_NAME, identity)
        kube = Kube(api_client, may_write=lambda: elector.held)
    except (HTTPError, OSError, ApiException) as error:  # API discovery at start-up
        server = api_client.configuration.host
        raise SystemExit(f"cannot reach the API server at {server}: {error}") from None
    memo = kopf.Memo(prices=sheet, kube=kube, lease=elector, scraper=Scraper(), opencost=opencost)
    scrapes.samples.listeners.append(costs.ledger.record)
    scrapes.samples.listeners.append(slo.ledger.record)
    scrapes.loops.targets = slo.ledger.targets
    return asyncio.run(_serve(elector, memo, namespaces, (metrics_address, metrics_port)))


async def _serve(
    elector: LeaderElector, memo: kopf.Memo, namespaces: list[str], listen: tuple[str, int]
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()  # a signal: the process ends
    lost = asyncio.Event()  # leadership lost: kopf ends, the campaign goes on

    def on_lost() -> None:  # runs in the election thread
        loop.call_soon_threadsafe(lost.set)

    try:
        runner = await endpoints.serve(elector, *listen)
    except OSError as error:
        where = f"{listen[0]}:{listen[1]}"
        raise SystemExit(f"cannot serve /healthz and /metrics on {where}: {error}") from None
    elector.start(on_lost=on_lost)
    try:
        while True:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)  # kopf replaces them while it runs
            log.info("%s campaigning for the leader lease", elector.identity)
            while not elector.held and not stop.is_set():
                await _first(stop.wait(), asyncio.sleep(0.2))
            if stop.is_set():
                return 0
            lost.clear()
            costs.ledger.restart()  # this term counts from status, where the last one left off
            slo.ledger.restart()  # the SLO window starts with the term
            periodic = asyncio.create_task(schedule.run(memo))
            scraping = asyncio.create_task(scrapes.run(memo))
            pricing = asyncio.create_task(costs.cluster_loop(memo))
            try:
                await kopf.operator(
                    standalone=True,
                    namespaces=namespaces,
                    clusterwide=not namespaces,
                    memo=memo,
                    stop_flag=lost,
                )
            finally:
                for task in (periodic, scraping, pricing):
                    task.cancel()
                await asyncio.gather(periodic, scraping, pricing, return_exceptions=True)
                await modeldeployment.stop_refreshes()
                metrics.stopped_leading()
            if not lost.is_set():
                return 0  # kopf ended on a signal
            log.warning("leadership lost: handlers stopped, standing by")
    finally:
        await asyncio.to_thread(elector.stop)
        await memo.scraper.close()
        await runner.cleanup()


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
