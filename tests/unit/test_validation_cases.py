"""The shared validation table through pydantic: the operator's and the CLI's verdicts.

tests/integration/test_bad_input.py runs the same rows through the API server.
"""

from __future__ import annotations

import pytest

from modelfleet.api.errors import cel_rule_field_paths
from tests.validation_cases import CASES, Case, mismatch, pydantic_problems


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_pydantic_gives_the_tables_verdict(case: Case) -> None:
    assert mismatch(case, pydantic_problems(case.body())) is None


def test_the_table_covers_every_cel_rule() -> None:
    refused_with = {case.words for case in CASES if case.field is not None}
    uncovered = [
        message
        for message in cel_rule_field_paths()
        if not any(words and words in message for words in refused_with)
    ]
    assert uncovered == []


def test_a_wrong_verdict_is_reported() -> None:
    """The comparison itself can fail: each kind of disagreement is named."""
    refused = next(c for c in CASES if c.id == "gpu-count-3-vllm")
    accepted = next(c for c in CASES if c.id == "base-ok")
    assert "accepted in the table" in str(mismatch(accepted, [("spec.model", "bad")]))
    assert "not named" in str(mismatch(refused, []))
    assert "not named" in str(mismatch(refused, [("spec.engine", "gpu.count must be 1")]))
    assert "without" in str(mismatch(refused, [("spec.gpu.count", "Invalid value")]))
