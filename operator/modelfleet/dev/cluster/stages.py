"""kwok Stage documents: node and pod lifecycles with a simulated model-load delay before Ready."""

from __future__ import annotations

import re
from datetime import timedelta
from importlib import resources
from typing import Any

import yaml

LOAD_DELAY_ANNOTATION = "modelfleet.dev/simulated-load-delay"
DEFAULT_MODEL_LOAD_DELAY = timedelta(seconds=3)
DOWNLOAD_DURATION_ANNOTATION = "modelfleet.dev/simulated-download-duration"
# How long a simulated weights download pod runs before it succeeds (stage
# weights-download-complete) or a PerNode init container downloads (weights-init-complete); long
# enough for a test to read its progress.
DEFAULT_DOWNLOAD_DURATION = timedelta(seconds=12)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration ("500ms", "3s", "1m30s"), the format kwok reads from annotations."""
    parts = _DURATION_PART.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"invalid duration {text!r}; use e.g. 500ms, 3s, 1m30s")
    return timedelta(seconds=sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts))


def stage_documents(
    model_load_delay: timedelta, download_duration: timedelta = DEFAULT_DOWNLOAD_DURATION
) -> list[dict[str, Any]]:
    """The Stage documents, with pod-ready waiting `model_load_delay` and a weights download
    lasting `download_duration`, unless a pod's annotation overrides them."""
    text = resources.files(__package__).joinpath("stages.yaml").read_text()
    documents: list[dict[str, Any]] = list(yaml.safe_load_all(text))
    for document in documents:
        if document["metadata"]["name"] == "pod-ready":
            milliseconds = round(model_load_delay.total_seconds() * 1000)
            document["spec"]["delay"]["durationMilliseconds"] = milliseconds
        if document["metadata"]["name"] in ("weights-download-complete", "weights-init-complete"):
            milliseconds = round(download_duration.total_seconds() * 1000)
            document["spec"]["delay"]["durationMilliseconds"] = milliseconds
    return documents


class _BlockStringDumper(yaml.SafeDumper):
    """Dumps multi-line strings (the status templates) as readable `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockStringDumper.add_representer(str, _represent_str)


def render_stages(model_load_delay: timedelta = DEFAULT_MODEL_LOAD_DELAY) -> str:
    """The multi-document YAML passed to `kwok --config`."""
    documents = stage_documents(model_load_delay)
    return yaml.dump_all(documents, Dumper=_BlockStringDumper, sort_keys=False)
