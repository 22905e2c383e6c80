"""The audit log read back (what the chart's RBAC test and benchmarks rely on), and the chart's
rules held against calls: matching, bindings, and a diff that names missing and excess grants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.dev.cluster import audit, build, flags, rbac

SA = audit.service_account_user("ops", "modelfleet")


def event(
    audit_id: str,
    verb: str,
    resource: str | None,
    *,
    user: str = SA,
    group: str = "",
    subresource: str = "",
    namespace: str = "",
    name: str = "",
    stage: str = "ResponseComplete",
    code: int | None = 200,
) -> dict[str, Any]:
    """An audit.k8s.io/v1 Event as kube-apiserver writes it at Metadata level."""
    raw: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id,
        "stage": stage,
        "requestURI": "/apis/x",
        "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "userAgent": "modelfleet/test",
        "requestReceivedTimestamp": "2026-01-02T03:04:05.123456Z",
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    if resource is not None:
        ref = {"resource": resource, "apiVersion": "v1"}
        ref |= {"apiGroup": group} if group else {}
        ref |= {"subresource": subresource} if subresource else {}
        ref |= {"namespace": namespace} if namespace else {}
        ref |= {"name": name} if name else {}
        raw["objectRef"] = ref
    if code is not None:
        raw["responseStatus"] = {"metadata": {}, "code": code}
    return raw


def lines(*events: dict[str, Any]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def test_the_api_server_gets_a_rotated_audit_log_and_the_policy() -> None:
    binaries = build.Binaries(*(Path(f"/bin/{name}") for name in "abcdef"))
    args = flags.apiserver_args(binaries, flags.StateLayout(Path("/state")), flags.Ports(*range(5)))
    assert "--audit-log-path=/state/audit/audit.log" in args
    assert "--audit-policy-file=/state/audit-policy.yaml" in args
    assert f"--audit-log-maxsize={flags.AUDIT_LOG_MAX_SIZE_MB}" in args
    assert f"--audit-log-maxbackup={flags.AUDIT_LOG_MAX_BACKUPS}" in args
    # Bounded on disk: a demo left running for days must not fill it.
    assert (1 + flags.AUDIT_LOG_MAX_BACKUPS) * flags.AUDIT_LOG_MAX_SIZE_MB <= 500


def test_the_policy_logs_metadata_but_drops_health_probes_and_node_heartbeats() -> None:
    policy = yaml.safe_load(audit.policy_text())
    assert policy["kind"] == "Policy" and policy["apiVersion"] == "audit.k8s.io/v1"
    assert "RequestReceived" in policy["omitStages"]  # one event per request
    *dropped, last = policy["rules"]
    assert last == {"level": "Metadata"}  # everything else, never a body
    assert all(rule["level"] == "None" for rule in dropped)
    assert "/readyz" in dropped[0]["nonResourceURLs"]
    assert dropped[1]["users"] == ["kwok"]


def test_an_event_names_group_resource_subresource_and_verb() -> None:
    [parsed] = audit.parse_lines(
        lines(
            event(
                "a",
                "patch",
                "modeldeployments",
                group="modelfleet.dev",
                subresource="status",
                namespace="ns",
                name="md",
                code=200,
            )
        )
    )
    assert parsed.permission == ("modelfleet.dev", "modeldeployments/status", "patch")
    assert (parsed.user, parsed.namespace, parsed.name, parsed.code) == (SA, "ns", "md", 200)
    assert parsed.decision == "allow"
    assert parsed.received.year == 2026 and parsed.received.tzinfo is not None


def test_core_group_non_resource_urls_and_open_watches() -> None:
    core, discovery, watch = audit.parse_lines(
        lines(
            event("a", "list", "pods"),
            event("b", "get", None),
            event("c", "watch", "pods", stage="ResponseStarted", code=None),
        )
    )
    assert core.permission == ("", "pods", "list")
    assert discovery.permission is None  # /apis: no Role grants it, nothing to compare
    assert watch.code is None


def test_a_line_still_being_written_is_left_for_the_next_read() -> None:
    text = lines(event("a", "list", "pods")) + json.dumps(event("b", "get", "pods"))[:40]
    assert [e.audit_id for e in audit.parse_lines(text)] == ["a"]


def test_requests_keep_one_event_per_audit_id_in_first_seen_order() -> None:
    events = audit.parse_lines(
        lines(
            event("w", "watch", "pods", stage="ResponseStarted", code=None),
            event("g", "get", "pods"),
            event("w", "watch", "pods", code=200),
        )
    )
    assert [(e.audit_id, e.stage) for e in audit.requests(events)] == [
        ("w", "ResponseComplete"),
        ("g", "ResponseComplete"),
    ]


def test_rotated_files_are_read_oldest_first_and_filtered_by_user(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    (tmp_path / "audit-2026-01-02T03-04-05.000.log").write_text(lines(event("1", "get", "pods")))
    (tmp_path / "audit-2026-01-01T00-00-00.000.log").write_text(lines(event("0", "get", "pods")))
    (tmp_path / "other.log").write_text(lines(event("x", "get", "pods")))  # not ours
    log.write_text(lines(event("2", "get", "pods"), event("k", "get", "pods", user="kwok")))
    assert audit.log_files(log)[-1] == log
    assert [e.audit_id for e in audit.read_events(log, SA)] == ["0", "1", "2"]
    assert [e.audit_id for e in audit.read_events(log)] == ["0", "1", "2", "k"]


# --- rules against calls ---

ROLES = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: op}
rules:
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [get, patch, create]
  - apiGroups: [modelfleet.dev]
    resources: [modeldeployments/status]
    verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: op}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: op}
subjects: [{kind: ServiceAccount, name: modelfleet, namespace: ops}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: leader, namespace: ops}
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    resourceNames: [the-lease]
    verbs: [get, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: leader, namespace: ops}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leader}
subjects: [{kind: ServiceAccount, name: modelfleet, namespace: ops}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: unbound}
rules: [{apiGroups: [""], resources: [secrets], verbs: [get]}]
"""


