"""Pod-level fields of a ModelDeployment: environment, secrets, resources and scheduling.

The shapes follow core/v1 (EnvVar, Toleration, Affinity, ...) so a manifest reads like any pod
spec, but only the parts modelfleet passes on, each checked here and in the CRD so a mistake is
refused at `kubectl apply` naming the field, instead of surfacing later as a Deployment the API
server will not take. docs/pods.md says how each one reaches the engine pods.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, JsonValue, model_validator

from modelfleet.api.base import _cel, _Model

# RFC 1123 subdomain: Secret, ConfigMap, ServiceAccount and PriorityClass names.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CONFIG_KEY = r"^[-._a-zA-Z0-9]+$"  # a key of a Secret's or ConfigMap's data
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# A label key (optional DNS-subdomain prefix, then a name) and a label value.
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A Kubernetes quantity without sign or exponent: "4", "500m", "1.5", "64Gi", "200M".
QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE])?$"
_SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def parse_quantity(text: str) -> Decimal:
    """A quantity matching QUANTITY as a number (cores, bytes)."""
    found = re.fullmatch(QUANTITY, text)
    if found is None:
        raise ValueError(f"not a quantity: {text!r}")
    suffix = found.group(3) or ""
    return Decimal(text[: len(text) - len(suffix)]) * _SUFFIXES[suffix]


SubdomainName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
Quantity = Annotated[
    str,
    Field(
        max_length=32,
        pattern=QUANTITY,
        description='A quantity as a string: cores ("4", "500m") or bytes ("64Gi").',
    ),
]


class SecretKeySelector(_Model):
    """One key of a Secret in the ModelDeployment's namespace."""

    name: Annotated[SubdomainName, Field(description="Name of the Secret.")]
    key: Annotated[
        str,
        Field(min_length=1, max_length=253, pattern=CONFIG_KEY, description="Key in its data."),
    ]
    optional: Annotated[
        bool | None,
        Field(description="Start the pod even when the Secret or key is missing (default no)."),
    ] = None


class ConfigMapKeySelector(_Model):
    """One key of a ConfigMap in the ModelDeployment's namespace."""

    name: Annotated[SubdomainName, Field(description="Name of the ConfigMap.")]
    key: Annotated[
        str,
        Field(min_length=1, max_length=253, pattern=CONFIG_KEY, description="Key in its data."),
    ]
    optional: Annotated[
        bool | None,
        Field(description="Start the pod even when the ConfigMap or key is missing."),
    ] = None


ONE_SOURCE_RULE_MESSAGE = "valueFrom takes exactly one of secretKeyRef and configMapKeyRef"


class EnvVarSource(_Model):
    """Where an environment variable's value comes from; the kubelet reads it, never modelfleet."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("has(self.secretKeyRef) != has(self.configMapKeyRef)", ONE_SOURCE_RULE_MESSAGE)
            ]
        }
    )

    secret_key_ref: Annotated[
        SecretKeySelector | None,
        Field(alias="secretKeyRef", description="A key of a Secret (for tokens and passwords)."),
    ] = None
    config_map_key_ref: Annotated[
        ConfigMapKeySelector | None,
        Field(alias="configMapKeyRef", description="A key of a ConfigMap."),
    ] = None

    @model_validator(mode="after")
    def _one_source(self) -> EnvVarSource:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError(ONE_SOURCE_RULE_MESSAGE)
        return self


VALUE_OR_SOURCE_RULE_MESSAGE = "an env entry takes value or valueFrom, not both"


class EnvVar(_Model):
    """An environment variable of the engine container, as in a pod spec."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.value) || !has(self.valueFrom)",
                    VALUE_OR_SOURCE_RULE_MESSAGE,
                    ".valueFrom",
                )
            ]
        }
    )

    name: Annotated[
        str,
        Field(min_length=1, max_length=256, pattern=ENV_NAME, description="Variable name."),
    ]
    value: Annotated[
        str | None,
        Field(
            max_length=32_768,
            description=(
                "Plain value. It is stored in this object and the Deployment, readable by anyone "
                "who can read them: never put a token here, use valueFrom.secretKeyRef."
            ),
        ),
    ] = None
    value_from: Annotated[
        EnvVarSource | None,
        Field(alias="valueFrom", description="A key of a Secret or ConfigMap."),
    ] = None

    @model_validator(mode="after")
    def _value_or_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError(VALUE_OR_SOURCE_RULE_MESSAGE)
        return self


