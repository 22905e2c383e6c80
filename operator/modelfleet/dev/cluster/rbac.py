"""RBAC rules held against observed calls: what a chart grants a ServiceAccount, what it used.

The calls come from the API server's audit log (`audit`), so the comparison rests on what the
server saw, not on a reading of the client's code. Two gaps matter: a call no rule allows (a
missing grant, or a denial) and a grant never used (excess privilege).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.dev.cluster.audit import AuditEvent, requests

Permission = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb); "" = core group


def show(permission: Permission) -> str:
    group, resource, verb = permission
    return f"{group or 'core'} {resource} {verb}"


@dataclass(frozen=True)
class Call:
    """One authorization the API server made for a request."""

    group: str
    resource: str  # with "/subresource" when there is one
    verb: str
    namespace: str  # "" for cluster-scoped resources and cluster-wide lists
    name: str
    code: int | None

    @property
    def permission(self) -> Permission:
        return self.group, self.resource, self.verb


def calls(events: Iterable[AuditEvent]) -> list[Call]:
    """The authorizations behind the resource requests among `events`.

    A request is one call, except a patch that created its object (a server-side apply of a new
    object, answered 201): the API server authorizes it as `create` too, inside the request, so
    the audit log names only `patch`. Non-resource URLs (discovery, /version) are left out: no
    Role can grant them; every authenticated user may read them.
    """
    found: list[Call] = []
    for event in requests(events):
        permission = event.permission
        if permission is None:
            continue
        group, resource, verb = permission
        call = Call(group, resource, verb, event.namespace, event.name, event.code)
        found.append(call)
        if verb == "patch" and event.code == 201:
            found.append(Call(group, resource, "create", event.namespace, event.name, event.code))
    return found


@dataclass(frozen=True)
class Rule:
    """One PolicyRule of a Role or ClusterRole, bound where a binding puts it."""

    groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    names: frozenset[str]  # resourceNames; empty: any name
    namespace: str | None  # None: every namespace and the cluster scope (a ClusterRoleBinding)

    def allows(self, call: Call) -> bool:
        return (
            (self.namespace is None or self.namespace == call.namespace)
            and _match(self.groups, call.group)
            and _match(self.resources, call.resource)
            and _match(self.verbs, call.verb)
            and (not self.names or call.name in self.names)
        )

    def permissions(self) -> set[Permission]:
        """What the rule grants, spelled out; a wildcard stays a literal "*" (never "used")."""
        return {(g, r, v) for g in self.groups for r in self.resources for v in self.verbs}


def _match(allowed: frozenset[str], value: str) -> bool:
    return "*" in allowed or value in allowed


def bound_rules(
    documents: Iterable[dict[str, Any] | None], namespace: str, name: str
) -> list[Rule]:
    """Rules that the (Cluster)RoleBindings among `documents` give ServiceAccount namespace/name.

    `documents` are rendered manifests (e.g. `helm template`); roles defined but not bound to
    the account grant it nothing and are left out.
    """
    docs = [doc for doc in documents if doc]
    roles = {
        (doc["kind"], doc["metadata"]["name"], doc["metadata"].get("namespace")): doc
        for doc in docs
        if doc.get("kind") in ("Role", "ClusterRole")
    }
    rules: list[Rule] = []
    for binding in docs:
        if binding.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(_is_account(subject, namespace, name) for subject in binding["subjects"]):
            continue
        where = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        ref = binding["roleRef"]
        role = roles.get((ref["kind"], ref["name"], where if ref["kind"] == "Role" else None))
        if role is None:
            raise ValueError(f"{binding['kind']} {binding['metadata']['name']}: no {ref}")
        rules.extend(_rule(raw, where) for raw in role.get("rules") or [])
    return rules


def _is_account(subject: dict[str, Any], namespace: str, name: str) -> bool:
    return (
        subject.get("kind") == "ServiceAccount"
        and subject.get("name") == name
        and subject.get("namespace") == namespace
    )


def _rule(raw: dict[str, Any], namespace: str | None) -> Rule:
    if raw.get("nonResourceURLs"):
        raise ValueError(f"nonResourceURLs are not compared: {raw}")
    return Rule(
        groups=frozenset(raw.get("apiGroups") or []),
        resources=frozenset(raw.get("resources") or []),
        verbs=frozenset(raw.get("verbs") or []),
        names=frozenset(raw.get("resourceNames") or []),
        namespace=namespace,
    )


@dataclass(frozen=True)
class Comparison:
    used: frozenset[Permission]
    granted: frozenset[Permission]
    denied: tuple[Call, ...]  # calls no rule allows: missing grants
    unused: frozenset[Permission]  # granted, never used, not excused: excess grants
    excused: Mapping[Permission, str]  # granted, not expected in the log: permission -> why
    # Excuses that no longer hold: the permission was used after all, or is not granted any more.
    stale_excuses: frozenset[Permission]

    @property
    def ok(self) -> bool:
        return not (self.denied or self.unused or self.stale_excuses)

    def report(self) -> str:
        """A readable diff: missing grants, excess grants, stale excuses, then both sets."""
        lines: list[str] = []
        if self.denied:
            lines.append("MISSING grants (calls no rule allows):")
            by_permission: dict[Permission, list[Call]] = {}
            for call in self.denied:
                by_permission.setdefault(call.permission, []).append(call)
            lines += [
                f"  {show(p)}: {len(found)} call(s), e.g. {_where(found[0])}"
                for p, found in sorted(by_permission.items())
            ]
        if self.unused:
            lines.append("EXCESS grants (granted, never used, not excused):")
            lines += [f"  {show(p)}" for p in sorted(self.unused)]
        if self.stale_excuses:
            lines.append("STALE excuses (used after all, or no longer granted):")
            lines += [f"  {show(p)}" for p in sorted(self.stale_excuses)]
        if self.excused:
            lines.append("excused (granted, never a request of its own):")
            lines += [f"  {show(p)}: {why}" for p, why in sorted(self.excused.items())]
        lines.append(f"used ({len(self.used)}):")
        lines += [f"  {show(p)}" for p in sorted(self.used)]
        lines.append(f"granted ({len(self.granted)}):")
        lines += [f"  {show(p)}" for p in sorted(self.granted)]
        return "\n".join(lines)


def _where(call: Call) -> str:
    target = "/".join(part for part in (call.namespace, call.name) if part) or "(cluster)"
    return f"{target}, answered {call.code}"


def compare(
    observed: Iterable[Call], rules: Iterable[Rule], excused: Mapping[Permission, str]
) -> Comparison:
    """Hold observed calls against rules; `excused` maps grants the caller could not exercise
    to the reason why (they are neither excess nor allowed to be used)."""
    observed, rules = list(observed), list(rules)
    used = frozenset(call.permission for call in observed)
    granted = frozenset(p for rule in rules for p in rule.permissions())
    denied = tuple(call for call in observed if not any(rule.allows(call) for rule in rules))
    return Comparison(
        used=used,
        granted=granted,
        denied=denied,
        unused=frozenset(granted - used - excused.keys()),
        excused=dict(excused),
        stale_excuses=frozenset(p for p in excused if p in used or p not in granted),
    )
