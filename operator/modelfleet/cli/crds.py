"""`modelfleet crds`: the CRD generated from the pydantic types."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from modelfleet.api.crd import crd_yaml


def add_crds_command(commands: Any) -> None:
    crds = commands.add_parser(
        "crds",
        help="print the generated CustomResourceDefinition YAML",
        description="Print the ModelDeployment CRD generated from the pydantic types.",
    )
    crds.set_defaults(func=_print_crds)


def _print_crds(_: argparse.Namespace) -> int:
    sys.stdout.write(crd_yaml())
    return 0
