"""What the scale benchmark watches while it runs, each in a background thread.

- `Tracker`: list, then watch, one kind of object (raw JSON, no client models: a thousand
  objects' events must cost the benchmark little CPU), keeping per object only whether it is
  ready and when it first was.
- `RssSampler`: the operator's resident memory from /proc/<pid>/status, every second.
- `AuditTail`: the API server's audit log read incrementally (rotation-safe, by inode), keeping
  only one user's requests, counted per phase; see modelfleet.dev.cluster.audit.
- `operator_metrics`: the operator's /metrics, parsed.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from prometheus_client.parser import text_string_to_metric_families

from modelfleet.dev.cluster import audit

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
READ_VERBS = frozenset({"get", "list", "watch"})
WATCH_TIMEOUT_SECONDS = 240


def condition_true(obj: dict[str, Any], type_: str) -> bool:
    return any(
        c.get("type") == type_ and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def md_ready(obj: dict[str, Any]) -> bool:
    """Ready=True for the current generation (a spec update is not Ready until reconciled)."""
    status = obj.get("status") or {}
    current = status.get("observedGeneration") == (obj.get("metadata") or {}).get("generation")
    return current and condition_true(obj, "Ready")


def deployment_available(obj: dict[str, Any]) -> bool:
    """Every replica of the current generation updated and available."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    current = status.get("observedGeneration") == (obj.get("metadata") or {}).get("generation")
    return (
        current
        and int(status.get("updatedReplicas") or 0) >= wanted
        and int(status.get("availableReplicas") or 0) >= wanted
        and condition_true(obj, "Available")
    )


def pod_ready(obj: dict[str, Any]) -> bool:
    return not (obj.get("metadata") or {}).get("deletionTimestamp") and condition_true(obj, "Ready")


@dataclass
class Tracked:
    ready: bool
    first_ready: float | None  # time.monotonic() when first seen ready
    extra: Any = None


