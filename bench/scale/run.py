"""Scale benchmark (issue 10): the operator at a thousand deployments on ~200 simulated GPU nodes.

Starts its own local control plane (`modelfleet.dev.cluster.control_plane.up`, cluster name
`modelfleet-bench-scale`, torn down at the end) with GPU nodes from a generated inventory, then:

  floor        applies the Deployment and Service of N ModelDeployments directly (rendered by
               modelfleet.render.children for the planner's placement, server-side applied with
               the admin client) and times until every Deployment is Available: the API floor
  create       starts `modelfleet run` (its own ServiceAccount, the default 30 s resync), creates
               the N ModelDeployments and times until every one is Ready;
               target: operator time <= 1.5 x the floor
  steady       counts the operator's requests in the API server's audit log for S seconds;
               targets: 0 writes to Deployments and Services, at most 1 status write per
               deployment per 5 minutes (Lease renewals aside); reads per second reported
  churn        rounds of spec updates (rollouts) on 20% and delete + create of 10% of the
               deployments; targets: no error in the operator's log (tracebacks, 'failed',
               ERROR), resident memory after / before <= 1.10
  autoscaled   M autoscaled deployments beside the N, their engines emulated (`modelfleet
               emulate`) under a steady request rate; samples the operator's
               modelfleet_autoscaler_last_decision_timestamp_seconds every second;
               target: worst time since a deployment's last decision <= interval + 3 s
  memory       the operator's peak RSS (VmHWM) over the whole run; target: <= 200 MB

Prints a progress line every few seconds (stderr), then the summary table (figure, target,
verdict) and the evidence (which requests dominate); writes the summary as JSON to
--json-file (default: the work dir's summary.json), or prints only JSON with -o json. Only the
full size (the defaults) decides PASS/FAIL and exits 1 on a FAIL; a smaller run says "met" or
"missed" and is indicative only. Exit 2 when the benchmark itself could not run.

    .venv/bin/python bench/scale/run.py [--deployments N] [--nodes N] [--steady-seconds S]
        [--autoscaled N] [--churn-rounds R] [-o table|json] [--keep-cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fleet
import harness
from harness import bulk
from kubernetes import client
from observe import (
    READ_VERBS,
    WRITE_VERBS,
    AuditTail,
    PhaseRequests,
    RssSampler,
    Tracker,
    deployment_available,
    md_ready,
    metric_sum,
    operator_metrics,
    pod_ready,
)

from modelfleet.api.types import GROUP, PLURAL, VERSION
from modelfleet.cli.tables import table
from modelfleet.dev.cluster import control_plane
from modelfleet.dev.cluster.paths import cache_dir
from modelfleet.dev.engine.load import LoadConfig, kube_targets, run_load
from modelfleet.kube.client import Kube
from modelfleet.render.children import MANAGED_BY

CLUSTER_NAME = "modelfleet-bench-scale"
FULL_SIZE = {"deployments": 1000, "nodes": 200, "steady_seconds": 300, "autoscaled": 100}
RATIO_MAX = 1.5
RSS_MAX_MB = 200.0
RSS_GROWTH_MAX = 1.10  # "memory flat" after churn
STATUS_WRITES_PER_5_MIN = 1
LAG_SLACK_SECONDS = 3.0  # the engine scrape's 2 s timeout, the schedule's 0.5 s tick, sampling
MODEL_LOAD_DELAY = timedelta(seconds=1)
LEASES = "leases.coordination.k8s.io"
CHILDREN = {"deployments.apps", "services"}
MD_STATUS = f"{PLURAL}.{GROUP}/status"
MANAGED = f"app.kubernetes.io/managed-by={MANAGED_BY}"
DECISION_METRIC = "modelfleet_autoscaler_last_decision_timestamp_seconds"
ERROR_LINE = re.compile(r"Traceback|\bERROR\b|(?i:\bfailed\b)")
NOT_AN_ERROR = re.compile(r"\b0 failed\b")  # kopf: "Updating is processed: 1 succeeded; 0 failed."


def error_lines(text: str) -> list[str]:
    """Lines of an operator log that report an error: tracebacks, ERROR, 'failed'."""
    return [line for line in text.splitlines() if ERROR_LINE.search(NOT_AN_ERROR.sub("", line))]


PROGRESS_SECONDS = 5.0


@dataclass
class Figure:
    name: str
    value: float | int | str
    target: str = "-"
    met: bool | None = None  # None: reported, no target
    unit: str = ""


@dataclass
class Run:
    args: argparse.Namespace
    work: Path
    started: float = field(default_factory=time.monotonic)
    figures: list[Figure] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    last_progress: float = 0.0

    def say(self, message: str) -> None:
        elapsed = int(time.monotonic() - self.started)
        print(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)

    def progress(self, message: str) -> None:
        """`message` at most every PROGRESS_SECONDS."""
        if time.monotonic() - self.last_progress >= PROGRESS_SECONDS:
            self.last_progress = time.monotonic()
            self.say(message)

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)


def mb(mib: float) -> float:
    """MiB (what /proc counts in kB = KiB) to MB, the unit of the issue's target."""
    return mib * 1024 * 1024 / 1e6


