"""Reading the YAML files the CLI commands take (manifests, inventories, price sheets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelfleet.plan.request import PlanInputError


def read_documents(path: Path) -> list[Any]:
    """The non-empty YAML documents of `path`; PlanInputError naming the file otherwise."""
    try:
        return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    except OSError as error:
        raise PlanInputError([f"{path}: {error.strerror or error}"]) from error
    except yaml.YAMLError as error:
        raise PlanInputError([f"{path}: not valid YAML: {error}"]) from error
    except UnicodeDecodeError as error:
        raise PlanInputError([f"{path}: not a text file ({error.reason})"]) from error
