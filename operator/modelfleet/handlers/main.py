"""Operator start-up: kopf settings, the API client, and `modelfleet run`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from modelfleet.handlers import modeldeployment  # noqa: F401  (registers the handlers)
from modelfleet.kube.client import Kube, load_api_client
from modelfleet.plan.prices import PriceSheet

ANNOTATION_PREFIX = "modelfleet.dev"


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
    memo.prices = PriceSheet()  # catalog defaults; cluster overrides are not wired in yet


def run_operator(namespaces: list[str], verbose: bool = False) -> int:
    """Run until interrupted; without namespaces, watch the whole cluster."""
    kopf.configure(verbose=verbose)
    asyncio.run(
        kopf.operator(
            standalone=True,
            namespaces=namespaces,
            clusterwide=not namespaces,
        )
    )
    return 0
