"""Extra simulated GPU nodes for one test, removed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client

from modelfleet.dev.cluster.nodes import NodePool, render_node
from tests.integration.operator_fixtures import wait_until

A10G = "NVIDIA-A10G"  # in the catalog, not in the default inventory: only these nodes have it


def a10g_pool(name: str, nodes: int, gpus_per_node: int) -> NodePool:
    """Nodes of a GPU product no other test places on, so a test owns them outright."""
    return NodePool(
        name=name,
        count=nodes,
        cpu=str(12 * gpus_per_node),
        memory=f"{64 * gpus_per_node}Gi",
        gpu_product=A10G,
        gpu_memory_mib=23028,
        gpus_per_node=gpus_per_node,
    )


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
