"""Extra simulated GPU nodes for one test, removed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client

from modelfleet.sim.cluster.nodes import NodePool, render_node
from tests.integration.operator_fixtures import wait_until


@contextmanager
def extra_nodes(core: Any, pool: NodePool) -> Iterator[list[str]]:
    names = pool.node_names()
    for name in names:
        core.create_node(render_node(pool, name))
    try:
        wait_until(
            lambda: all(_node_ready(core, name) for name in names), 60, "the extra nodes Ready"
        )
        yield names
    finally:
        for name in names:
            try:
                core.delete_node(name)
            except client.exceptions.ApiException as error:
                if error.status != 404:
                    raise


def _node_ready(core: Any, name: str) -> bool:
    node = core.read_node(name)
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