# ---------------------------------------------------------------- the API floor


def floor_phase(run: Run, api: Any, namespaces: list[str]) -> float:
    """Apply every Deployment and Service directly; seconds until all are Available."""
    core: Any = client.CoreV1Api(api)
    apps: Any = client.AppsV1Api(api)
    nodes = api.sanitize_for_serialization(core.list_node().items)
    placements = {p.pool: fleet.placement_for(p.spec, nodes) for p in fleet.PRODUCTS}
    run.evidence["placements"] = {
        pool: f"{p.gpus_per_replica}x {p.gpu_product}" for pool, p in placements.items()
    }
    work = []
    for index in range(run.args.deployments):
        namespace = namespaces[index % len(namespaces)]
        product = fleet.product_of(index)
        work.append(
            fleet.floor_children(
                namespace, f"md-{index:04d}", fleet.plain_spec(index), placements[product.pool]
            )
        )
    for namespace in namespaces:
        harness.create_namespace(api, namespace)
    tracker = Tracker(
        apps.list_deployment_for_all_namespaces,
        deployment_available,
        namespace_prefix="floor-",
        label_selector=MANAGED,
    ).start()
    pods = Tracker(
        core.list_pod_for_all_namespaces,
        pod_ready,
        namespace_prefix="floor-",
        label_selector=MANAGED,
    ).start()
    kube = Kube(api)
    for kind in (("apps/v1", "Deployment"), ("v1", "Service")):
        kube.resource(*kind)  # discovery once, before the workers
    applied = [0]

    def apply(children: list[dict[str, Any]]) -> None:
        for child in children:
            kube.apply(child)
        applied[0] += 1

    run.say(f"floor: applying {len(work)} Deployments and Services as admin")
    started = time.monotonic()
    creator = threading.Thread(target=bulk, args=(apply, work), daemon=True)
    creator.start()
    n = run.args.deployments

    def tick() -> None:
        total, ready = tracker.counts()
        pod_total, pods_ready = pods.counts()
        run.progress(
            f"floor: applied {applied[0]}/{n}, Deployments {total}, Available {ready}/{n}, "
            f"pods {pod_total}, Ready {pods_ready}"
        )

    done = tracker.wait(lambda _total, ready: ready >= n, run.args.ready_timeout, tick)
    seconds = time.monotonic() - started
    creator.join()
    tracker.stop()
    pods.stop()
    if not done:
        raise RuntimeError(f"floor: only {tracker.counts()[1]}/{n} Available after {seconds:.0f} s")
    firsts = [t.first_ready for t in tracker.snapshot().values() if t.first_ready is not None]
    seconds = max(firsts) - started if firsts else seconds
    run.say(f"floor: all {n} Deployments Available in {seconds:.1f} s; clearing")
    cleared = harness.clear_namespaces(api, namespaces)
    run.say(f"floor: namespaces cleared in {cleared:.0f} s")
    return seconds


# ---------------------------------------------------------------- the operator


@dataclass
class Operator:
    process: Any
    port: int
    log: Path
    rss: RssSampler

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        return operator_metrics(self.port)

    def reconciles(self) -> int:
        return int(metric_sum(self.metrics(), "modelfleet_reconciles_total"))

    def alive(self) -> bool:
        return bool(self.process.poll() is None)


