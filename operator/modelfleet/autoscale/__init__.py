"""Autoscaling policy: desired replicas from engine load samples (pure)."""
