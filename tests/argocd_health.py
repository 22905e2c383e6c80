"""Run docs/argocd-health.lua as Argo CD does: Lua 5.1 (Argo CD embeds gopher-lua, a Lua 5.1),
the object as the global `obj`, the script's return value the health."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "argocd-health.lua"
HEALTH_STATES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def _table(runtime: Any, value: Any) -> Any:
    """JSON-like Python data as Lua tables (lists 1-indexed), like Argo CD's conversion."""
    if isinstance(value, dict):
        return runtime.table_from({k: _table(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_table(runtime, v) for v in value])
    return value


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) the health check returns for `obj`."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _table(runtime, obj)
    result = runtime.execute(SCRIPT.read_text())
    status, message = str(result["status"]), str(result["message"] or "")
    assert status in HEALTH_STATES, status
    return status, message
