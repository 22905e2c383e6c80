"""The phases of the scale benchmark, in the order run.py runs them: the API floor, the
operator creating every deployment, steady state, churn, autoscaled deployments under load.

Each adds its figures (value, target, met) and evidence to the `Run`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
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
from record import Figure, Run, error_lines, mb

from modelfleet.api.types import GROUP, PLURAL, VERSION
from modelfleet.dev.engine.load import LoadConfig, kube_targets, run_load
from modelfleet.kube.client import Kube
from modelfleet.render.children import MANAGED_BY

RSS_MAX_MB = 200.0
RSS_GROWTH_MAX = 1.10  # "memory flat" after churn
STATUS_WRITES_PER_5_MIN = 1
LAG_SLACK_SECONDS = 3.0  # the engine scrape's 2 s timeout, the schedule's 0.5 s tick, sampling
LEASES = "leases.coordination.k8s.io"
CHILDREN = {"deployments.apps", "services"}
MD_STATUS = f"{PLURAL}.{GROUP}/status"
MANAGED = f"app.kubernetes.io/managed-by={MANAGED_BY}"
DECISION_METRIC = "modelfleet_autoscaler_last_decision_timestamp_seconds"


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


class OperatorLoad:
    """How busy the operator was in a phase, from its own /metrics: reconciles and their mean
    time (lock wait excluded), and the periodic work in flight and waiting behind the cap."""

    def __init__(self, operator: Operator) -> None:
        self.operator = operator
        first = operator.metrics()
        self._count = metric_sum(first, "modelfleet_reconcile_duration_seconds_count")
        self._sum = metric_sum(first, "modelfleet_reconcile_duration_seconds_sum")
        self.waiting: list[float] = []
        self.running: list[float] = []

    def sample(self, metrics: dict[str, list[tuple[dict[str, str], float]]]) -> None:
        self.waiting.append(metric_sum(metrics, "modelfleet_periodic_work_waiting"))
        self.running.append(metric_sum(metrics, "modelfleet_periodic_work_running"))

    def finish(self) -> dict[str, float]:
        last = self.operator.metrics()
        count = metric_sum(last, "modelfleet_reconcile_duration_seconds_count") - self._count
        seconds = metric_sum(last, "modelfleet_reconcile_duration_seconds_sum") - self._sum
        return {
            "reconciles": count,
            "meanReconcileSeconds": round(seconds / count, 3) if count else 0.0,
            "periodicRunningMean": _mean(self.running),
            "periodicWaitingMean": _mean(self.waiting),
            "periodicWaitingMax": max(self.waiting, default=0.0),
        }


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 1) if values else 0.0


def percentile(values: list[float], p: float) -> float:
    """Nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


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
    load = OperatorLoad(operator)
    until = time.monotonic() + seconds
    not_ready = 0
    while time.monotonic() < until:
        load.sample(operator.metrics())
        total, ready = mds.counts()
        not_ready = max(not_ready, total - ready)
        phase = audit_tail.phases["steady"]
        run.progress(
            f"steady: {int(until - time.monotonic())} s left, operator requests so far: "
            f"reads {phase.count(READ_VERBS)}, writes {phase.count(WRITE_VERBS)}, "
            f"Ready {ready}/{total}"
        )
        time.sleep(1)
    run.evidence.setdefault("operatorLoad", {})["steady"] = load.finish()
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


def decision_times(
    metrics: dict[str, list[tuple[dict[str, str], float]]], namespace: str
) -> dict[str, float]:
    return {
        labels["name"]: value
        for labels, value in metrics.get(DECISION_METRIC, [])
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
        while (decided_once := len(decision_times(operator.metrics(), namespace))) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"autoscaled: decisions for only {decided_once}/{count}")
            run.progress(f"autoscaled: {decided_once}/{count} decided once")
            time.sleep(1)
        run.say(f"autoscaled: every deployment decided once; sampling lags for {window} s")
        worst: dict[str, float] = {}
        seen: dict[str, set[float]] = {name: set() for name in names}
        load = OperatorLoad(operator)
        until = time.monotonic() + window
        while time.monotonic() < until:
            metrics = operator.metrics()
            load.sample(metrics)
            decided = decision_times(metrics, namespace)
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
        run.evidence.setdefault("operatorLoad", {})["autoscaled"] = load.finish()
        scaled_up = sum(1 for t in mds.snapshot().values() if (t.extra[2] or 1) > 1)
    finally:
        stop.set()
        mds.stop()
        harness.terminate(emulator)
    worst_lag = max(worst.values(), default=math.inf)
    on_time = sum(1 for lag in worst.values() if lag <= interval + LAG_SLACK_SECONDS)
    decisions = min((len(v) for v in seen.values()), default=0)
    gaps = [b - a for times in seen.values() for a, b in itertools.pairwise(sorted(times))]
    lags = list(worst.values())
    run.evidence["decisions"] = {
        "gapSecondsP50": round(percentile(gaps, 50), 1),
        "gapSecondsP95": round(percentile(gaps, 95), 1),
        "gapSecondsMax": round(max(gaps, default=0.0), 1),
        "worstLagPerDeploymentP50": round(percentile(lags, 50), 1),
        "worstLagPerDeploymentP95": round(percentile(lags, 95), 1),
    }
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
        Figure(
            "autoscaled: time between decisions p50 / p95 / max",
            f"{percentile(gaps, 50):.1f} / {percentile(gaps, 95):.1f} / "
            f"{max(gaps, default=0.0):.1f}",
            unit="s",
        ),
        Figure("autoscaled: deployments scaled above 1 replica", scaled_up),
    )
    ok = sum(r.get("ok", 0) for r in load_reports)
    errors = sum(r.get("errors", 0) for r in load_reports)
    reasons: Counter[str] = Counter()
    for load_report in load_reports:
        reasons.update(load_report.get("errorReasons") or {})
    run.evidence["load"] = {
        "deployments": len(load_reports),
        "ok": ok,
        "errors": errors,
        "errorReasons": dict(reasons),  # "abandoned": in flight when the load stopped
    }
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


def operator_figures(run: Run, operator: Operator) -> None:
    """Peak memory, CPU per phase and the whole log's error lines; stops the operator."""
    operator.rss.stop()
    peak = mb(operator.rss.peak_mib)
    run.add(
        Figure(
            f"operator peak RSS (VmHWM; highest VmRSS while {operator.rss.peak_phase()})",
            round(peak, 1),
            f"<= {RSS_MAX_MB:g} MB",
            peak <= RSS_MAX_MB,
            "MB",
        )
    )
    for phase, (cpu, wall) in operator.rss.cpu_by_phase().items():
        if phase in ("create", "steady", "churn", "autoscaled") and wall > 0:
            run.add(Figure(f"operator CPU while {phase} (cores)", round(cpu / wall, 2)))
    harness.terminate(operator.process)
    errors = error_lines(operator.log.read_text(errors="replace"))
    run.add(Figure("error lines in the whole operator log", len(errors)))
    run.evidence["operatorErrors"] = errors[:30]
