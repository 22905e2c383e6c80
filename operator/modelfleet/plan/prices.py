"""Price sheet: USD per GPU-hour, on-demand and spot, keyed by GPU product label.

Defaults come from the GPU catalog. A cluster admin overrides them with a mapping from a product
label value (or catalog GPU name) to a price, either a number (on-demand) or
`{onDemand: 2.1, spot: 0.9}`:

    NVIDIA-L4: 0.55
    NVIDIA-H100-80GB-HBM3: {onDemand: 2.49, spot: 1.20}

A spot node without a known spot price is priced on-demand (never an invented discount).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfleet.catalog.gpus import GPU


class PriceSheetError(ValueError):
    """Bad price overrides; `errors` has one line per field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Price:
    on_demand: float | None = None
    spot: float | None = None


@dataclass(frozen=True)
class PriceSheet:
    overrides: Mapping[str, Price] = field(default_factory=dict)  # keys lower-cased

    def per_gpu_hour(self, product: str, gpu: GPU | None, spot: bool = False) -> float | None:
        """USD per GPU-hour for a product label value: override, else catalog default."""
        keys = [product, *((gpu.name, *gpu.product_labels) if gpu else ())]
        override = next(
            (self.overrides[k.lower()] for k in keys if k.lower() in self.overrides), Price()
        )
        on_demand = override.on_demand
        if on_demand is None and gpu is not None:
            on_demand = gpu.price_usd_hour
        if spot:
            spot_price = override.spot
            if spot_price is None and gpu is not None:
                spot_price = gpu.spot_price_usd_hour
            if spot_price is not None:
                return spot_price
        return on_demand


def _price_value(path: str, value: Any, errors: list[str]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(f"{path}: must be a number of USD per GPU-hour, got {value!r}")
        return None
    if not math.isfinite(value) or value < 0:
        errors.append(f"{path}: must be a finite number >= 0, got {value!r}")
        return None
    return float(value)


def parse_price_overrides(data: Any, prefix: str = "prices") -> PriceSheet:
    """Validate an override mapping (e.g. parsed YAML); raises PriceSheetError with field paths."""
    if data is None:
        return PriceSheet()
    if not isinstance(data, Mapping):
        raise PriceSheetError(
            [f"{prefix}: must be a mapping from GPU product label to USD per GPU-hour"]
        )
    errors: list[str] = []
    overrides: dict[str, Price] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}"
        if not isinstance(key, str) or not key.strip():
            errors.append(f"{path}: the key must be a GPU product label")
            continue
        if isinstance(value, Mapping):
            unknown = sorted(str(k) for k in value if k not in ("onDemand", "spot"))
            if unknown:
                errors.append(f"{path}: unknown field(s) {', '.join(unknown)} (onDemand, spot)")
            on_demand = (
                _price_value(f"{path}.onDemand", value["onDemand"], errors)
                if "onDemand" in value
                else None
            )
            spot = _price_value(f"{path}.spot", value["spot"], errors) if "spot" in value else None
            overrides[key.strip().lower()] = Price(on_demand, spot)
        else:
            overrides[key.strip().lower()] = Price(_price_value(path, value, errors))
    if errors:
        raise PriceSheetError(errors)
    return PriceSheet(overrides)