class Tracker:
    """List + watch of one resource, cluster-wide or in namespaces with a prefix.

    `list_call` is a kubernetes client list function (e.g. AppsV1Api.list_deployment_for_all_
    namespaces, or a functools.partial of CustomObjectsApi.list_cluster_custom_object); it is
    called with _preload_content=False and the JSON parsed here.
    """

    def __init__(
        self,
        list_call: Callable[..., Any],
        ready: Callable[[dict[str, Any]], bool],
        *,
        namespace_prefix: str = "",
        label_selector: str | None = None,
        extra: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self._list_call = list_call
        self._ready = ready
        self._prefix = namespace_prefix
        self._selector = label_selector
        self._extra = extra
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], Tracked] = {}
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tracker")
        self.errors = 0

    def start(self) -> Tracker:
        self._thread.start()
        if not self._synced.wait(60):
            raise RuntimeError("tracker: the first list did not finish in 60 s")
        return self

    def stop(self) -> None:
        self._stop.set()

    def counts(self) -> tuple[int, int]:
        """(objects, ready objects) now."""
        with self._lock:
            return len(self._objects), sum(1 for t in self._objects.values() if t.ready)

    def snapshot(self) -> dict[tuple[str, str], Tracked]:
        with self._lock:
            return dict(self._objects)

    def wait(
        self,
        done: Callable[[int, int], bool],
        timeout: float,
        tick: Callable[[], None] | None = None,
    ) -> bool:
        """Poll `done(total, ready)` every 0.2 s; `tick` runs on every poll (progress)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(*self.counts()):
                return True
            if tick is not None:
                tick()
            time.sleep(0.2)
        return done(*self.counts())

    def _kwargs(self) -> dict[str, Any]:
        return {"label_selector": self._selector} if self._selector else {}

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version: str | None = self._relist()
                self._synced.set()
                while not self._stop.is_set() and version is not None:
                    version = self._watch(version)
            except Exception:  # the API server may be busy or restarting: list again
                self.errors += 1
                time.sleep(1)

    def _relist(self) -> str:
        response = self._list_call(**self._kwargs(), _preload_content=False, _request_timeout=120)
        listed = json.loads(response.data)
        now = time.monotonic()
        with self._lock:
            seen = set()
            for obj in listed.get("items") or []:
                seen.add(self._apply(obj, now))
            for key in set(self._objects) - seen:
                del self._objects[key]
        return str(listed["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str | None:
        """Apply events until the watch ends; the version to resume from (None: list again)."""
        response = self._list_call(
            **self._kwargs(),
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
            _preload_content=False,
            _request_timeout=WATCH_TIMEOUT_SECONDS + 30,
        )
        try:
            for line in iter_resp_lines(response):
                if self._stop.is_set():
                    return None
                if not line or not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    return None  # e.g. 410 Gone: list again
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if event.get("type") == "BOOKMARK":
                    continue
                with self._lock:
                    if event.get("type") == "DELETED":
                        self._objects.pop(self._key(obj), None)
                    else:
                        self._apply(obj, time.monotonic())
        except ApiException as error:
            if error.status == 410:
                return None
            raise
        finally:
            response.release_conn()
        return version

    @staticmethod
    def _key(obj: dict[str, Any]) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return str(meta.get("namespace") or ""), str(meta.get("name"))

    def _apply(self, obj: dict[str, Any], now: float) -> tuple[str, str]:
        key = self._key(obj)
        if self._prefix and not key[0].startswith(self._prefix):
            return key
        ready = self._ready(obj)
        previous = self._objects.get(key)
        first = previous.first_ready if previous is not None else None
        if ready and first is None:
            first = now
        extra = self._extra(obj) if self._extra is not None else None
        self._objects[key] = Tracked(ready, first, extra)
        return key


@dataclass
class RssSample:
    at: float  # time.monotonic()
    rss_mib: float
    hwm_mib: float
    phase: str
    cpu_seconds: float  # user + system CPU time of the process so far


class RssSampler:
    """VmRSS and VmHWM (peak) of one process, every `period` seconds, labelled by phase."""

    def __init__(self, pid: int, period: float = 1.0) -> None:
        self.pid = pid
        self.period = period
        self.phase = "start"
        self.samples: list[RssSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def read(self) -> tuple[float, float, float] | None:
        """(VmRSS, VmHWM) in MiB and CPU seconds used, None when the process is gone."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        # Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
        after = stat.rpartition(")")[2].split()
        cpu = (int(after[11]) + int(after[12])) / os.sysconf("SC_CLK_TCK")
        fields = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024  # kB
        if len(fields) != 2:
            return None
        return fields["VmRSS"], fields["VmHWM"], cpu

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            read = self.read()
            if read is not None:
                rss, hwm, cpu = read
                self.samples.append(RssSample(time.monotonic(), rss, hwm, self.phase, cpu))

    @property
    def peak_mib(self) -> float:
        return max((s.hwm_mib for s in self.samples), default=0.0)

    def peak_phase(self) -> str:
        if not self.samples:
            return "-"
        return max(self.samples, key=lambda s: s.rss_mib).phase

    def cpu_by_phase(self) -> dict[str, tuple[float, float]]:
        """phase -> (CPU seconds used in it, wall seconds it lasted), from the samples."""
        found: dict[str, tuple[float, float]] = {}
        for before, after in zip(self.samples, self.samples[1:], strict=False):
            cpu, wall = found.get(after.phase, (0.0, 0.0))
            found[after.phase] = (
                cpu + after.cpu_seconds - before.cpu_seconds,
                wall + after.at - before.at,
            )
        return found

    def mean_rss(self, seconds: float) -> float:
        """Mean VmRSS over the last `seconds` (waits for that long)."""
        started = time.monotonic()
        time.sleep(seconds)
        window = [s.rss_mib for s in self.samples if s.at >= started]
        return sum(window) / len(window) if window else 0.0


@dataclass
class PhaseRequests:
    """One user's requests in one phase of the run (watch requests counted when they start)."""

    started: datetime
    ended: datetime | None = None
    by_call: Counter[tuple[str, str]] = field(default_factory=Counter)  # (verb, resource)
    writes_by_object: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # a few write URIs to children

    @property
    def seconds(self) -> float:
        end = self.ended or datetime.now(UTC)
        return max((end - self.started).total_seconds(), 1e-9)

    def count(self, verbs: frozenset[str], resources: set[str] | None = None) -> int:
        return sum(
            n
            for (verb, resource), n in self.by_call.items()
            if verb in verbs and (resources is None or resource in resources)
        )


