"""status.cache from what the download Job, its pod and its progress endpoint report (Shared), or
from the engine pods' weights init containers and their progress endpoints (PerNode): pure.

Stable on purpose: a progress sample that could not be read keeps the last numbers of the same
cache key, and a finished or failed download keeps its message, so recomputing an unchanged
state writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modelfleet.api.cache import CacheNodes, CacheStatus
from modelfleet.api.types import ModelDeployment
from modelfleet.render import cache as render

# Phases in which the replicas may start: the weights are where the engine will read them.
READY_PHASES = frozenset({"Cached", "PerNode", "Mounted"})
# PerNode: progress endpoints read per reconcile at most (each read may wait its timeout).
MAX_PROGRESS_READS = 3
NodeState = Literal["Downloading", "Cached", "Failed"]
# On one node, the state that speaks for it: a marker written by any pod means the node is
# filled; a permanent failure outranks a download that has not finished.
_NODE_RANK: dict[NodeState, int] = {"Cached": 0, "Failed": 1, "Downloading": 2}


@dataclass(frozen=True)
class Progress:
    """What the download pod's /progress said."""

    bytes: int
    total_bytes: int | None = None


def parse_progress(payload: Any) -> Progress | None:
    """The JSON of /progress, or None when it is not what the download script serves."""
    if not isinstance(payload, dict):
        return None
    done, total = payload.get("bytes"), payload.get("totalBytes")
    if type(done) is not int or done < 0:
        return None
    if total is not None and (type(total) is not int or total <= 0):
        total = None
    return Progress(bytes=done, total_bytes=total)


def job_state(job: dict[str, Any] | None) -> str:
    """Succeeded, Failed, Running or Missing, from the Job's conditions and counts."""
    if job is None:
        return "Missing"
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded"
        if condition.get("type") in ("Failed", "FailureTarget"):
            return "Failed"
    if int(status.get("succeeded") or 0) > 0:
        return "Succeeded"
    return "Running"


