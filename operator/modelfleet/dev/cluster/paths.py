"""Where the cluster's files live: tools modules in the repo, everything else in a cache.

Binaries and cluster state stay outside the repo so a fresh clone reuses a warm build.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_CLUSTER_NAME = "modelfleet"


def cache_dir() -> Path:
    """`$MODELFLEET_CACHE_DIR`, else `~/.cache/modelfleet`."""
    configured = os.environ.get("MODELFLEET_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "modelfleet"


def tools_dir() -> Path:
    """The repo's `hack/tools` (found by walking up from this file), or `$MODELFLEET_TOOLS_DIR`."""
    configured = os.environ.get("MODELFLEET_TOOLS_DIR")
    if configured:
        return Path(configured)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "hack" / "tools"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "cannot find hack/tools above the modelfleet package; set MODELFLEET_TOOLS_DIR"
    )


def cluster_name(name: str) -> str:
    """Validate a cluster name: it becomes a directory name, so no slashes or dot-dot."""
    if not re.fullmatch(r"[a-z0-9][-a-z0-9_.]{0,62}", name):
        raise ValueError(f"invalid cluster name {name!r}: use lowercase letters, digits, - _ .")
    return name


def state_dir(name: str) -> Path:
    """One directory per named cluster: data, certs, logs, pids and state.json."""
    return cache_dir() / "cluster" / cluster_name(name)
