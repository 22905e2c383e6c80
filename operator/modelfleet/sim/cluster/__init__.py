"""A real local Kubernetes control plane with kwok-simulated GPU nodes, for tests and demos.

Modules: `build` (go builds, cached), `nodes` and `stages` (pure inventory, Node and kwok Stage
rendering), `flags` (pure component command lines), `credentials`, `processes`, `control_plane`
(up/down/status) and `cli` (`modelfleet cluster ...`).
"""

from modelfleet.sim.cluster.build import Binaries, BuildError, ensure_binaries
from modelfleet.sim.cluster.control_plane import (
    ClusterError,
    ClusterState,
    ClusterStatus,
    api_client,
    down,
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
    "api_client",
    "down",
    "ensure_binaries",
    "log_tails",
    "read_state",
    "status",
    "up",
]
