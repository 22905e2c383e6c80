"""Reads a download pod's progress endpoint (render/download.py) over the pod network.

Like the engine scrapes (kube/scrape.py): straight to the pod IP, a short timeout, and an
answer that cannot be read is None (status keeps the last numbers), never an error.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from modelfleet.render.download import PROGRESS_PORT

PROGRESS_TIMEOUT_SECONDS = 2.0
MAX_BODY_BYTES = 4096


def read_progress(pod_ip: str, port: int = PROGRESS_PORT) -> Any | None:
    """The JSON the download script serves on /progress, or None."""
    host = f"[{pod_ip}]" if ":" in pod_ip else pod_ip
    try:
        with urllib.request.urlopen(
            f"http://{host}:{port}/progress", timeout=PROGRESS_TIMEOUT_SECONDS
        ) as response:
            return json.loads(response.read(MAX_BODY_BYTES))
    except (OSError, ValueError):
        return None