def start_operator(run: Run, api: Any, admin: Path) -> Operator:
    kubeconfig = harness.operator_kubeconfig(api, admin, run.work / "operator-kubeconfig")
    port = harness.free_port()
    log = run.work / "operator.log"
    process = harness.modelfleet(["run"], log, harness.operator_env(kubeconfig, port))
    operator = Operator(process, port, log, RssSampler(process.pid).start())
    deadline = time.monotonic() + 120
    while metric_sum(operator.metrics(), "modelfleet_leader") != 1:
        if not operator.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the operator did not lead; tail of {log}:\n{tail(log)}")
        time.sleep(0.5)
    run.say(f"operator: pid {process.pid} leads (metrics on :{port}, log {log})")
    return operator


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def md_tracker(api: Any, prefix: str) -> Tracker:
    custom: Any = client.CustomObjectsApi(api)

    def placed(obj: dict[str, Any]) -> tuple[str | None, int | None, int | None]:
        status = obj.get("status") or {}
        placement = status.get("placement") or {}
        return (
            placement.get("gpuProduct"),
            placement.get("gpusPerReplica"),
            status.get("desiredReplicas"),
        )

    return Tracker(
        functools.partial(custom.list_cluster_custom_object, GROUP, VERSION, PLURAL),
        md_ready,
        namespace_prefix=prefix,
        extra=placed,
    ).start()


def create_phase(
    run: Run, api: Any, operator: Operator, audit_tail: AuditTail, namespaces: list[str]
) -> tuple[float, Tracker, Tracker, dict[str, int]]:
    """Create N ModelDeployments; seconds until all are Ready. Returns the trackers (kept
    running for the next phases) and name -> spec index of every live deployment."""
    custom: Any = client.CustomObjectsApi(api)
    core: Any = client.CoreV1Api(api)
    for namespace in namespaces:
        harness.create_namespace(api, namespace)
    mds = md_tracker(api, "scale-")
    pods = Tracker(
        core.list_pod_for_all_namespaces,
        pod_ready,
        namespace_prefix="scale-",
        label_selector=MANAGED,
    ).start()
    n = run.args.deployments
    live = {f"md-{index:04d}": index for index in range(n)}
    created = [0]

    def create(item: tuple[str, int]) -> None:
        name, index = item
        namespace = namespaces[index % len(namespaces)]
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, fleet.body(namespace, name, fleet.plain_spec(index))
        )
        created[0] += 1

    operator.rss.phase = "create"
    audit_tail.begin("create")
    reconciles = operator.reconciles()
    run.say(f"create: {n} ModelDeployments in {len(namespaces)} namespaces")
    started = time.monotonic()
    creator = threading.Thread(target=bulk, args=(create, list(live.items())), daemon=True)
    creator.start()

    def tick() -> None:
        total, ready = mds.counts()
        pod_total, pods_ready = pods.counts()
        rss = operator.rss.samples[-1].rss_mib if operator.rss.samples else 0.0
        run.progress(
            f"create: created {created[0]}/{n}, Ready {ready}/{total}, pods {pod_total} "
            f"(Ready {pods_ready}), operator RSS {mb(rss):.0f} MB, "
            f"reconciles {operator.reconciles() - reconciles}"
        )
        if not operator.alive():
            raise RuntimeError(f"the operator exited; tail of its log:\n{tail(operator.log)}")

    done = mds.wait(lambda total, ready: total >= n and ready >= n, run.args.ready_timeout, tick)
    seconds = time.monotonic() - started
    creator.join()
    requests = audit_tail.end("create")
    run.evidence["create"] = requests_evidence(requests)
    if not done:
        run.say(f"create: only {mds.counts()[1]}/{n} Ready after {seconds:.0f} s")
        return math.inf, mds, pods, live
    firsts = [t.first_ready for t in mds.snapshot().values() if t.first_ready is not None]
    seconds = max(firsts) - started if firsts else seconds
    run.say(f"create: all {n} Ready in {seconds:.1f} s")
    return seconds, mds, pods, live


def placement_matches(run: Run, mds: Tracker) -> int:
    """How many deployments the operator placed as the floor did (same product and count)."""
    expected = {}
    for pool, text in run.evidence["placements"].items():
        count, _, product = text.partition("x ")
        expected[pool] = (product, int(count))
    same = 0
    for (_, name), tracked in mds.snapshot().items():
        index = int(name.removeprefix("md-"))
        product, gpus, _ = tracked.extra
        if (product, gpus) == expected[fleet.product_of(index).pool]:
            same += 1
    return same


# ---------------------------------------------------------------- steady state


