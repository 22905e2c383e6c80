"""Hosted-API token prices, so a deployment's cost can be set against what the same tokens would
cost on a provider's API.

Rows are USD per 1M input and output tokens with the date the price was read (`asOf`): prices
move often, and a comparison without its date misleads. The table ships in `api_prices.yaml`;
an admin overrides or adds rows with a mapping keyed by `provider/model`, merged field by field
like the GPU price sheet (`plan/prices.py`):

    openai/gpt-4o: {input: 2.00, output: 8.00, asOf: 2026-06}
    acme/house-model: {input: 0.10, output: 0.40, asOf: 2026-07-01, note: "negotiated"}

A new row needs input, output and asOf; a changed price needs a new asOf, so a row never shows a
date its price was not true on.

Default `compareTo` (the model class rule, `model_class`): a model of FRONTIER_PARAMS_B total
parameters or more (all MoE today: DeepSeek V3/R1, Kimi K2, GLM-4.5, Qwen3-235B) is compared with
deepseek/deepseek-chat, its makers' own hosted model of that class; anything smaller with
google/gemini-2.5-flash, the cheapest general-purpose hosted model in the table. Both are the
cheapest plausible substitute for the class, so the default never overstates the savings.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from modelfleet.catalog.models import ModelArch

# 2025, 2026-Q2, 2025-11, 2026-04-01: the precision the source gave, never padded.
AS_OF_PATTERN = r"^\d{4}(-Q[1-4]|-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$"
OVERRIDE_FIELDS = ("input", "output", "asOf", "note")

ModelClass = Literal["general", "frontier"]

# Total parameters (billions) from which a model is frontier-class; MoE counted by total, since
# memory, serving cost and the hosted peers all follow the total, not the active experts.
FRONTIER_PARAMS_B = 200.0
DEFAULT_COMPARE_TO: Mapping[ModelClass, str] = {
    "general": "google/gemini-2.5-flash",
    "frontier": "deepseek/deepseek-chat",
}


class ApiPriceError(ValueError):
    """Bad hosted-API price input; `errors` has one line per field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class ApiPrice(BaseModel):
    """One hosted model's price: USD per 1M input and per 1M output tokens, as of a date."""

    # snake_case in the packaged YAML, camelCase in user input and status: both are accepted.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    provider: Annotated[str, Field(min_length=1, pattern=r"^[^/\s]+$")]
    model: Annotated[str, Field(min_length=1)]
    input: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    output: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    as_of: Annotated[str, Field(pattern=AS_OF_PATTERN)]
    note: str = ""

    @field_validator("as_of", mode="before")
    @classmethod
    def _date_as_text(cls, value: Any) -> Any:
        return _as_of_text(value)

    @property
    def key(self) -> str:
        """The name `compareTo` and overrides use: `provider/model`."""
        return f"{self.provider}/{self.model}"

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        """USD these tokens would cost on this API."""
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


class ApiPriceTable:
    """Rows by `provider/model`, case-insensitively; a bare model name works when unique."""

    def __init__(self, rows: Iterable[ApiPrice]) -> None:
        self.rows: tuple[ApiPrice, ...] = tuple(rows)
        self._by_key: dict[str, ApiPrice] = {}
        for row in self.rows:
            if row.key.lower() in self._by_key:
                raise ValueError(f"hosted API price {row.key} is listed twice")
            self._by_key[row.key.lower()] = row

    def find(self, name: str) -> ApiPrice | None:
        wanted = name.strip().lower()
        row = self._by_key.get(wanted)
        if row is not None:
            return row
        matches = [r for r in self.rows if r.model.lower() == wanted]
        return matches[0] if len(matches) == 1 else None

    def __iter__(self) -> Iterator[ApiPrice]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def parse_api_prices(text: str) -> ApiPriceTable:
    return ApiPriceTable(ApiPrice.model_validate(row) for row in yaml.safe_load(text) or [])


@cache
def default_api_prices() -> ApiPriceTable:
    """The table shipped in the package (read once)."""
    text = resources.files(__package__).joinpath("api_prices.yaml").read_text(encoding="utf-8")
    return parse_api_prices(text)


