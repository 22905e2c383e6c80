"""The shared validation table through pydantic: the operator's and the CLI's verdicts.

tests/integration/test_bad_input.py runs the same rows through the API server.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelfleet.api.errors import cel_rule_field_paths, field_errors
from modelfleet.api.types import ModelDeployment
from tests.validation_cases import CASES, Case


def pydantic_verdict(case: Case) -> list[tuple[str, str]]:
    """(field, message) per problem; empty when accepted."""
    try:
        ModelDeployment.from_body(case.body())
    except ValidationError as error:
        return [(field, message) for field, _, message in map(_split, field_errors(error))]
    return []


def _split(line: str) -> tuple[str, str, str]:
    return line.partition(": ")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_pydantic_gives_the_tables_verdict(case: Case) -> None:
    problems = pydantic_verdict(case)
    if case.field is None:
        assert problems == []
    else:
        messages = [message for field, message in problems if field == case.field]
        assert messages, f"{case.field} not named in {problems}"
        assert any(case.words.lower() in m.lower() for m in messages), problems


def test_the_table_covers_every_cel_rule() -> None:
    refused_with = {case.words for case in CASES if case.field is not None}
    uncovered = [
        message
        for message in cel_rule_field_paths()
        if not any(words and words in message for words in refused_with)
    ]
    assert uncovered == []