def steady_phase(run: Run, operator: Operator, audit_tail: AuditTail, mds: Tracker) -> None:
    seconds = run.args.steady_seconds
    run.say(f"steady: settling {run.args.settle_seconds} s, then counting for {seconds} s")
    operator.rss.phase = "settle"
    settle_until = time.monotonic() + run.args.settle_seconds
    while time.monotonic() < settle_until:
        run.progress(f"steady: settling, Ready {mds.counts()[1]}/{mds.counts()[0]}")
        time.sleep(0.5)
    operator.rss.phase = "steady"
    audit_tail.begin("steady")
    reconciles = operator.reconciles()
    until = time.monotonic() + seconds
    not_ready = 0
    while time.monotonic() < until:
        total, ready = mds.counts()
        not_ready = max(not_ready, total - ready)
        phase = audit_tail.phases["steady"]
        run.progress(
            f"steady: {int(until - time.monotonic())} s left, operator requests so far: "
            f"reads {phase.count(READ_VERBS)}, writes {phase.count(WRITE_VERBS)}, "
            f"Ready {ready}/{total}"
        )
        time.sleep(0.5)
    requests = audit_tail.end("steady")
    reconciled = operator.reconciles() - reconciles
    child_writes = requests.count(WRITE_VERBS, CHILDREN)
    status_writes = {
        (namespace, name): count
        for (resource, namespace, name), count in requests.writes_by_object.items()
        if resource == MD_STATUS
    }
    worst_status = max(status_writes.values(), default=0)
    allowed = STATUS_WRITES_PER_5_MIN * max(1, math.ceil(seconds / 300))
    other_writes = sum(
        count
        for (verb, resource), count in requests.by_call.items()
        if verb in WRITE_VERBS and resource not in CHILDREN | {MD_STATUS, LEASES}
    )
    lease_writes = requests.count(WRITE_VERBS, {LEASES})
    reads = requests.count(READ_VERBS)
    run.add(
        Figure("steady: writes to Deployments and Services", child_writes, "0", child_writes == 0),
        Figure(
            "steady: most status writes to one deployment",
            worst_status,
            f"<= {allowed} in {seconds} s",
            worst_status <= allowed,
        ),
        Figure("steady: deployments with a status write", len(status_writes)),
        Figure("steady: other writes (Events, ModelDeployments; not Leases)", other_writes),
        Figure("steady: Lease writes (renewals, excluded)", lease_writes),
        Figure("steady: operator reads per second", round(reads / requests.seconds, 1), unit="/s"),
        Figure(
            "steady: operator requests per second",
            round(sum(requests.by_call.values()) / requests.seconds, 1),
            unit="/s",
        ),
        Figure("steady: reconciles (operator /metrics)", reconciled),
        Figure("steady: most deployments not Ready at once", not_ready),
    )
    run.evidence["steady"] = requests_evidence(requests)
    run.say(
        f"steady: {child_writes} child writes, worst {worst_status} status writes on one "
        f"deployment, {reads / requests.seconds:.1f} reads/s, {reconciled} reconciles"
    )


def requests_evidence(requests: PhaseRequests) -> dict[str, Any]:
    top = requests.by_call.most_common(20)
    return {
        "seconds": round(requests.seconds, 1),
        "requests": sum(requests.by_call.values()),
        "byCall": [
            {
                "verb": verb,
                "resource": resource,
                "count": count,
                "perSecond": round(count / requests.seconds, 2),
            }
            for (verb, resource), count in top
        ],
        "childWriteExamples": requests.examples,
    }


# ---------------------------------------------------------------- churn


