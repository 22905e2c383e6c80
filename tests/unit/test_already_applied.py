"""A resync writes a child only when it differs from what the watch last saw (issue 10)."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.api.types import PlacementStatus
from modelfleet.render.children import already_applied, children
from tests.unit.factories import model_deployment

PLACEMENT = PlacementStatus(gpu_product="NVIDIA-L4", gpus_per_replica=1, tensor_parallel=1)


def served(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server hands back: our fields plus defaults, status and bookkeeping."""
    live: dict[str, Any] = {**obj, "status": {"replicas": 1}}
    live["metadata"] = {**obj["metadata"], "uid": "u1", "resourceVersion": "7", "generation": 3}
    return live


@pytest.mark.parametrize(
    ("desired", "live", "expected"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),  # server-added fields do not count
        ({"a": 1}, {"a": "1"}, True),  # quantities and ports come back as text or numbers
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, {}, False),
        ({"a": [{"x": 1}]}, {"a": [{"x": 1, "protocol": "TCP"}]}, True),
        ({"a": [{"x": 1}]}, {"a": [{"x": 1}, {"x": 2}]}, False),  # someone added an element
        ({"a": [1, 2]}, {"a": [2, 1]}, False),
        ({"a": None}, {"a": None}, True),
        ({"a": None}, {"a": 0}, False),
        ({"a": {"b": 1}}, None, False),
    ],
)
def test_already_applied(desired: Any, live: Any, expected: bool) -> None:
    assert already_applied(desired, live) is expected


def test_rendered_children_match_themselves_served_and_not_after_a_spec_change() -> None:
    md = model_deployment(model="Qwen/Qwen2.5-7B-Instruct", replicas=1)
    for child in children(md, PLACEMENT):
        assert already_applied(child, served(child))
        assert not already_applied(child, None)
    scaled = model_deployment(model="Qwen/Qwen2.5-7B-Instruct", replicas=2)
    before, after = children(md, PLACEMENT)[0], children(scaled, PLACEMENT)[0]
    assert not already_applied(after, served(before))
