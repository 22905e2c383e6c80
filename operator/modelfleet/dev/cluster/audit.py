"""The local API server's audit log read back: which user called which verb on which resource.

kube-apiserver writes one JSON event per line at Metadata level (`audit-policy.yaml`), so what a
client really did is observed at the server instead of guessed from its code: the chart's RBAC
test compares the operator's calls with the chart's rules, and benchmarks count requests. The
log rotates (`flags.AUDIT_LOG_MAX_SIZE_MB`, `flags.AUDIT_LOG_MAX_BACKUPS`); readers take the
rotated files too, oldest first.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

POLICY_RESOURCE = "audit-policy.yaml"
DECISION_ANNOTATION = "authorization.k8s.io/decision"


def policy_text() -> str:
    """The audit policy `up` hands to the API server."""
    return resources.files(__package__).joinpath(POLICY_RESOURCE).read_text()


def service_account_user(namespace: str, name: str) -> str:
    """The user name the API server gives a ServiceAccount's tokens."""
    return f"system:serviceaccount:{namespace}:{name}"


@dataclass(frozen=True)
class AuditEvent:
    """One stage of one request; a watch has two (ResponseStarted, ResponseComplete)."""

    audit_id: str
    stage: str
    received: datetime
    user: str
    user_agent: str
    verb: str
    uri: str
    code: int | None  # None while a watch's stream is open
    decision: str  # "allow" or "forbid" from the authorizer; "" if it did not annotate
    # objectRef; resource is None for a non-resource URL (discovery, /version, /openapi).
    group: str
    resource: str | None
    subresource: str
    namespace: str
    name: str

    @property
    def permission(self) -> tuple[str, str, str] | None:
        """(apiGroup, resource[/subresource], verb) as an RBAC rule names it; None off resources."""
        if self.resource is None:
            return None
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return self.group, resource, self.verb


def parse_event(raw: dict[str, Any]) -> AuditEvent:
    ref = raw.get("objectRef") or {}
    status = raw.get("responseStatus") or {}
    return AuditEvent(
        audit_id=str(raw["auditID"]),
        stage=str(raw["stage"]),
        received=datetime.fromisoformat(str(raw["requestReceivedTimestamp"])),
        user=str((raw.get("user") or {}).get("username") or ""),
        user_agent=str(raw.get("userAgent") or ""),
        verb=str(raw["verb"]),
        uri=str(raw.get("requestURI") or ""),
        code=int(status["code"]) if "code" in status else None,
        decision=str((raw.get("annotations") or {}).get(DECISION_ANNOTATION) or ""),
        group=str(ref.get("apiGroup") or ""),  # the core group has none
        resource=str(ref["resource"]) if ref.get("resource") else None,
        subresource=str(ref.get("subresource") or ""),
        namespace=str(ref.get("namespace") or ""),
        name=str(ref.get("name") or ""),
    )


def parse_lines(text: str) -> list[AuditEvent]:
    """Events of one file's text; a last line still being written (no newline yet) waits."""
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return [parse_event(json.loads(line)) for line in complete.splitlines() if line.strip()]


def log_files(audit_log: Path) -> list[Path]:
    """Rotated files (`audit-<timestamp>.log`, which sort by time) oldest first, then the log."""
    backups = sorted(audit_log.parent.glob(f"{audit_log.stem}-*{audit_log.suffix}"))
    return [*backups, audit_log]


def read_events(audit_log: Path, user: str | None = None) -> list[AuditEvent]:
    """Every event still on disk, oldest first, optionally only those of `user`.

    A file rotated away between listing and reading is skipped: what it held is in the next.
    """
    events: list[AuditEvent] = []
    for path in log_files(audit_log):
        with contextlib.suppress(FileNotFoundError):
            events.extend(parse_lines(path.read_text()))
    return [event for event in events if user is None or event.user == user]


def requests(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """One event per request (its latest stage), in the order the requests first appeared."""
    latest: dict[str, AuditEvent] = {}
    for event in events:
        latest[event.audit_id] = event  # dicts keep first-insertion order
    return list(latest.values())