def churn_phase(
    run: Run,
    api: Any,
    operator: Operator,
    mds: Tracker,
    pods: Tracker,
    live: dict[str, int],
    namespaces: list[str],
) -> None:
    custom: Any = client.CustomObjectsApi(api)
    n: int = run.args.deployments
    operator.rss.phase = "before churn"
    before = operator.rss.mean_rss(10)
    log_start = operator.log.stat().st_size
    operator.rss.phase = "churn"
    rounds = run.args.churn_rounds
    updated = replaced = 0
    for round_ in range(rounds):
        rng = random.Random(round_)
        names = sorted(live)
        n_update = round(n * fleet.CHURN_UPDATE_SHARE)
        n_replace = round(n * fleet.CHURN_REPLACE_SHARE)
        chosen = rng.sample(names, n_update + n_replace)
        to_update, to_delete = chosen[:n_update], chosen[n_update:]

        def namespace_of(name: str) -> str:
            return namespaces[live[name] % len(namespaces)]

        def update(name: str, round_: int = round_) -> None:
            custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace_of(name),
                PLURAL,
                name,
                {"spec": {"extraArgs": [f"--max-num-seqs={128 + round_}"]}},
            )

        def delete(name: str) -> None:
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace_of(name), PLURAL, name)

        fresh = {f"c{round_}-{j:04d}": live[old] for j, old in enumerate(to_delete)}

        def create(item: tuple[str, int]) -> None:
            name, index = item
            namespace = namespaces[index % len(namespaces)]
            custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                fleet.body(namespace, name, fleet.plain_spec(index)),
            )

        started = time.monotonic()
        bulk(update, to_update)
        bulk(delete, to_delete)
        for old in to_delete:
            del live[old]
        live.update(fresh)
        bulk(create, list(fresh.items()))
        updated += len(to_update)
        replaced += len(to_delete)

        def tick(round_: int = round_) -> None:
            total, ready = mds.counts()
            pod_total, pods_ready = pods.counts()
            rss = operator.rss.samples[-1].rss_mib if operator.rss.samples else 0.0
            run.progress(
                f"churn round {round_ + 1}/{rounds}: Ready {ready}/{total}, pods {pod_total} "
                f"(Ready {pods_ready}), operator RSS {mb(rss):.0f} MB"
            )

        def settled(total: int, ready: int) -> bool:
            pod_total, pods_ready = pods.counts()
            return total == n and ready == n and pod_total == n and pods_ready == n

        if not mds.wait(settled, run.args.ready_timeout, tick):
            raise RuntimeError(f"churn round {round_ + 1}: not settled: {mds.counts()}")
        run.say(
            f"churn round {round_ + 1}/{rounds}: {len(to_update)} updated, {len(to_delete)} "
            f"replaced, all Ready again in {time.monotonic() - started:.1f} s"
        )
    operator.rss.phase = "after churn"
    settle_until = time.monotonic() + run.args.settle_seconds
    while time.monotonic() < settle_until:
        run.progress("churn: settling before the memory reading")
        time.sleep(0.5)
    after = operator.rss.mean_rss(10)
    with operator.log.open("rb") as handle:
        handle.seek(log_start)
        text = handle.read().decode(errors="replace")
    errors = error_lines(text)
    ratio = after / before if before else math.inf
    run.add(
        Figure(
            f"churn: error lines in the operator log ({updated} updates, {replaced} replaced)",
            len(errors),
            "0",
            not errors,
        ),
        Figure("churn: operator RSS before (MB)", round(mb(before), 1)),
        Figure("churn: operator RSS after (MB)", round(mb(after), 1)),
        Figure(
            "churn: RSS after / before",
            round(ratio, 3),
            f"<= {RSS_GROWTH_MAX}",
            ratio <= RSS_GROWTH_MAX,
        ),
    )
    run.evidence["churnErrors"] = errors[:30]
    run.say(f"churn: {len(errors)} error lines, RSS {mb(before):.0f} -> {mb(after):.0f} MB")


# ---------------------------------------------------------------- autoscaled


def decision_times(operator: Operator, namespace: str) -> dict[str, float]:
    return {
        labels["name"]: value
        for labels, value in operator.metrics().get(DECISION_METRIC, [])
        if labels.get("namespace") == namespace
    }


