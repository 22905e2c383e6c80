"""status.cache from what the download Job, its pod and its progress endpoint report: pure.

Stable on purpose: a progress sample that could not be read keeps the last numbers of the same
cache key, and a finished or failed download keeps its message, so recomputing an unchanged
state writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelfleet.api.cache import CacheStatus
from modelfleet.api.types import ModelDeployment
from modelfleet.render import cache as render

# Phases in which the replicas may start: the weights are where the engine will read them.
READY_PHASES = frozenset({"Cached", "PerNode", "Mounted"})


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
        return CacheStatus(
            key=key,
            revision=rev,
            phase="PerNode",
            message="each node fills its cache when a replica first starts there",
        )
    name = render.weights_name(md)
    before = md.status.cache if md.status.cache and md.status.cache.key == key else None
    base = CacheStatus(key=key, revision=rev, volume=name, job=name)
    state = job_state(job)
    if state == "Missing":
        return base.model_copy(
            update={"phase": "Pending", "message": "creating the volume and the download Job"}
        )
    if state == "Succeeded":
        total = before.total_bytes if before else None
        return base.model_copy(
            update={
                "phase": "Cached",
                "bytes": total,
                "total_bytes": total,
                "percent": 100 if total else None,
                "message": "weights cached; replicas mount them read-only",
            }
        )
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
    total = progress.total_bytes
    percent = min(100, progress.bytes * 100 // total) if total else None
    message = f"downloaded {_gib(progress.bytes)}" + (f" of {_gib(total)}" if total else "")
    return base.model_copy(
        update={
            "phase": "Downloading",
            "bytes": progress.bytes,
            "total_bytes": total,
            "percent": percent,
            "message": message,
        }
    )


def weights_ready(cache: CacheStatus | None) -> bool:
    """Whether engine pods may start on these weights (no cache: always)."""
    return cache is None or cache.phase in READY_PHASES
