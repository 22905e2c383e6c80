"""Bad input on the real API server, with the operator running.

Names that cannot name a Service are refused at admission; the shared validation table gets the
same verdicts from the API server as from pydantic; generated ModelDeployments are each refused
naming a field, or accepted and settled (Ready, or Degraded with a reason and message) without
crashing the operator, looping on status writes, or creating children for a spec that cannot run.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

import tests.integration.operator_fixtures as operator_fixtures
from modelfleet.api.crd import crd
from modelfleet.api.types import GROUP, PLURAL, VERSION
from tests.integration.operator_fixtures import (
    ModelDeployments,
    OperatorProcess,
    install_crd,
    wait_until,
)
from tests.strategies import model_deployments
from tests.validation_cases import CASES, api_problems, mismatch, pydantic_problems

pytestmark = pytest.mark.integration

SPEC = {"model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "gpu": {"product": "NVIDIA-L4"}}
# Ready reasons an accepted object may rest in; the others are on the way to one of these.
SETTLED = {
    "AllReplicasReady",
    "ScaledToZero",
    "Unschedulable",
    "NoFeasiblePlacement",
    "InvalidSpec",
}
UNPLACEABLE = {"NoFeasiblePlacement", "InvalidSpec"}
WINDOW_SECONDS = 12  # six resyncs of the test operator (MODELFLEET_RESYNC_SECONDS=2)
MAX_WRITES_IN_WINDOW = 3


def body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": spec,
    }


def children(api: Any, namespace: str) -> list[str]:
    apps: Any = client.AppsV1Api(api)
    core: Any = client.CoreV1Api(api)
    return [
        f"deployment/{d.metadata.name}" for d in apps.list_namespaced_deployment(namespace).items
    ] + [f"service/{s.metadata.name}" for s in core.list_namespaced_service(namespace).items]


def listed(mds: ModelDeployments, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = mds.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL
    )["items"]
    return items


def ready_condition(md: dict[str, Any]) -> dict[str, Any]:
    for condition in (md.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            found: dict[str, Any] = condition
            return found
    return {}


@pytest.mark.parametrize(
    "name", ["llama-3.1-8b", "3b-instruct", "a" * 64], ids=["dots", "leading-digit", "64-chars"]
)
def test_a_name_that_cannot_name_a_service_is_refused_and_nothing_is_created(
    api: Any, namespace: str, mds: ModelDeployments, name: str
) -> None:
    with pytest.raises(ApiException) as refused:
        mds.create(namespace, name, SPEC)

    assert refused.value.status == 422
    problems = api_problems(refused.value.body)
    assert [field for field, _ in problems] == ["metadata.name"]
    message = problems[0][1]
    assert "must be a DNS-1035 label" in message and "the Service's name" in message
    assert listed(mds, namespace) == []
    assert children(api, namespace) == []
    # The same name with the dot dropped or a letter first is taken and gets its Service.
    fixed = "m" + name.replace(".", "")[:62]
    mds.create(namespace, fixed, {**SPEC, "replicas": 0})
    wait_until(lambda: f"service/{fixed}" in children(api, namespace), 30, "the Service")


def test_an_object_named_before_the_rule_is_reported_invalid_without_children(
    api: Any, namespace: str, mds: ModelDeployments
) -> None:
    """Objects from an older CRD keep taking status (the rule is checked only at creation)."""
    without_rule = crd()
    del without_rule["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
    original = operator_fixtures.crd
    try:
        operator_fixtures.crd = lambda: copy.deepcopy(without_rule)
        install_crd(api)
        # Established is not served: the API server swaps in a new schema a moment later.
        wait_until(lambda: takes(mds, namespace, "legacy.name"), 30, "the CRD without the rule")
        mds.create(namespace, "legacy.name", SPEC)
    finally:
        operator_fixtures.crd = original
        install_crd(api)
        wait_until(lambda: not takes(mds, namespace, "other.name"), 30, "the rule served again")

    ready = wait_until(
        lambda: (c := mds.condition(namespace, "legacy.name", "Ready")).get("reason") and c,
        30,
        "a Ready condition on the legacy object",
    )
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "metadata.name: metadata.name must be a DNS-1035 label" in ready["message"]
    assert children(api, namespace) == []
    mds.delete(namespace, "legacy.name")
    wait_until(lambda: not listed(mds, namespace), 30, "the legacy object deleted")


def takes(mds: ModelDeployments, namespace: str, name: str) -> bool:
    """Whether the API server accepts a ModelDeployment named `name` now (a dry run)."""
    try:
        mds.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body(name, SPEC), dry_run="All"
        )
    except ApiException as error:
        if error.status != 422:
            raise
        return False
    return True


def test_the_validation_table_gets_the_same_verdicts_from_the_api_server(
    mds: ModelDeployments,
) -> None:
    """tests/validation_cases.py, each row created with a server-side dry run."""
    wrong = []
    for case in CASES:
        try:
            mds.custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                "default",
                PLURAL,
                case.body(),
                field_validation="Strict",
                dry_run="All",
            )
            problems = []
        except ApiException as error:
            problems = api_problems(error.body)
            assert problems, f"{case.id}: refused without naming a field: {error.body}"
        verdict = mismatch(case, problems)
        if verdict:
            wrong.append(f"{case.id}: {verdict}")
    assert wrong == []


def fresh_name(index: int, length: int) -> str:
    prefix = f"h{index:03d}-"
    return (prefix + "x" * length)[: max(length, len(prefix) + 1)]


def test_generated_model_deployments_are_refused_or_settle_quietly(
    api: Any,
    namespace: str,
    mds: ModelDeployments,
    operator: Path,
    operator_process: OperatorProcess,
) -> None:
    log_start = operator.stat().st_size
    accepted: dict[str, dict[str, Any]] = {}
    refused = Counter[str]()
    names = itertools.count()

    @settings(
        max_examples=50,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: each example is API calls
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(model_deployments())
    def apply(example: tuple[tuple[str, Any], dict[str, Any]]) -> None:
        (kind, value), spec = example
        name = fresh_name(next(names), value) if kind == "fresh" else value
        expected = pydantic_problems(body(name, spec))
        try:
            mds.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, body(name, spec), field_validation="Strict"
            )
        except ApiException as error:
            assert error.status in (400, 422), error.body
            problems = api_problems(error.body)
            assert problems, f"refused without naming a field: {error.body}"
            assert expected, f"the API server refused what pydantic takes: {problems}"
            fields = {field for field, _ in problems}
            assert fields & {field for field, _ in expected}, (problems, expected)
            refused.update(fields)
            return
        assert expected == [], f"the API server took what pydantic refuses: {expected}"
        accepted[name] = spec
        ready = wait_until(
            lambda: ready_condition(mds.get(namespace, name)), 30, f"a Ready condition on {name}"
        )
        if ready["reason"] in UNPLACEABLE:
            assert ready["status"] == "False" and ready["message"], ready
            assert not [c for c in children(api, namespace) if c.endswith(f"/{name}")]

    apply()
    assert accepted and refused, (accepted, refused)

    def unsettled() -> list[str]:
        return [
            f"{md['metadata']['name']}: {ready_condition(md).get('reason')}"
            for md in listed(mds, namespace)
            if ready_condition(md).get("reason") not in SETTLED
        ]

    wait_until(lambda: not unsettled(), 120, "every accepted object settled") or unsettled()
    mds_now = listed(mds, namespace)
    for md in mds_now:
        ready = ready_condition(md)
        assert ready["status"] == "True" or ready["message"], md
        if ready["reason"] in UNPLACEABLE:
            name = md["metadata"]["name"]
            assert not [c for c in children(api, namespace) if c.endswith(f"/{name}")], name

    writes = _writes_during(mds, namespace, WINDOW_SECONDS)
    # shown when the test fails
    print(f"refused, by field: {dict(refused)}")
    print(f"accepted: {Counter(ready_condition(md)['reason'] for md in mds_now)}")
    print(f"writes in {WINDOW_SECONDS}s: {dict(writes)}")
    assert max(writes.values(), default=0) <= MAX_WRITES_IN_WINDOW, writes
    assert not operator_process.exited, "the operator died"
    with operator.open("rb") as log:
        log.seek(log_start)
        new_lines = log.read().decode(errors="replace").splitlines()
    crashes = [
        line for line in new_lines if "failed with an exception" in line and namespace in line
    ]
    assert crashes == []

    for name in accepted:
        mds.delete(namespace, name)
    core: Any = client.CoreV1Api(api)
    wait_until(lambda: not core.list_namespaced_pod(namespace).items, 90, "the examples' pods gone")


def _writes_during(mds: ModelDeployments, namespace: str, seconds: int) -> Counter[str]:
    """Updates per ModelDeployment in `namespace` over `seconds` (status, metadata, spec)."""
    listing = mds.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    version = listing["metadata"]["resourceVersion"]
    writes = Counter[str]()
    last = {item["metadata"]["name"]: item for item in listing["items"]}
    deadline = time.monotonic() + seconds
    stream = watch.Watch()
    for event in stream.stream(
        mds.custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        resource_version=version,
        timeout_seconds=seconds,
    ):
        name = event["object"]["metadata"]["name"]
        if event["type"] == "MODIFIED":
            writes[name] += 1
            print(f"{name} changed: {_changes(last.get(name), event['object'])}")
        last[name] = event["object"]
        if time.monotonic() > deadline:
            stream.stop()
    return writes


def _changes(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """What a write changed, top two levels deep (shown when the test fails)."""
    before = before or {}
    changed: dict[str, Any] = {}
    for part in ("metadata", "spec", "status"):
        old, new = before.get(part) or {}, after.get(part) or {}
        for key in sorted(set(old) | set(new)):
            if key != "resourceVersion" and old.get(key) != new.get(key):
                changed[f"{part}.{key}"] = new.get(key)
    return changed
