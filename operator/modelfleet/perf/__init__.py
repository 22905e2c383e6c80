"""Engine performance model: continuous batching of one replica in explicit time (pure)."""