def job_failure(job: dict[str, Any] | None) -> str:
    for condition in ((job or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            reason = str(condition.get("reason") or "Failed")
            return f"{reason}: {condition.get('message') or 'the download Job failed'}"
    return "the download Job failed"


def pod_failure(pods: list[dict[str, Any]]) -> str:
    """The termination message of the latest failed download container, if any."""
    found = ""
    latest = ""
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode") in (None, 0):
                continue
            at = str(terminated.get("finishedAt") or "")
            if at >= latest:
                latest = at
                found = str(terminated.get("message") or terminated.get("reason") or "").strip()
    return found


def _gib(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"


def _cached(base: CacheStatus, before: CacheStatus | None, message: str) -> CacheStatus:
    """Cached, with the size the last download reported."""
    total = before.total_bytes if before else None
    return base.model_copy(
        update={
            "phase": "Cached",
            "bytes": total,
            "total_bytes": total,
            "percent": 100 if total else None,
            "message": message,
        }
    )


def _downloading(base: CacheStatus, progress: Progress, prefix: str) -> CacheStatus:
    """Downloading with one download's bytes, percent and a message after `prefix`."""
    total = progress.total_bytes
    percent = min(100, progress.bytes * 100 // total) if total else None
    done = f"downloaded {_gib(progress.bytes)}" + (f" of {_gib(total)}" if total else "")
    return base.model_copy(
        update={
            "phase": "Downloading",
            "bytes": progress.bytes,
            "total_bytes": total,
            "percent": percent,
            "message": prefix + done,
        }
    )


def cache_status(
    md: ModelDeployment,
    job: dict[str, Any] | None,
    progress: Progress | None = None,
    failure: str = "",
) -> CacheStatus | None:
    """status.cache (None when the engine downloads by itself, as without spec.cache)."""
    source = render.source_of(md)
    key = render.cache_key(md)
    rev = md.spec.model_revision
    if source.pvc is not None:
        claim = source.pvc.claim_name
        where = f"{claim}/{source.pvc.path}" if source.pvc.path else claim
        return CacheStatus(
            key=key, phase="Mounted", volume=claim, message=f"weights read from {where}"
        )
    if md.spec.cache is None:
        return None
    if render.per_node(md):
        return per_node_status(md, [], {})
    name = render.weights_name(md)
    before = md.status.cache if md.status.cache and md.status.cache.key == key else None
    base = CacheStatus(key=key, revision=rev, volume=name, job=name)
    state = job_state(job)
    if state == "Missing":
        return base.model_copy(
            update={"phase": "Pending", "message": "creating the volume and the download Job"}
        )
    if state == "Succeeded":
        return _cached(base, before, "weights cached; replicas mount them read-only")
    if state == "Failed":
        if not failure and before is not None and before.phase == "Failed":
            return before.model_copy(update={"volume": name, "job": name})
        return base.model_copy(
            update={
                "phase": "Failed",
                "bytes": before.bytes if before else None,
                "total_bytes": before.total_bytes if before else None,
                "percent": before.percent if before else None,
                "message": f"download failed: {failure or job_failure(job)}",
            }
        )
    if progress is None:
        if before is not None and before.phase == "Downloading":
            return before.model_copy(update={"volume": name, "job": name})
        return base.model_copy(
            update={"phase": "Downloading", "message": "download Job started, no progress yet"}
        )
    return _downloading(base, progress, "")


def weights_ready(cache: CacheStatus | None) -> bool:
    """Whether engine pods may start on these weights (no cache: always)."""
    return cache is None or cache.phase in READY_PHASES


def engines_may_start(md: ModelDeployment, cache: CacheStatus | None) -> bool:
    """Whether the engine Deployment may be applied: PerNode always (each pod fills its node in
    its init container, so the pods must exist), otherwise when the weights are ready."""
    return render.per_node(md) or weights_ready(cache)


@dataclass(frozen=True)
class NodeFill:
    """What the weights init containers on one node say: its state, the IP of a pod whose
    progress endpoint can be read, and a permanent failure's reason."""

    node: str
    state: NodeState
    pod_ip: str | None = None
    reason: str = ""


def _terminated(status: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return (status.get(key) or {}).get("terminated") or {}


def pod_fill(pod: Mapping[str, Any]) -> NodeFill | None:
    """An engine pod's weights init container (None: not on a node yet).

    Done (exit 0) is Cached; exit 2 (PERMANENT_EXIT_CODE: the download script's "no retry can
    fix this"), now or as the last run of a container the kubelet waits to restart, is Failed
    with the termination message; anything else (running, about to start, retrying after
    another exit code) is Downloading.
    """
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        return None
    status = pod.get("status") or {}
    ip = status.get("podIP") or None
    init = next(
        (
            c
            for c in status.get("initContainerStatuses") or []
            if c.get("name") == render.PER_NODE_CONTAINER
        ),
        None,
    )
    if init is None:
        # no init status yet; a pod already Running got past its init containers
        if status.get("phase") == "Running":
            return NodeFill(str(node), "Cached")
        return NodeFill(str(node), "Downloading")
    now = _terminated(init, "state")
    if now.get("exitCode") == 0:
        return NodeFill(str(node), "Cached")
    if "running" in (init.get("state") or {}):
        return NodeFill(str(node), "Downloading", pod_ip=ip)
    last = now or _terminated(init, "lastState")
    if last.get("exitCode") == render.PERMANENT_EXIT_CODE:
        reason = str(last.get("message") or last.get("reason") or "").strip()
        return NodeFill(str(node), "Failed", reason=reason or "the download exited with 2")
    return NodeFill(str(node), "Downloading")


def node_fills(pods: list[dict[str, Any]], key: str) -> list[NodeFill]:
    """One NodeFill per node running a pod of cache key `key`, sorted by node name."""
    by_node: dict[str, NodeFill] = {}
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(render.CACHE_KEY_LABEL) != key or (pod.get("metadata") or {}).get(
            "deletionTimestamp"
        ):
            continue
        fill = pod_fill(pod)
        if fill is None:
            continue
        seen = by_node.get(fill.node)
        if (
            seen is None
            or _NODE_RANK[fill.state] < _NODE_RANK[seen.state]
            or (fill.state == seen.state and seen.pod_ip is None and fill.pod_ip)
        ):
            by_node[fill.node] = fill
    return [by_node[node] for node in sorted(by_node)]


def progress_to_read(fills: list[NodeFill], limit: int = MAX_PROGRESS_READS) -> list[NodeFill]:
    """The downloading nodes whose progress a reconcile reads: the first `limit` by name."""
    return [f for f in fills if f.state == "Downloading" and f.pod_ip][:limit]


def _slowness(item: tuple[str, Progress]) -> tuple[float, int, str]:
    node, sample = item
    share = sample.bytes / sample.total_bytes if sample.total_bytes else 0.0
    return (share, sample.bytes, node)


def per_node_status(
    md: ModelDeployment, fills: list[NodeFill], progress: Mapping[str, Progress]
) -> CacheStatus:
    """PerNode status.cache from the nodes running this revision's replicas and the progress
    read from some of them (by node name): Failed if any node failed permanently, Downloading
    (the slowest sampled node's numbers) while any downloads, Cached when all are filled,
    Pending before a replica is on a node. A round without a sample keeps the last numbers."""
    key = render.cache_key(md)
    before = md.status.cache if md.status.cache and md.status.cache.key == key else None
    base = CacheStatus(key=key, revision=md.spec.model_revision)
    counts = CacheNodes(
        cached=sum(f.state == "Cached" for f in fills),
        downloading=sum(f.state == "Downloading" for f in fills),
        failed=sum(f.state == "Failed" for f in fills),
    )
    if not fills:
        if before is not None and before.phase == "Cached":
            return before  # no replica now (scaled to zero): the nodes stay filled
        return base.model_copy(
            update={
                "phase": "Pending",
                "message": "no replica on a node yet; each node fills its cache when a replica "
                "first starts there",
            }
        )
    base = base.model_copy(update={"nodes": counts})
    failed = [f for f in fills if f.state == "Failed"]
    if failed:
        return base.model_copy(
            update={
                "phase": "Failed",
                "message": f"download failed on node {failed[0].node}: {failed[0].reason}",
            }
        )
    if not counts.downloading:
        return _cached(
            base,
            before,
            f"weights cached on {_nodes(counts.cached)}; replicas mount them read-only",
        )
    summary = f"{counts.cached} of {_nodes(len(fills))} cached"
    samples = {f.node: progress[f.node] for f in fills if f.node in progress}
    if not samples:
        if before is not None and before.phase == "Downloading" and before.nodes == counts:
            return before
        return base.model_copy(
            update={"phase": "Downloading", "message": f"{summary}, no progress yet"}
        )
    node, slowest = min(samples.items(), key=_slowness)
    return _downloading(base, slowest, f"{summary}; slowest node {node}: ")


def _nodes(count: int) -> str:
    return f"{count} node" if count == 1 else f"{count} nodes"