def autoscaled_phase(run: Run, api: Any, admin: Path, operator: Operator) -> None:
    custom: Any = client.CustomObjectsApi(api)
    count = run.args.autoscaled
    namespace = "auto"
    harness.create_namespace(api, namespace)
    log = run.work / "emulator.log"
    emulator = harness.modelfleet(
        ["emulate", "--kubeconfig", str(admin), "-n", namespace], log, dict(os.environ)
    )
    operator.rss.phase = "autoscaled"
    mds = md_tracker(api, namespace)
    names = [f"auto-{index:03d}" for index in range(count)]
    spec = fleet.autoscaled_spec()
    interval = 10.0  # the API's default autoscaling.intervalSeconds
    stop = threading.Event()
    load_reports: list[dict[str, Any]] = []
    try:
        run.say(f"autoscaled: {count} deployments (maxReplicas {fleet.AUTOSCALED_MAX_REPLICAS})")
        bulk(
            lambda name: custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, fleet.body(namespace, name, spec)
            ),
            names,
        )
        started = time.monotonic()

        def tick() -> None:
            total, ready = mds.counts()
            run.progress(f"autoscaled: Ready {ready}/{total}")

        if not mds.wait(lambda t, r: t >= count and r >= count, run.args.ready_timeout, tick):
            raise RuntimeError(f"autoscaled: only {mds.counts()[1]}/{count} Ready")
        run.say(f"autoscaled: all Ready in {time.monotonic() - started:.1f} s; starting load")
        window = run.args.autoscale_seconds
        config = LoadConfig(
            rate=run.args.load_rate,
            duration=window + 120,
            prompt_tokens=256,
            output_tokens=32,
            refresh_seconds=15,
            drain_seconds=5,
        )
        loader = threading.Thread(
            target=_load_all,
            args=(api, namespace, names, spec["model"], config, stop, load_reports),
            daemon=True,
        )
        loader.start()
        deadline = time.monotonic() + 4 * interval + 60
        while len(decision_times(operator, namespace)) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"autoscaled: decisions for only {len(decision_times(operator, namespace))}"
                    f"/{count} deployments"
                )
            run.progress(
                f"autoscaled: {len(decision_times(operator, namespace))}/{count} decided once"
            )
            time.sleep(1)
        run.say(f"autoscaled: every deployment decided once; sampling lags for {window} s")
        worst: dict[str, float] = {}
        seen: dict[str, set[float]] = {name: set() for name in names}
        until = time.monotonic() + window
        while time.monotonic() < until:
            decided = decision_times(operator, namespace)
            now = time.time()
            for name in names:
                if name in decided:
                    seen[name].add(decided[name])
                    worst[name] = max(worst.get(name, 0.0), now - decided[name])
                else:
                    worst[name] = math.inf  # forgotten: no decision series any more
            run.progress(
                f"autoscaled: worst lag so far {max(worst.values(), default=0):.1f} s, "
                f"operator RSS {mb(operator.rss.samples[-1].rss_mib):.0f} MB"
            )
            time.sleep(1)
        scaled_up = sum(1 for t in mds.snapshot().values() if (t.extra[2] or 1) > 1)
    finally:
        stop.set()
        mds.stop()
        harness.terminate(emulator)
    worst_lag = max(worst.values(), default=math.inf)
    on_time = sum(1 for lag in worst.values() if lag <= interval + LAG_SLACK_SECONDS)
    decisions = min((len(v) for v in seen.values()), default=0)
    run.add(
        Figure(
            f"autoscaled: worst lag since a decision (interval {interval:g} s)",
            round(worst_lag, 1),
            f"<= {interval + LAG_SLACK_SECONDS:g} s",
            worst_lag <= interval + LAG_SLACK_SECONDS,
            "s",
        ),
        Figure(
            "autoscaled: deployments decided every interval",
            f"{on_time}/{count}",
            f"{count}/{count}",
            on_time == count,
        ),
        Figure(f"autoscaled: fewest decisions seen in {window} s", decisions),
        Figure("autoscaled: deployments scaled above 1 replica", scaled_up),
    )
    ok = sum(r.get("ok", 0) for r in load_reports)
    errors = sum(r.get("errors", 0) for r in load_reports)
    run.evidence["load"] = {"deployments": len(load_reports), "ok": ok, "errors": errors}
    run.say(f"autoscaled: worst lag {worst_lag:.1f} s; load {ok} ok, {errors} errors")


def _load_all(
    api: Any,
    namespace: str,
    names: list[str],
    model: str,
    config: LoadConfig,
    stop: threading.Event,
    reports: list[dict[str, Any]],
) -> None:
    async def main() -> None:
        done = asyncio.Event()

        async def watch_stop() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.5)
            done.set()

        watcher = asyncio.create_task(watch_stop())
        found = await asyncio.gather(
            *(
                run_load(kube_targets(api, namespace, name), model, config, stop=done)
                for name in names
            ),
            return_exceptions=True,
        )
        watcher.cancel()
        reports.extend(r for r in found if isinstance(r, dict))

    asyncio.run(main())


# ---------------------------------------------------------------- report


def verdict(figure: Figure, full: bool) -> str:
    if figure.met is None:
        return ""
    if full:
        return "PASS" if figure.met else "FAIL"
    return "met" if figure.met else "missed"


def show(value: float | int | str) -> str:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:g}"
    return str(value)


