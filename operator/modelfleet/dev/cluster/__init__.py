"""A real local Kubernetes control plane with kwok-simulated GPU nodes, for tests and demos.

Modules: `build` (go builds, cached), `nodes` and `stages` (pure inventory, Node and kwok Stage
rendering), `flags` (pure component command lines), `pod_range` (pure: each cluster's own pod IP
range), `credentials`, `processes`, `control_plane` (up/down/status), `prometheus` (a real
Prometheus scraping the operator and the engine pods) and `cli` (`modelfleet cluster ...`).
"""

from modelfleet.dev.cluster.build import Binaries, BuildError, ensure_binaries, ensure_helm
from modelfleet.dev.cluster.control_plane import (
    ClusterError,
    ClusterState,
    ClusterStatus,
    all_states,
    api_client,
    down,
    find_by_server,
    log_tails,
    read_state,
    status,
    up,
)

__all__ = [
    "Binaries",
    "BuildError",
    "ClusterError",
    "ClusterState",
    "ClusterStatus",
    "all_states",
    "api_client",
    "down",
    "ensure_binaries",
    "ensure_helm",
    "find_by_server",
    "log_tails",
    "read_state",
    "status",
    "up",
]