class SecretEnvSource(_Model):
    """Every key of a Secret, as environment variables."""

    name: Annotated[SubdomainName, Field(description="Name of the Secret.")]
    optional: Annotated[bool | None, Field(description="Start without it when it is missing.")] = (
        None
    )


class ConfigMapEnvSource(_Model):
    """Every key of a ConfigMap, as environment variables."""

    name: Annotated[SubdomainName, Field(description="Name of the ConfigMap.")]
    optional: Annotated[bool | None, Field(description="Start without it when it is missing.")] = (
        None
    )


ONE_ENV_FROM_RULE_MESSAGE = "an envFrom entry takes exactly one of secretRef and configMapRef"


class EnvFromSource(_Model):
    """All keys of one Secret or ConfigMap as environment variables (explicit env wins)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("has(self.secretRef) != has(self.configMapRef)", ONE_ENV_FROM_RULE_MESSAGE)
            ]
        }
    )

    prefix: Annotated[
        str | None,
        Field(max_length=64, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", description="Name prefix."),
    ] = None
    secret_ref: Annotated[
        SecretEnvSource | None, Field(alias="secretRef", description="A Secret.")
    ] = None
    config_map_ref: Annotated[
        ConfigMapEnvSource | None, Field(alias="configMapRef", description="A ConfigMap.")
    ] = None

    @model_validator(mode="after")
    def _one_source(self) -> EnvFromSource:
        if (self.secret_ref is None) == (self.config_map_ref is None):
            raise ValueError(ONE_ENV_FROM_RULE_MESSAGE)
        return self


class HuggingFaceToken(_Model):
    """The Hugging Face access token for gated or private models, from a Secret."""

    secret_key_ref: Annotated[
        SecretKeySelector,
        Field(
            alias="secretKeyRef",
            description=(
                "The Secret and key holding the token. The engine container gets it as HF_TOKEN "
                "(and the other names its engine reads) through the kubelet; modelfleet never "
                "reads the Secret, so the token is in no object of ours."
            ),
        ),
    ]


class ResourceList(_Model):
    """CPU and memory; GPUs are the planner's (spec.gpu)."""

    cpu: Annotated[Quantity | None, Field(description='Cores, e.g. "8" or "500m".')] = None
    memory: Annotated[Quantity | None, Field(description='Bytes, e.g. "64Gi".')] = None


REQUEST_LIMIT_RULE_MESSAGES = {
    resource: f"requests.{resource} must not exceed limits.{resource}"
    for resource in ("cpu", "memory")
}


def _request_limit_rule(resource: str) -> dict[str, JsonValue]:
    return _cel(
        f"!has(self.requests) || !has(self.limits) || !has(self.requests.{resource}) "
        f"|| !has(self.limits.{resource}) "
        f"|| quantity(self.requests.{resource}).compareTo(quantity(self.limits.{resource})) <= 0",
        REQUEST_LIMIT_RULE_MESSAGES[resource],
        f".requests.{resource}",
    )


