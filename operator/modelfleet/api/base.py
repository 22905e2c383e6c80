"""What every ModelDeployment type shares: strict pydantic models and CEL rule entries."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue, model_validator


def _cel(rule: str, message: str, field_path: str | None = None) -> dict[str, JsonValue]:
    validation: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path:
        validation["fieldPath"] = field_path
    return validation


class _Model(BaseModel):
    """Strict like the API server's schema: "2" or true is not an integer, "0.5" not a number."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, use_enum_values=True, strict=True
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        """The API server drops a null field (then defaults it), so `replicas:` left empty in a
        manifest is replicas 1 to kubectl; the same here."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data
