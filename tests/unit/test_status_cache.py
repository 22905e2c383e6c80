"""status.cache from the download Job, its progress and its failure; the conditions it sets."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.status.cache import (
    MAX_PROGRESS_READS,
    NodeFill,
    Progress,
    cache_status,
    engines_may_start,
    job_state,
    node_fills,
    parse_progress,
    per_node_status,
    pod_failure,
    pod_fill,
    progress_to_read,
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
        ({"cache": {"mode": "PerNode"}}, None, None, "", "Pending", None, "each node"),
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


# PerNode: the engine pods' weights init containers (status/cache.pod_fill and per_node_status).
PER_NODE = {"mode": "PerNode"}
NOT_FOUND = "hf exited with 1: 404 Client Error. Repository Not Found"


def engine_pod(
    node: str | None = "n1",
    *,
    state: dict[str, Any] | None = None,
    last: dict[str, Any] | None = None,
    phase: str = "Pending",
    ip: str | None = "10.0.0.1",
    key: str | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    init: dict[str, Any] = {"name": "weights"}
    if state is not None:
        init["state"] = state
    if last is not None:
        init["lastState"] = last
    metadata: dict[str, Any] = {"labels": {} if key is None else {"modelfleet.dev/cache-key": key}}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"phase": phase}
    if ip:
        status["podIP"] = ip
    if state is not None or last is not None:
        status["initContainerStatuses"] = [init]
    return {"metadata": metadata, "spec": {"nodeName": node} if node else {}, "status": status}


RUNNING = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
DONE = {"terminated": {"exitCode": 0, "reason": "Completed"}}
EXIT_2 = {"terminated": {"exitCode": 2, "reason": "Error", "message": NOT_FOUND}}
EXIT_1 = {"terminated": {"exitCode": 1, "reason": "Error", "message": "connection reset"}}
BACKOFF = {"waiting": {"reason": "CrashLoopBackOff"}}


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (engine_pod(None, state=RUNNING), None),
        (engine_pod(), NodeFill("n1", "Downloading")),
        (engine_pod(phase="Running"), NodeFill("n1", "Cached")),
        (engine_pod(state=RUNNING), NodeFill("n1", "Downloading", pod_ip="10.0.0.1")),
        (engine_pod(state=RUNNING, ip=None), NodeFill("n1", "Downloading")),
        (
            engine_pod(state={"waiting": {"reason": "PodInitializing"}}),
            NodeFill("n1", "Downloading"),
        ),
        (engine_pod(state=DONE, phase="Running"), NodeFill("n1", "Cached")),
        (engine_pod(state=EXIT_2), NodeFill("n1", "Failed", reason=NOT_FOUND)),
        (engine_pod(state=BACKOFF, last=EXIT_2), NodeFill("n1", "Failed", reason=NOT_FOUND)),
        # another exit code is retried by the kubelet (resuming): still downloading
        (engine_pod(state=BACKOFF, last=EXIT_1), NodeFill("n1", "Downloading")),
        (engine_pod(state=EXIT_1), NodeFill("n1", "Downloading")),
        # a retry that runs again after an exit 2 is downloading, not failed
        (engine_pod(state=RUNNING, last=EXIT_2), NodeFill("n1", "Downloading", pod_ip="10.0.0.1")),
        (
            engine_pod(state={"terminated": {"exitCode": 2}}),
            NodeFill("n1", "Failed", reason="the download exited with 2"),
        ),
    ],
)
def test_pod_fill(pod: dict[str, Any], expected: NodeFill | None) -> None:
    assert pod_fill(pod) == expected


def test_node_fills_one_per_node_of_this_key_best_state_first() -> None:
    pods = [
        engine_pod("b", state=RUNNING, ip=None, key="k"),
        engine_pod("b", state=RUNNING, ip="10.0.0.2", key="k"),
        engine_pod("a", state=BACKOFF, last=EXIT_2, key="k"),
        engine_pod("a", state=DONE, phase="Running", key="k"),  # a's marker is written
        engine_pod("c", state=RUNNING, key="old"),  # another revision's pod
        engine_pod("d", state=RUNNING, key=None),
        engine_pod("e", state=RUNNING, key="k", deleting=True),
        engine_pod(None, key="k"),  # not scheduled
    ]
    assert node_fills(pods, "k") == [
        NodeFill("a", "Cached"),
        NodeFill("b", "Downloading", pod_ip="10.0.0.2"),
    ]


def test_progress_is_read_from_a_few_downloading_nodes_only() -> None:
    fills = [NodeFill(f"n{i}", "Downloading", pod_ip=f"10.0.0.{i}") for i in range(6)]
    fills += [NodeFill("x", "Downloading"), NodeFill("y", "Cached", pod_ip="10.0.1.1")]
    assert progress_to_read(fills) == fills[:MAX_PROGRESS_READS]
    assert progress_to_read(fills[6:]) == []


def per_node(
    fills: list[NodeFill],
    progress: dict[str, Progress] | None = None,
    before: dict[str, Any] | None = None,
    **spec: Any,
) -> Any:
    return per_node_status(md_with(before, cache=PER_NODE, **spec), fills, progress or {})


def counts(cached: int, downloading: int, failed: int) -> dict[str, int]:
    return {"cached": cached, "downloading": downloading, "failed": failed}


@pytest.mark.parametrize(
    ("fills", "progress", "phase", "nodes", "numbers", "message"),
    [
        (
            [],
            {},
            "Pending",
            None,
            (None, None, None),
            "no replica on a node yet; each node fills its cache when a replica first starts there",
        ),
        (
            [NodeFill("a", "Downloading", "10.0.0.1"), NodeFill("b", "Downloading", "10.0.0.2")],
            {},
            "Downloading",
            counts(0, 2, 0),
            (None, None, None),
            "0 of 2 nodes cached, no progress yet",
        ),
        (
            [
                NodeFill("a", "Downloading", "10.0.0.1"),
                NodeFill("b", "Downloading", "10.0.0.2"),
                NodeFill("c", "Cached"),
            ],
            {"a": Progress(10 * GIB, 20 * GIB), "b": Progress(5 * GIB, 20 * GIB)},
            "Downloading",
            counts(1, 2, 0),
            (5 * GIB, 20 * GIB, 25),
            "1 of 3 nodes cached; slowest node b: downloaded 5.0 GiB of 20.0 GiB",
        ),
        (
            [NodeFill("a", "Downloading", "10.0.0.1"), NodeFill("b", "Downloading", "10.0.0.2")],
            {"a": Progress(3 * GIB), "b": Progress(4 * GIB)},
            "Downloading",
            counts(0, 2, 0),
            (3 * GIB, None, None),
            "0 of 2 nodes cached; slowest node a: downloaded 3.0 GiB",
        ),
        (
            [NodeFill("a", "Cached"), NodeFill("b", "Cached")],
            {},
            "Cached",
            counts(2, 0, 0),
            (None, None, None),
            "weights cached on 2 nodes; replicas mount them read-only",
        ),
        (
            [
                NodeFill("a", "Cached"),
                NodeFill("b", "Failed", reason=NOT_FOUND),
                NodeFill("c", "Downloading", "10.0.0.3"),
            ],
            {"c": Progress(1, 2)},
            "Failed",
            counts(1, 1, 1),
            (None, None, None),
            f"download failed on node b: {NOT_FOUND}",
        ),
    ],
)
def test_per_node_status_table(
    fills: list[NodeFill],
    progress: dict[str, Progress],
    phase: str,
    nodes: dict[str, int] | None,
    numbers: tuple[int | None, int | None, int | None],
    message: str,
) -> None:
    found = per_node(fills, progress)
    assert (found.phase, found.message) == (phase, message)
    dumped = found.model_dump(by_alias=True, exclude_none=True)
    assert dumped.get("nodes") == nodes
    assert (found.bytes, found.total_bytes, found.percent) == numbers
    assert (found.volume, found.job) == (None, None)


def test_per_node_numbers_hold_on_a_missed_read_and_carry_into_cached() -> None:
    downloading = [NodeFill("a", "Downloading", "10.0.0.1"), NodeFill("b", "Cached")]
    first = per_node(downloading, {"a": Progress(5 * GIB, 20 * GIB)})
    before = first.model_dump(by_alias=True, exclude_none=True)
    assert per_node(downloading, {}, before) == first  # a read failed: no churn
    # a node more (scaled up): the counts are news, the old numbers are not reused
    more = per_node([*downloading, NodeFill("c", "Downloading")], {}, before)
    assert (more.nodes.downloading, more.bytes) == (2, None)  # type: ignore[union-attr]
    done = per_node([NodeFill("a", "Cached"), NodeFill("b", "Cached")], {}, before)
    assert (done.phase, done.bytes, done.total_bytes, done.percent) == (
        "Cached",
        20 * GIB,
        20 * GIB,
        100,
    )
    # scaled to zero: still cached; another revision starts again
    assert per_node([], {}, done.model_dump(by_alias=True)) == done
    other = per_node([], {}, done.model_dump(by_alias=True), modelRevision="v2")
    assert (other.phase, other.bytes) == ("Pending", None)


@pytest.mark.parametrize(
    ("fills", "reason", "progressing", "degraded"),
    [
        ([NodeFill("a", "Downloading")], "DownloadingWeights", "True", "False"),
        ([NodeFill("a", "Failed", reason=NOT_FOUND)], "DownloadFailed", "False", "True"),
    ],
)
def test_per_node_conditions(
    fills: list[NodeFill], reason: str, progressing: str, degraded: str
) -> None:
    md = md_with(cache=PER_NODE)
    cache = per_node_status(md, fills, {})
    status = compute_status(
        md,
        Observed(deployment=deployment(1, 0)),
        placement(),
        1,
        now="2026-01-01T00:00:00Z",
        cache=cache,
    )
    verdicts = {c.type: (c.status, c.reason) for c in status.conditions}
    assert verdicts["Progressing"] == (progressing, reason)
    assert verdicts["Degraded"][0] == degraded
    if degraded == "True":
        assert verdicts["Degraded"][1] == reason


@pytest.mark.parametrize(
    ("cache", "phase", "may_start"),
    [
        (PER_NODE, "Downloading", True),
        (PER_NODE, "Failed", True),
        (PER_NODE, "Pending", True),
        (SHARED, "Downloading", False),
        (SHARED, "Cached", True),
    ],
)
def test_engines_may_start(cache: dict[str, Any], phase: str, may_start: bool) -> None:
    """PerNode pods fill their node in their init container: the Deployment must exist."""
    md = md_with(cache=cache)
    status = cache_status(md, None)
    assert status is not None
    assert engines_may_start(md, status.model_copy(update={"phase": phase})) is may_start