def resource_name(event: audit.AuditEvent) -> str:
    """group/resource/subresource as the table shows it; the URI path off resources."""
    if event.resource is None:
        return event.uri.split("?")[0]
    name = event.resource if not event.group else f"{event.resource}.{event.group}"
    return f"{name}/{event.subresource}" if event.subresource else name


class AuditTail:
    """Reads the audit log as it grows and counts one user's requests into the open phase.

    The log rotates (audit-<time>.log beside audit.log); files are followed by inode, so a
    rotation between two reads loses nothing. Only lines that name the user are parsed.
    """

    def __init__(self, audit_log: Path, user: str, period: float = 3.0) -> None:
        self.audit_log = audit_log
        self.user = user
        self.period = period
        self._marker = f'"username":"{user}"'.encode()
        # (inode, first bytes) -> bytes consumed: an inode freed by a deleted backup and reused
        # by a new file must not resume at the old file's offset.
        self._offsets: dict[tuple[int, bytes], int] = {}
        self._lock = threading.Lock()
        self._polling = threading.Lock()  # one reader at a time: offsets advance once
        self.phases: dict[str, PhaseRequests] = {}
        self._open: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="audit")
        self.lines_parsed = 0

    def start(self) -> AuditTail:
        self.poll()  # skip nothing: the operator has not run yet
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def begin(self, phase: str) -> None:
        with self._lock:
            self.phases[phase] = PhaseRequests(started=datetime.now(UTC))
            self._open.append(phase)

    def end(self, phase: str, settle: float = 2.0) -> PhaseRequests:
        """Close the phase: requests received until now count, once the log has them."""
        ended = datetime.now(UTC)
        time.sleep(settle)  # the API server writes an event when the response completes
        self.poll()
        with self._lock:
            self.phases[phase].ended = ended
            self._open.remove(phase)
            return self.phases[phase]

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.poll()
            except Exception:  # a partly rotated file: the next poll reads on
                continue

    def poll(self) -> None:
        with self._polling:
            self._poll()

    def _poll(self) -> None:
        for path in audit.log_files(self.audit_log):
            try:
                with path.open("rb") as handle:
                    key = (os.fstat(handle.fileno()).st_ino, handle.read(256))
                    if len(key[1]) < 256:
                        continue  # too new to tell apart: the next poll reads it
                    offset = self._offsets.get(key, 0)
                    handle.seek(offset)
                    data = handle.read()
            except FileNotFoundError:
                continue
            complete = data[: data.rfind(b"\n") + 1]
            self._offsets[key] = offset + len(complete)
            for line in complete.splitlines():
                if self._marker in line:
                    self._count(audit.parse_event(json.loads(line)))

    def _count(self, event: audit.AuditEvent) -> None:
        self.lines_parsed += 1
        if event.verb == "watch":
            # Counted when it starts; a watch refused before it started has only this event.
            if event.stage != "ResponseStarted" and event.code in (None, 200):
                return
        elif event.stage != "ResponseComplete":
            return
        received = event.received if event.received.tzinfo else event.received.replace(tzinfo=UTC)
        resource = resource_name(event)
        with self._lock:
            for phase in self._open:
                requests = self.phases[phase]
                if received < requests.started or (
                    requests.ended is not None and received > requests.ended
                ):
                    continue
                requests.by_call[(event.verb, resource)] += 1
                if event.verb in WRITE_VERBS:
                    requests.writes_by_object[(resource, event.namespace, event.name)] += 1
                    if (
                        event.resource in ("deployments", "services")
                        and len(requests.examples) < 10
                    ):
                        requests.examples.append(f"{event.verb} {event.uri}")


def operator_metrics(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of the operator's /metrics by name ({} when it does not answer)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def metric_sum(
    metrics: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(
        value
        for sample_labels, value in metrics.get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )
