"""status.cache from the download Job, its progress and its failure; the conditions it sets."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.status.cache import (
    Progress,
    cache_status,
    job_state,
    parse_progress,
    pod_failure,
    weights_ready,
)
from modelfleet.status.conditions import Observed, compute_status
from tests.unit.factories import deployment, model_deployment, placement

SHARED = {"size": "40Gi"}
GIB = 2**30


def job(*conditions: str, succeeded: int = 0, active: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": "j"},
        "status": {
            "active": active,
            "succeeded": succeeded,
            "conditions": [
                {"type": c, "status": "True", "reason": "PodFailurePolicy", "message": "exit 2"}
                for c in conditions
            ],
        },
    }


@pytest.mark.parametrize(
    ("observed", "state"),
    [
        (None, "Missing"),
        (job(active=1), "Running"),
        (job("Complete", succeeded=1), "Succeeded"),
        (job(succeeded=1), "Succeeded"),
        (job("SuccessCriteriaMet"), "Succeeded"),
        (job("FailureTarget"), "Failed"),
        (job("Failed"), "Failed"),
    ],
)
def test_job_state(observed: dict[str, Any] | None, state: str) -> None:
    assert job_state(observed) == state


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"bytes": 5, "totalBytes": 10}, Progress(5, 10)),
        ({"bytes": 5, "totalBytes": None}, Progress(5, None)),
        ({"bytes": 5, "totalBytes": 0}, Progress(5, None)),
        ({"bytes": 5, "totalBytes": "10"}, Progress(5, None)),
        ({"bytes": -1}, None),
        ({"bytes": 1.5}, None),
        ({"bytes": True}, None),
        ("garbage", None),
        (None, None),
    ],
)
def test_parse_progress(payload: Any, expected: Progress | None) -> None:
    assert parse_progress(payload) == expected


def test_the_latest_failed_containers_message_is_the_reason() -> None:
    def failed(message: str, at: str, code: int = 1) -> dict[str, Any]:
        terminated = {"exitCode": code, "message": message, "finishedAt": at}
        return {"status": {"containerStatuses": [{"state": {"terminated": terminated}}]}}

    pods = [failed("old", "2026-01-01T00:00:00Z"), failed("new", "2026-01-01T00:01:00Z")]
    assert pod_failure(pods) == "new"
    assert pod_failure([failed("fine", "2026-01-01T00:02:00Z", code=0)]) == ""
    assert pod_failure([]) == ""


def md_with(status_cache: dict[str, Any] | None = None, **spec: Any) -> Any:
    status = {"cache": status_cache} if status_cache else None
    return model_deployment(status=status, **spec)


@pytest.mark.parametrize(
    ("spec", "observed_job", "progress", "failure", "phase", "numbers", "words"),
    [
        ({}, None, None, "", None, None, ""),
        (
            {"source": {"pvc": {"claimName": "m", "path": "q"}}},
            None,
            None,
            "",
            "Mounted",
            None,
            "m/q",
        ),
        ({"cache": {"mode": "PerNode"}}, None, None, "", "PerNode", None, "each node"),
        ({"cache": SHARED}, None, None, "", "Pending", (None, None, None), "creating"),
        (
            {"cache": SHARED},
            job(active=1),
            None,
            "",
            "Downloading",
            (None, None, None),
            "no progress yet",
        ),
        (
            {"cache": SHARED},
            job(active=1),
            Progress(5 * GIB, 20 * GIB),
            "",
            "Downloading",
            (5 * GIB, 20 * GIB, 25),
            "5.0 GiB of 20.0 GiB",
        ),
        (
            {"cache": SHARED},
            job(active=1),
            Progress(3 * GIB),
            "",
            "Downloading",
            (3 * GIB, None, None),
            "downloaded 3.0 GiB",
        ),
        (
            {"cache": SHARED},
            job("Complete", succeeded=1),
            None,
            "",
            "Cached",
            (None, None, None),
            "cached",
        ),
        (
            {"cache": SHARED},
            job("Failed"),
            None,
            "404 Repository Not Found",
            "Failed",
            (None, None, None),
            "download failed: 404 Repository Not Found",
        ),
        (
            {"cache": SHARED},
            job("Failed"),
            None,
            "",
            "Failed",
            (None, None, None),
            "PodFailurePolicy: exit 2",
        ),
    ],
)
def test_cache_status_table(
    spec: dict[str, Any],
    observed_job: dict[str, Any] | None,
    progress: Progress | None,
    failure: str,
    phase: str | None,
    numbers: tuple[int | None, int | None, int | None] | None,
    words: str,
) -> None:
    found = cache_status(md_with(**spec), observed_job, progress, failure)
    if phase is None:
        assert found is None
        return
    assert found is not None and found.phase == phase
    assert words in found.message
    if numbers is not None:
        assert (found.bytes, found.total_bytes, found.percent) == numbers


def test_numbers_hold_when_a_progress_read_fails_and_carry_into_cached() -> None:
    """A missed read keeps the last numbers of the same key (no status churn); a finished
    download reports the whole size."""
    first = cache_status(md_with(cache=SHARED), job(active=1), Progress(5 * GIB, 20 * GIB))
    assert first is not None
    before = first.model_dump(by_alias=True, exclude_none=True)
    again = cache_status(md_with(before, cache=SHARED), job(active=1), None)
    assert again == first
    done = cache_status(md_with(before, cache=SHARED), job("Complete", succeeded=1))
    assert done is not None
    assert (done.phase, done.bytes, done.total_bytes, done.percent) == (
        "Cached",
        20 * GIB,
        20 * GIB,
        100,
    )
    assert (
        cache_status(md_with(done.model_dump(by_alias=True), cache=SHARED), job(succeeded=1))
        == done
    )


def test_another_revisions_numbers_are_never_reused() -> None:
    old = cache_status(md_with(cache=SHARED, modelRevision="a"), job(active=1), Progress(5, 10))
    assert old is not None
    new = cache_status(
        md_with(old.model_dump(by_alias=True), cache=SHARED, modelRevision="b"), job(active=1)
    )
    assert new is not None and new.key != old.key and new.bytes is None


def test_a_failure_keeps_its_reason_once_read() -> None:
    failed = cache_status(md_with(cache=SHARED), job("Failed"), None, "exit 2: 404")
    assert failed is not None
    again = cache_status(md_with(failed.model_dump(by_alias=True), cache=SHARED), job("Failed"))
    assert again == failed


@pytest.mark.parametrize(
    ("phase", "ready"),
    [
        ("Pending", False),
        ("Downloading", False),
        ("Failed", False),
        ("Cached", True),
        ("PerNode", True),
        ("Mounted", True),
    ],
)
def test_weights_ready(phase: str, ready: bool) -> None:
    status = cache_status(md_with(cache=SHARED), None)
    assert status is not None
    assert weights_ready(status.model_copy(update={"phase": phase})) is ready
    assert weights_ready(None)


@pytest.mark.parametrize(
    ("observed_job", "existing", "ready", "progressing", "degraded"),
    [
        (
            job(active=1),
            None,
            ("False", "DownloadingWeights"),
            ("True", "DownloadingWeights"),
            ("False", "AsExpected"),
        ),
        (
            job("Failed"),
            None,
            ("False", "DownloadFailed"),
            ("False", "DownloadFailed"),
            ("True", "DownloadFailed"),
        ),
        # a new revision downloads while the old replicas serve: Ready stays theirs
        (
            job(active=1),
            deployment(2, 2),
            ("True", "AllReplicasReady"),
            ("True", "DownloadingWeights"),
            ("False", "AsExpected"),
        ),
        (
            job("Complete", succeeded=1),
            deployment(2, 2),
            ("True", "AllReplicasReady"),
            ("False", "Complete"),
            ("False", "AsExpected"),
        ),
    ],
)
def test_conditions_follow_the_download(
    observed_job: dict[str, Any],
    existing: dict[str, Any] | None,
    ready: tuple[str, str],
    progressing: tuple[str, str],
    degraded: tuple[str, str],
) -> None:
    md = md_with(cache=SHARED, replicas=2)
    cache = cache_status(md, observed_job, None, "exit 2: 404")
    status = compute_status(
        md, Observed(deployment=existing), placement(), 1, now="2026-01-01T00:00:00Z", cache=cache
    )
    verdicts = {c.type: (c.status, c.reason) for c in status.conditions}
    assert verdicts["Ready"] == ready
    assert verdicts["Progressing"] == progressing
    assert verdicts["Degraded"] == degraded
    assert status.cache == cache
