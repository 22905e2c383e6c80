"""Property tests without a cluster: generated bad input only ever gives field-level errors.

The same generated ModelDeployments go to the real API server in
tests/integration/test_bad_input.py; here they check the operator's and the CLI's own parsing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from modelfleet.api.errors import field_errors
from modelfleet.api.types import ModelDeployment
from modelfleet.cli.yaml_files import read_documents
from modelfleet.plan.request import PlanInputError, request_from_manifest
from tests.strategies import model_deployments

FAST = settings(max_examples=300, deadline=None, database=None)


def body(example: tuple[tuple[str, Any], dict[str, Any]]) -> dict[str, Any]:
    (kind, name), spec = example
    name = "x" * name if kind == "fresh" else name
    return {"kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}


@FAST
@given(model_deployments())
def test_the_operator_gets_a_model_or_field_errors(example: Any) -> None:
    try:
        ModelDeployment.from_body(body(example))
    except ValidationError as error:
        lines = field_errors(error)
        assert lines
        # every problem names its field, as kubectl would (spec.x, metadata.name)
        assert all(line.split(": ", 1)[0].startswith(("spec", "metadata.name")) for line in lines)


@FAST
@given(model_deployments())
def test_plan_gets_a_request_or_plan_input_errors(example: Any) -> None:
    try:
        request_from_manifest(body(example))
    except PlanInputError as error:
        assert error.errors and all(": " in line for line in error.errors)


yaml_like = st.text(
    alphabet=st.sampled_from([*"ab: -[]{}&*!|>'\"#\n\t,?%@`\\", "\x00", "\ufeff", "é"]),
    max_size=200,
)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.one_of(yaml_like.map(str.encode), st.binary(max_size=200)))
def test_the_yaml_reader_gives_documents_or_one_error_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "input.yaml"
    path.write_bytes(data)
    try:
        read_documents(path)
    except PlanInputError as error:
        assert len(error.errors) == 1 and "\n" not in error.errors[0]
        assert error.errors[0].startswith(str(path))
