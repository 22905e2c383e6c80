"""kopf handlers; `kopf run -m modelfleet.handlers` loads them all."""

from modelfleet.handlers import main, modeldeployment

__all__ = ["main", "modeldeployment"]
