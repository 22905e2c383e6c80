"""The measured start-up of a deployment's replicas, from its pods' timestamps."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.autoscale.startup import measured_startup


def pod(created: str | None, ready: str | None, status: str = "True") -> dict[str, Any]:
    conditions = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": created}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": status, "lastTransitionTime": ready})
    return {"metadata": {"creationTimestamp": created}, "status": {"conditions": conditions}}


T0 = "2026-12-01T10:00:00Z"


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        pytest.param([], None, id="no-pods"),
        pytest.param([pod(T0, None)], None, id="not-ready-yet"),
        pytest.param([pod(T0, "2026-12-01T10:02:00Z", status="False")], None, id="ready-false"),
        pytest.param([pod(T0, "2026-12-01T10:02:00Z")], 120.0, id="one"),
        pytest.param(
            [
                pod("2026-12-01T10:00:00Z", "2026-12-01T10:01:30Z"),
                pod("2026-12-01T10:10:00Z", "2026-12-01T10:14:00Z"),
                pod("2026-12-01T10:20:00Z", "2026-12-01T10:22:00Z"),
            ],
            120.0,
            id="median-of-three",
        ),
        pytest.param(
            [pod(f"2026-12-01T1{k}:00:00Z", f"2026-12-01T1{k}:0{k}:00Z") for k in range(8)],
            300.0,  # the newest five: 3, 4, 5, 6, 7 minutes
            id="only-the-recent-ones",
        ),
        pytest.param(
            [pod(T0, "2026-12-01T09:59:00Z"), pod(T0, "2026-12-01T10:03:00+00:00")],
            180.0,
            id="ready-before-created-ignored",
        ),
        pytest.param(
            [pod(None, "2026-12-01T10:03:00Z"), pod(T0, "soon"), pod(T0, "2026-12-01T10:01:00")],
            None,
            id="unreadable-or-naive-timestamps-ignored",
        ),
    ],
)
def test_measured_startup(pods: list[dict[str, Any]], expected: float | None) -> None:
    assert measured_startup(pods) == expected
