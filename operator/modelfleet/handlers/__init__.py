"""kopf handlers; `kopf run -m modelfleet.handlers` loads them all."""

from modelfleet.handlers import autoscaler, main, modeldeployment

__all__ = ["autoscaler", "main", "modeldeployment"]
