"""Inline `spec.architecture` values shared by the unit and integration tests."""

from __future__ import annotations

from typing import Any

# microsoft/phi-4 is not in the catalog; these are its config.json numbers.
PHI_4: dict[str, Any] = {
    "paramsB": 14.7,
    "layers": 40,
    "hidden": 5120,
    "attentionHeads": 40,
    "kvHeads": 10,
    "headDim": 128,
    "maxContext": 16384,
}
