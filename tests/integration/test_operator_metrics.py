"""The operator's /metrics while deployments serve under the engine emulator: every engine pod
is scraped (autoscaled or not) by the leader only, and the series are there with sane values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.engine_fixtures import wait_for_engines
from tests.integration.operator_fixtures import ModelDeployments, OperatorProcess, wait_until

pytestmark = pytest.mark.integration

SPEC: dict[str, Any] = {"model": "Qwen/Qwen2.5-7B-Instruct", "gpu": {"product": "NVIDIA-L4"}}
AUTOSCALED: dict[str, Any] = {
    **SPEC,
    "replicas": 1,
    "minReplicas": 1,
    "maxReplicas": 2,
    "autoscaling": {"intervalSeconds": 2},
}
DECISION = "modelfleet_autoscaler_last_decision_timestamp_seconds"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """(name, sorted labels) -> value of every sample on a /metrics page."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, metric: str, /, **labels: str) -> float | None:
    return found.get((metric, tuple(sorted(labels.items()))))


def test_every_engine_pod_is_scraped_by_the_leader_and_shows_on_metrics(
    namespace: str,
    api: Any,
    mds: ModelDeployments,
    emulator: Path,
    operator_process: OperatorProcess,
    tmp_path: Path,
) -> None:
    before = samples(operator_process.metrics())
    scraped_before = value(before, "modelfleet_engine_pods_scraped") or 0.0
    ok_before = value(before, "modelfleet_engine_scrapes_total", result="ok") or 0.0

    mds.create(namespace, "plain", {**SPEC, "replicas": 2})
    mds.create(namespace, "auto", AUTOSCALED)
    wait_for_engines(api, namespace, "plain", 2)
    wait_for_engines(api, namespace, "auto", 1)

    def scraping_all_three() -> Samples | None:
        found = samples(operator_process.metrics())
        scraped = value(found, "modelfleet_engine_pods_scraped") or 0.0
        ok = value(found, "modelfleet_engine_scrapes_total", result="ok") or 0.0
        decided = value(found, DECISION, namespace=namespace, name="auto")
        return found if scraped >= scraped_before + 3 and ok >= ok_before + 3 and decided else None

    found = wait_until(scraping_all_three, 60, "the three engine pods scraped, auto decided")
    assert found is not None
    assert value(found, "modelfleet_leader") == 1.0
    ok = value(found, "modelfleet_engine_scrapes_total", result="ok") or 0.0
    unknown = value(found, "modelfleet_engine_scrapes_total", result="unknown")
    assert unknown is not None  # the series exists from the start, at 0
    # The page is one snapshot (generated in the event loop): every scrape was timed.
    count = value(found, "modelfleet_engine_scrape_duration_seconds_count")
    total = value(found, "modelfleet_engine_scrape_duration_seconds_sum")
    assert count == ok + unknown and total is not None
    assert 0 < total / count < 2.0  # the emulator answers well within the 2 s timeout
    for name in ("modelfleet_periodic_work_waiting", "modelfleet_periodic_work_running"):
        level = value(found, name)
        assert level is not None and level >= 0, name
    for handler in ("autoscaler", "scrape"):
        assert value(found, "modelfleet_handler_errors_total", handler=handler) is not None
    assert (value(found, "modelfleet_reconciles_total", trigger="change", result="ok") or 0) > 0

    # A standby scrapes nothing and reports no object: only the leader acts.
    standby = OperatorProcess(operator_process.kubeconfig, tmp_path / "standby.log")
    standby.start()
    try:
        seen = wait_until(lambda: samples(standby.metrics()) or None, 30, "the standby's /metrics")
        assert seen is not None
        assert value(seen, "modelfleet_leader") == 0.0
        assert value(seen, "modelfleet_engine_pods_scraped") == 0.0
        assert value(seen, "modelfleet_engine_scrapes_total", result="ok") == 0.0
        assert not [key for key in seen if key[0] == DECISION]
    finally:
        standby.stop()

    # Per-object series go with the object; the pods' loops stop when the pods go.
    def now(metric: str, /, **labels: str) -> float | None:
        return value(samples(operator_process.metrics()), metric, **labels)

    mds.delete(namespace, "auto")
    wait_until(
        lambda: now(DECISION, namespace=namespace, name="auto") is None,
        30,
        "the deleted deployment's decision series removed",
    )
    mds.delete(namespace, "plain")
    wait_until(
        lambda: (now("modelfleet_engine_pods_scraped") or 0) <= scraped_before,
        90,
        "no loop left for the deleted deployments' pods",
    )
