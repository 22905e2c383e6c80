"""`modelfleet api-docs`: the API reference (docs/api.md) generated from the pydantic types."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from modelfleet.api.reference import api_reference


def add_api_docs_command(commands: Any) -> None:
    docs = commands.add_parser(
        "api-docs",
        help="print the ModelDeployment API reference (Markdown)",
        description="Print docs/api.md: every field of the ModelDeployment API, generated from "
        "the pydantic types (`make api-docs` writes it).",
    )
    docs.set_defaults(func=_print_api_docs)


def _print_api_docs(_: argparse.Namespace) -> int:
    sys.stdout.write(api_reference())
    return 0