def _as_of_text(value: Any) -> Any:
    """YAML reads `2025` as an int and `2026-04-01` as a date; both mean the text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _usd(path: str, value: Any, errors: list[str]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(f"{path}: must be a number of USD per 1M tokens, got {value!r}")
        return None
    if not math.isfinite(value) or value < 0:
        errors.append(f"{path}: must be a finite number >= 0, got {value!r}")
        return None
    return float(value)


def _as_of(path: str, value: Any, errors: list[str]) -> str | None:
    text = _as_of_text(value)
    if not isinstance(text, str) or not re.fullmatch(AS_OF_PATTERN, text):
        errors.append(
            f"{path}: must be the date the price was read (2026, 2026-Q2, 2026-05 or "
            f"2026-05-31), got {value!r}"
        )
        return None
    return text


def parse_api_price_overrides(
    data: Any, base: ApiPriceTable | None = None, prefix: str = "apiPrices"
) -> ApiPriceTable:
    """Merge an override mapping (e.g. parsed YAML) into `base` (default: the packaged table).

    Raises ApiPriceError naming every bad field: nothing of a bad file is used.
    """
    table = base if base is not None else default_api_prices()
    if data is None:
        return table
    if not isinstance(data, Mapping):
        raise ApiPriceError(
            [f"{prefix}: must be a mapping from provider/model to {{input, output, asOf}}"]
        )
    errors: list[str] = []
    rows = {row.key.lower(): row for row in table}
    for key, value in data.items():
        path = f"{prefix}.{key}"
        provider, _, model = str(key).strip().partition("/")
        model = model.strip()
        if not isinstance(key, str) or not re.fullmatch(r"[^/\s]+", provider) or not model:
            errors.append(f"{path}: the key must be provider/model, e.g. openai/gpt-4o")
            continue
        if not isinstance(value, Mapping):
            errors.append(f"{path}: must be a mapping with input, output and asOf")
            continue
        unknown = sorted(str(k) for k in value if k not in OVERRIDE_FIELDS)
        if unknown:
            errors.append(
                f"{path}: unknown field(s) {', '.join(unknown)} ({', '.join(OVERRIDE_FIELDS)})"
            )
        fields: dict[str, Any] = {}
        for name in ("input", "output"):
            if name in value:
                fields[name] = _usd(f"{path}.{name}", value[name], errors)
        if "asOf" in value:
            fields["as_of"] = _as_of(f"{path}.asOf", value["asOf"], errors)
        if "note" in value:
            if isinstance(value["note"], str):
                fields["note"] = value["note"]
            else:
                errors.append(f"{path}.note: must be text, got {value['note']!r}")
        existing = rows.get(key.strip().lower())
        if existing is None:
            wanted = (("input", "input"), ("output", "output"), ("asOf", "as_of"))
            missing = [name for name, field in wanted if field not in fields]
            if missing:
                errors.append(f"{path}: a new row needs {', '.join(missing)}")
                continue
        elif ("input" in fields or "output" in fields) and "as_of" not in fields:
            errors.append(
                f"{path}.asOf: required when input or output changes (the row says "
                f"{existing.as_of}, which would no longer be true)"
            )
            continue
        if any(v is None for v in fields.values()):
            continue  # already reported
        if existing is None:
            rows[key.strip().lower()] = ApiPrice(provider=provider, model=model, **fields)
        else:
            rows[key.strip().lower()] = existing.model_copy(update=fields)
    if errors:
        raise ApiPriceError(errors)
    return ApiPriceTable(rows.values())


def model_class(arch: ModelArch | None) -> ModelClass:
    """Frontier from FRONTIER_PARAMS_B total parameters; unknown size counts as general."""
    if arch is not None and arch.params_b >= FRONTIER_PARAMS_B:
        return "frontier"
    return "general"


def default_compare_to(arch: ModelArch | None) -> str:
    """The `provider/model` a deployment of this architecture is compared with by default."""
    return DEFAULT_COMPARE_TO[model_class(arch)]


def compare_to(requested: str | None, arch: ModelArch | None, table: ApiPriceTable) -> ApiPrice:
    """The row to compare with: `spec.cost.compareTo` when set, else the class default.

    An unknown name is an error naming the field, never a silent fallback to the default.
    """
    name = requested if requested else default_compare_to(arch)
    row = table.find(name)
    if row is None:
        field = "spec.cost.compareTo" if requested else "default compareTo"
        known = ", ".join(sorted(r.key for r in table))
        raise ApiPriceError([f"{field}: no hosted API price named {name!r} (known: {known})"])
    return row