class ResourceOverrides(_Model):
    """CPU and memory of the engine container, over the defaults derived from the model."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [_request_limit_rule(r) for r in ("cpu", "memory")]
        }
    )

    requests: Annotated[
        ResourceList | None,
        Field(description="What the scheduler reserves; each one given replaces the default."),
    ] = None
    limits: Annotated[
        ResourceList | None,
        Field(
            description=(
                "Most the engine may use; each one given replaces the default (memory: the "
                "memory request; cpu: none, see docs/pods.md)."
            )
        ),
    ] = None

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourceOverrides:
        for resource, message in REQUEST_LIMIT_RULE_MESSAGES.items():
            request = getattr(self.requests, resource, None) if self.requests else None
            limit = getattr(self.limits, resource, None) if self.limits else None
            if request and limit and parse_quantity(request) > parse_quantity(limit):
                raise ValueError(message)
        return self


EXISTS_VALUE_RULE_MESSAGE = "a toleration with operator Exists takes no value"


class Toleration(_Model):
    """A taint the engine pods tolerate, as in a pod spec."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.operator) || self.operator != 'Exists' || !has(self.value) "
                    "|| self.value == ''",
                    EXISTS_VALUE_RULE_MESSAGE,
                    ".value",
                )
            ]
        }
    )

    key: Annotated[
        str | None,
        Field(max_length=316, description="Taint key; empty with Exists tolerates every taint."),
    ] = None
    operator: Annotated[
        Literal["Exists", "Equal"] | None,
        Field(description="Exists or Equal (the default)."),
    ] = None
    value: Annotated[str | None, Field(max_length=63, description="Taint value (Equal).")] = None
    effect: Annotated[
        Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None,
        Field(description="Taint effect; empty matches all."),
    ] = None
    toleration_seconds: Annotated[
        int | None,
        Field(
            alias="tolerationSeconds",
            ge=0,
            le=31_536_000,
            description="NoExecute only: how long the pod stays after the taint appears.",
        ),
    ] = None

    @model_validator(mode="after")
    def _exists_takes_no_value(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError(EXISTS_VALUE_RULE_MESSAGE)
        return self


class NodeSelectorRequirement(_Model):
    """A node label (or field) test."""

    key: Annotated[str, Field(min_length=1, max_length=316, description="Label key.")]
    operator: Annotated[
        Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"],
        Field(description="In, NotIn, Exists, DoesNotExist, Gt or Lt."),
    ]
    values: Annotated[
        list[Annotated[str, Field(max_length=63)]],
        Field(max_length=64, description="Values (In, NotIn: some; Gt, Lt: one)."),
    ] = Field(default_factory=list)


class NodeSelectorTerm(_Model):
    """Requirements that must all hold."""

    match_expressions: Annotated[
        list[NodeSelectorRequirement],
        Field(alias="matchExpressions", max_length=16, description="On node labels."),
    ] = Field(default_factory=list)
    match_fields: Annotated[
        list[NodeSelectorRequirement],
        Field(alias="matchFields", max_length=16, description="On node fields."),
    ] = Field(default_factory=list)


class NodeSelector(_Model):
    """Terms of which at least one must hold."""

    node_selector_terms: Annotated[
        list[NodeSelectorTerm],
        Field(alias="nodeSelectorTerms", min_length=1, max_length=16, description="ORed terms."),
    ]


class PreferredSchedulingTerm(_Model):
    """A weighted node preference."""

    weight: Annotated[int, Field(ge=1, le=100, description="Weight, 1-100.")]
    preference: Annotated[NodeSelectorTerm, Field(description="The preferred nodes.")]


class NodeAffinity(_Model):
    """Which nodes the engine pods must or should run on."""

    required: Annotated[
        NodeSelector | None,
        Field(alias="requiredDuringSchedulingIgnoredDuringExecution", description="Must."),
    ] = None
    preferred: Annotated[
        list[PreferredSchedulingTerm],
        Field(
            alias="preferredDuringSchedulingIgnoredDuringExecution",
            max_length=16,
            description="Should.",
        ),
    ] = Field(default_factory=list)


class LabelSelectorRequirement(_Model):
    """A label test."""

    key: Annotated[str, Field(min_length=1, max_length=316, description="Label key.")]
    operator: Annotated[
        Literal["In", "NotIn", "Exists", "DoesNotExist"],
        Field(description="In, NotIn, Exists or DoesNotExist."),
    ]
    values: Annotated[
        list[Annotated[str, Field(max_length=63)]],
        Field(max_length=64, description="Values (In, NotIn)."),
    ] = Field(default_factory=list)


class LabelSelector(_Model):
    """Pods (or namespaces) by label."""

    match_labels: Annotated[
        dict[str, Annotated[str, Field(max_length=63)]],
        Field(alias="matchLabels", max_length=32, description="Labels that must all match."),
    ] = Field(default_factory=dict)
    match_expressions: Annotated[
        list[LabelSelectorRequirement],
        Field(alias="matchExpressions", max_length=16, description="Tests that must all hold."),
    ] = Field(default_factory=list)


class PodAffinityTerm(_Model):
    """Pods that must (or must not) share a topology domain with the engine pods."""

    label_selector: Annotated[
        LabelSelector | None, Field(alias="labelSelector", description="Which pods.")
    ] = None
    namespace_selector: Annotated[
        LabelSelector | None,
        Field(alias="namespaceSelector", description="In which namespaces, by label."),
    ] = None
    namespaces: Annotated[
        list[Annotated[str, Field(max_length=63)]],
        Field(max_length=32, description="In which namespaces (default: this one)."),
    ] = Field(default_factory=list)
    topology_key: Annotated[
        str,
        Field(
            alias="topologyKey",
            min_length=1,
            max_length=316,
            description="Node label naming the domain, e.g. kubernetes.io/hostname.",
        ),
    ]


class WeightedPodAffinityTerm(_Model):
    """A weighted pod preference."""

    weight: Annotated[int, Field(ge=1, le=100, description="Weight, 1-100.")]
    pod_affinity_term: Annotated[
        PodAffinityTerm, Field(alias="podAffinityTerm", description="The term.")
    ]


class PodAffinity(_Model):
    """Pod (anti-)affinity rules."""

    required: Annotated[
        list[PodAffinityTerm],
        Field(
            alias="requiredDuringSchedulingIgnoredDuringExecution",
            max_length=16,
            description="Must.",
        ),
    ] = Field(default_factory=list)
    preferred: Annotated[
        list[WeightedPodAffinityTerm],
        Field(
            alias="preferredDuringSchedulingIgnoredDuringExecution",
            max_length=16,
            description="Should.",
        ),
    ] = Field(default_factory=list)


class Affinity(_Model):
    """Scheduling constraints of the engine pods, as in a pod spec; the planner's GPU
    nodeSelector applies as well (both must hold)."""

    node_affinity: Annotated[
        NodeAffinity | None, Field(alias="nodeAffinity", description="Node affinity.")
    ] = None
    pod_affinity: Annotated[
        PodAffinity | None, Field(alias="podAffinity", description="Pod affinity.")
    ] = None
    pod_anti_affinity: Annotated[
        PodAffinity | None, Field(alias="podAntiAffinity", description="Pod anti-affinity.")
    ] = None


class LocalObjectReference(_Model):
    """An object in the ModelDeployment's namespace, by name."""

    name: Annotated[SubdomainName, Field(description="Its name.")]


NODE_SELECTOR_KEYS_MESSAGE = "nodeSelector keys must be label keys (prefix/name)"
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]