def report(run: Run, full: bool) -> str:
    rows = [(f.name, show(f.value), f.target, verdict(f, full)) for f in run.figures]
    lines = [
        "",
        "Scale benchmark: "
        + (
            "full size, PASS/FAIL decided against the issue's targets"
            if full
            else "NOT the full size: indicative only, targets not decided (full size: "
            + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in FULL_SIZE.items())
            + ")"
        ),
        table(("figure", "value", "target", "verdict"), rows),
    ]
    for phase in ("create", "steady"):
        evidence = run.evidence.get(phase)
        if not evidence:
            continue
        lines.append(
            f"Operator requests in the {phase} phase ({evidence['requests']} in "
            f"{evidence['seconds']:g} s), most frequent first:"
        )
        lines.append(
            table(
                ("verb", "resource", "count", "per second"),
                [
                    (c["verb"], c["resource"], str(c["count"]), f"{c['perSecond']:g}")
                    for c in evidence["byCall"][:12]
                ],
            )
        )
        if evidence["childWriteExamples"]:
            lines.append("Child writes, e.g.: " + "; ".join(evidence["childWriteExamples"][:5]))
    if run.evidence.get("churnErrors"):
        lines.append("Operator log lines counted as errors during churn (first 10):")
        lines.extend("  " + line[:300] for line in run.evidence["churnErrors"][:10])
    return "\n".join(lines)


def source() -> dict[str, Any]:
    """Where the operator's code came from: its path, and the git commit when it is a checkout."""
    import modelfleet

    where = Path(modelfleet.__file__).resolve().parent
    found: dict[str, Any] = {"path": str(where)}
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        found |= {"commit": commit, "uncommittedChanges": bool(dirty)}
    except (OSError, subprocess.CalledProcessError):
        pass
    return found