def rules() -> list[rbac.Rule]:
    return rbac.bound_rules(yaml.safe_load_all(ROLES), "ops", "modelfleet")


def call(group: str, resource: str, verb: str, namespace: str = "ns", name: str = "") -> rbac.Call:
    return rbac.Call(group, resource, verb, namespace, name, 200)


@pytest.mark.parametrize(
    ("probe", "allowed"),
    [
        (call("apps", "deployments", "patch"), True),
        (call("apps", "deployments", "delete"), False),
        (call("", "deployments", "get"), False),  # wrong group
        (call("modelfleet.dev", "modeldeployments/status", "patch"), True),
        (call("modelfleet.dev", "modeldeployments", "patch"), False),  # not the subresource
        (call("coordination.k8s.io", "leases", "get", "ops", "the-lease"), True),
        (call("coordination.k8s.io", "leases", "get", "ops", "another"), False),  # resourceNames
        (call("coordination.k8s.io", "leases", "get", "elsewhere", "the-lease"), False),  # Role
        (call("", "secrets", "get"), False),  # defined, never bound to the account
    ],
)
def test_a_call_is_allowed_only_by_a_rule_bound_to_the_account(
    probe: rbac.Call, allowed: bool
) -> None:
    assert any(rule.allows(probe) for rule in rules()) is allowed


def test_only_bindings_of_this_account_count() -> None:
    assert rbac.bound_rules(yaml.safe_load_all(ROLES), "ops", "someone-else") == []


def test_a_wildcard_grant_is_never_counted_as_used() -> None:
    wide = rbac.Rule(
        frozenset({"*"}), frozenset({"pods"}), frozenset({"*"}), frozenset(), namespace=None
    )
    comparison = rbac.compare([call("", "pods", "get")], [wide], {})
    assert not comparison.denied
    assert comparison.unused == {("*", "pods", "*")}


def test_a_server_side_apply_that_created_its_object_was_authorized_as_create_too() -> None:
    created = audit.parse_lines(
        lines(event("a", "patch", "deployments", group="apps", namespace="ns", code=201))
    )
    updated = audit.parse_lines(
        lines(event("b", "patch", "deployments", group="apps", namespace="ns", code=200))
    )
    assert [c.verb for c in rbac.calls(created)] == ["patch", "create"]
    assert [c.verb for c in rbac.calls(updated)] == ["patch"]


def test_the_comparison_names_missing_excess_and_stale_excuses() -> None:
    observed = rbac.calls(
        audit.parse_lines(
            lines(
                event("1", "patch", "deployments", group="apps", namespace="ns", code=201),
                event("2", "delete", "deployments", group="apps", namespace="ns", code=403),
                event("3", "get", None),  # discovery: not compared
            )
        )
    )
    excused = {
        ("modelfleet.dev", "modeldeployments/status", "patch"): "cannot be reached",
        ("apps", "deployments", "create"): "used after all: stale",
        ("", "configmaps", "get"): "not granted: stale",
    }
    comparison = rbac.compare(observed, rules(), excused)
    assert not comparison.ok
    assert [c.permission for c in comparison.denied] == [("apps", "deployments", "delete")]
    assert comparison.unused == {
        ("apps", "deployments", "get"),
        ("coordination.k8s.io", "leases", "get"),
        ("coordination.k8s.io", "leases", "update"),
    }
    assert comparison.stale_excuses == {
        ("apps", "deployments", "create"),
        ("", "configmaps", "get"),
    }
    report = comparison.report()
    assert "MISSING grants" in report and "apps deployments delete: 1 call(s)" in report
    assert "ns, answered 403" in report
    assert "EXCESS grants" in report and "  apps deployments get" in report
    assert "STALE excuses" in report and "  core configmaps get" in report


def test_used_everything_granted_is_ok() -> None:
    observed = [call("apps", "deployments", verb) for verb in ("get", "patch", "create")] + [
        call("modelfleet.dev", "modeldeployments/status", "patch"),
        call("coordination.k8s.io", "leases", "get", "ops", "the-lease"),
        call("coordination.k8s.io", "leases", "update", "ops", "the-lease"),
    ]
    comparison = rbac.compare(observed, rules(), {})
    assert comparison.ok, comparison.report()
    assert comparison.used == comparison.granted