def valid_label_keys(selector: dict[str, str]) -> bool:
    """Label keys: checked by the operator (InvalidSpec), not the CRD. A CEL rule over a map's
    keys cannot bound their length, so the API server's cost estimate refuses any regex on them;
    values are checked by the schema (LabelValue)."""
    return all(len(key) <= 316 and re.fullmatch(LABEL_KEY, key) for key in selector)


_BINARY = ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki")
_DECIMAL = ("E", "P", "T", "G", "M", "k", "")


def canonical_quantity(text: str) -> str:
    """The form the API server stores a quantity in ("0.5" -> "500m", "1024Mi" -> "1Gi"), so a
    rendered object compares equal to what the watch sees (no write to an unchanged child).

    Kubernetes' rules: a binary suffix stays binary when the value is a whole number of at least
    1024 bytes, with the largest power of 1024 that divides it; anything else is decimal, rounded
    up to thousandths, with the largest power of 1000 that leaves a whole mantissa.
    """
    value = parse_quantity(text)
    suffix = re.fullmatch(QUANTITY, text).group(3) or ""  # type: ignore[union-attr]
    if suffix.endswith("i") and value >= 1024 and value == value.to_integral_value():
        for binary in _BINARY:
            if value % _SUFFIXES[binary] == 0:
                return f"{int(value / _SUFFIXES[binary])}{binary}"
        return str(int(value))
    milli = (value * 1000).to_integral_value(rounding="ROUND_CEILING")
    if milli % 1000:
        return f"{int(milli)}m"
    whole = int(milli // 1000)
    for decimal in _DECIMAL:
        step = int(_SUFFIXES[decimal])
        if whole % step == 0 and (whole or not decimal):
            return f"{whole // step}{decimal}"
    return str(whole)  # unreachable: "" divides everything