def machine() -> dict[str, Any]:
    memory = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
    return {
        "cpus": os.cpu_count(),
        "memoryMiB": memory,
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        epilog="Only the full size (the defaults of the four size flags) decides PASS/FAIL.",
    )
    parser.add_argument(
        "--deployments", type=int, default=1000, help="ModelDeployments (%(default)s)"
    )
    parser.add_argument(
        "--nodes", type=int, default=200, help="simulated GPU nodes, 8 GPUs each (%(default)s)"
    )
    parser.add_argument(
        "--steady-seconds", type=int, default=300, help="steady-state window (%(default)s)"
    )
    parser.add_argument(
        "--autoscaled", type=int, default=100, help="autoscaled ModelDeployments (%(default)s)"
    )
    parser.add_argument(
        "--namespaces",
        type=int,
        default=10,
        help="namespaces the deployments spread over (%(default)s)",
    )
    parser.add_argument("--churn-rounds", type=int, default=3, help="churn rounds (%(default)s)")
    parser.add_argument(
        "--autoscale-seconds",
        type=int,
        default=120,
        help="decision lags sampled this long (%(default)s)",
    )
    parser.add_argument(
        "--load-rate",
        type=float,
        default=0.2,
        help="requests per second per autoscaled deployment (%(default)s)",
    )
    parser.add_argument(
        "--settle-seconds",
        type=int,
        default=60,
        help="wait after all Ready before counting, and after churn (%(default)s)",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=1800,
        help="seconds to wait for all Ready in any phase (%(default)s)",
    )
    parser.add_argument("--skip-floor", action="store_true", help="no API floor run (no ratio)")
    parser.add_argument(
        "--cluster-name", default=CLUSTER_NAME, help="local cluster name (%(default)s)"
    )
    parser.add_argument(
        "--keep-cluster", action="store_true", help="leave the cluster running at the end"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="logs and summary (default: a new dir under ~/.cache/modelfleet/bench-scale)",
    )
    parser.add_argument(
        "--json-file",
        type=Path,
        help="write the summary JSON here (default: WORK_DIR/summary.json)",
    )
    parser.add_argument(
        "--label", default="", help="what is measured, recorded in the JSON (e.g. a commit)"
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    full = all(getattr(args, key) >= value for key, value in FULL_SIZE.items())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = args.work_dir or cache_dir() / "bench-scale" / stamp
    work.mkdir(parents=True, exist_ok=True)
    run = Run(args, work)
    problems = fleet.capacity_problems(args.nodes, args.deployments, args.autoscaled)
    if problems:
        print("not enough GPUs for the workload: " + "; ".join(problems), file=sys.stderr)
        return 2
    nodes_file = work / "nodes.yaml"
    nodes_file.write_text(fleet.inventory_yaml(args.nodes))
    origin = source()
    run.say(
        f"operator code: {origin['path']}"
        + (
            f" (commit {origin['commit'][:12]}"
            + (", with uncommitted changes)" if origin["uncommittedChanges"] else ")")
            if "commit" in origin
            else ""
        )
    )
    run.say(f"work dir {work}; starting cluster {args.cluster_name!r} with {args.nodes} GPU nodes")
    failure: str | None = None
    operator: Operator | None = None
    audit_tail: AuditTail | None = None
    trackers: list[Tracker] = []
    try:
        state = control_plane.up(
            name=args.cluster_name,
            nodes_file=nodes_file,
            model_load_delay=MODEL_LOAD_DELAY,
            timeout_seconds=600,
        )
        admin = Path(state.kubeconfig)
        run.say(f"cluster up: {state.node_count} nodes, audit log {state.audit_log}")
        with harness.admin_client(admin) as api:
            harness.install_crd(api)
            floor_namespaces = [f"floor-{i}" for i in range(args.namespaces)]
            namespaces = [f"scale-{i}" for i in range(args.namespaces)]
            floor = None if args.skip_floor else floor_phase(run, api, floor_namespaces)
            audit_tail = AuditTail(state.audit_log, harness.OPERATOR_USER).start()
            operator = start_operator(run, api, admin)
            seconds, mds, pods, live = create_phase(run, api, operator, audit_tail, namespaces)
            trackers += [mds, pods]
            run.add(Figure("time to all Ready, operator", round(seconds, 1), unit="s"))
            if floor is not None:
                ratio = seconds / floor
                run.add(
                    Figure("time to all Available, API floor", round(floor, 1), unit="s"),
                    Figure(
                        "ratio operator / floor",
                        round(ratio, 3),
                        f"<= {RATIO_MAX}",
                        ratio <= RATIO_MAX,
                    ),
                )
            if math.isinf(seconds):
                raise RuntimeError("not every ModelDeployment became Ready")
            same = placement_matches(run, mds)
            run.add(
                Figure(
                    "placements equal to the floor's",
                    f"{same}/{args.deployments}",
                    f"{args.deployments}/{args.deployments}",
                    same == args.deployments,
                )
            )
            steady_phase(run, operator, audit_tail, mds)
            if args.churn_rounds:
                churn_phase(run, api, operator, mds, pods, live, namespaces)
            if args.autoscaled:
                autoscaled_phase(run, api, admin, operator)
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"
        run.say("benchmark failed: " + failure)
        traceback.print_exc()
    finally:
        for tracker in trackers:
            tracker.stop()
        if audit_tail is not None:
            audit_tail.stop()
        if operator is not None:
            operator.rss.stop()
            peak = operator.rss.peak_mib
            run.add(
                Figure(
                    f"operator peak RSS (VmHWM; highest VmRSS while {operator.rss.peak_phase()})",
                    round(mb(peak), 1),
                    f"<= {RSS_MAX_MB:g} MB",
                    mb(peak) <= RSS_MAX_MB,
                    "MB",
                )
            )
            for phase, (cpu, wall) in operator.rss.cpu_by_phase().items():
                if phase in ("create", "steady", "churn", "autoscaled") and wall > 0:
                    run.add(Figure(f"operator CPU while {phase} (cores)", round(cpu / wall, 2)))
            harness.terminate(operator.process)
            all_errors = error_lines(operator.log.read_text(errors="replace"))
            run.add(Figure("error lines in the whole operator log", len(all_errors)))
            run.evidence["operatorErrors"] = all_errors[:30]
        if args.keep_cluster:
            run.say(
                f"cluster {args.cluster_name!r} left running (modelfleet cluster down --name ...)"
            )
        else:
            control_plane.down(args.cluster_name)
            run.say("cluster down")
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "operatorSource": {**origin, "label": args.label},
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "fullSize": full,
        "failure": failure,
        "figures": [
            {
                "figure": f.name,
                "value": None if isinstance(f.value, float) and math.isinf(f.value) else f.value,
                "unit": f.unit,
                "target": f.target,
                "verdict": verdict(f, full) or None,
            }
            for f in run.figures
        ],
        "evidence": run.evidence,
        "workDir": str(work),
    }
    json_file = args.json_file or work / "summary.json"
    json_file.write_text(json.dumps(document, indent=2) + "\n")
    if args.output == "json":
        print(json.dumps(document, indent=2))
    else:
        print(report(run, full))
        print(f"summary JSON: {json_file}; logs: {work}")
    if failure is not None:
        print(f"the benchmark did not complete: {failure}", file=sys.stderr)
        return 2
    missed = [f.name for f in run.figures if f.met is False]
    if full and missed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
