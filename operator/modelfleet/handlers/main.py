"""Operator start-up: kopf settings, the API client, and `modelfleet run`."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import kopf
import yaml

from modelfleet.handlers import autoscaler, modeldeployment  # noqa: F401  (registers handlers)
from modelfleet.kube.client import Kube, load_api_client
from modelfleet.kube.lease import LeaderLease
from modelfleet.plan.prices import PriceSheet, PriceSheetError, parse_price_overrides

ANNOTATION_PREFIX = "modelfleet.dev"
PRICES_ENV = "MODELFLEET_PRICES_FILE"
# The chart sets these from the downward API; outside a cluster the defaults do.
NAMESPACE_ENV = "MODELFLEET_NAMESPACE"
LEASE_NAME = "modelfleet-autoscaler"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
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
    memo.kube = Kube(load_api_client())
    if "prices" not in memo:  # `kopf run -m modelfleet.handlers` comes without run_operator
        memo.prices = load_price_sheet(os.environ.get(PRICES_ENV))
    identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    namespace = os.environ.get(NAMESPACE_ENV) or "default"
    memo.lease = LeaderLease(memo.kube, namespace, LEASE_NAME, identity)
    memo.lease.start()


@kopf.on.cleanup()
def release_lease(memo: kopf.Memo, **_: Any) -> None:
    if "lease" in memo:
        memo.lease.stop()


def load_price_sheet(path: str | None) -> PriceSheet:
    """Catalog prices, overridden by a YAML file of USD per GPU-hour keyed by product label.

    Checked before the operator starts: a typo in a price must stop it, not cost money quietly.
    """
    if not path:
        return PriceSheet()
    try:
        data = yaml.safe_load(Path(path).read_text())
        return parse_price_overrides(data, prefix=path)
    except OSError as error:
        raise SystemExit(f"price overrides {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise SystemExit(f"price overrides {path}: not YAML: {error}") from error
    except PriceSheetError as error:
        raise SystemExit("invalid price overrides:\n  " + "\n  ".join(error.errors)) from error


def run_operator(namespaces: list[str], verbose: bool = False, prices: str | None = None) -> int:
    """Run until interrupted; without namespaces, watch the whole cluster."""
    sheet = load_price_sheet(prices or os.environ.get(PRICES_ENV))
    kopf.configure(verbose=verbose)
    asyncio.run(
        kopf.operator(
            standalone=True,
            namespaces=namespaces,
            clusterwide=not namespaces,
            memo=kopf.Memo(prices=sheet),
        )
    )
    return 0
